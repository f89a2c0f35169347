//! `streamstack synth`: the CloudFormation template of a stack, no AWS call.

use std::path::PathBuf;

use clap::Args;

use super::{Exit, Output, StackArgs, load};
use crate::template;

#[derive(Debug, Args)]
pub struct SynthArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Write the template to this file instead of standard output.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &SynthArgs) -> Exit {
    let resolved = match load(&args.stack, Output::Text) {
        Ok(resolved) => resolved,
        Err(exit) => return exit,
    };
    let text = template::to_pretty_json(&template::compile(&resolved));
    match &args.out {
        None => {
            print!("{text}");
            Exit::Ok
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => {
                eprintln!("wrote {} ({})", path.display(), resolved.stack_name());
                Exit::Ok
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                Exit::Failed
            }
        },
    }
}
