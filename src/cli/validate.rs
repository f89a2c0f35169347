//! `streamstack validate`: parse and check, no AWS call.

use serde_json::json;

use super::{Exit, Output, StackArgs, print_report};
use crate::spec;

pub fn run(args: &StackArgs, output: Output) -> Exit {
    let (name, bytes) = match spec::read(&args.stack) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let file = match spec::parse(&name, &bytes) {
        Ok(file) => file,
        Err(report) => {
            print_report(&report, output);
            return Exit::Invalid;
        }
    };
    let environments = match &args.env {
        Some(env) => match file.resolve(Some(env)) {
            Ok(_) => vec![env.clone()],
            Err(report) => {
                print_report(&report, output);
                return Exit::Invalid;
            }
        },
        None => file.environment_names(),
    };
    match output {
        Output::Json => println!(
            "{}",
            json!({ "valid": true, "file": name, "environments": environments })
        ),
        Output::Text if environments.is_empty() => println!("{name}: valid"),
        Output::Text => println!("{name}: valid (environments: {})", environments.join(", ")),
    }
    Exit::Ok
}
