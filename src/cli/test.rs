//! `streamstack test [STACK...]`: runs the cases of each stack file (its
//! `tests`, and those in `<name>.tests.yaml` beside it) through its
//! transform and aggregates; exits 1 when a case does not give what it
//! expects, with a diff. Every `stacks/*.yaml` when none is named. No AWS
//! call.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{Exit, Output, StackArgs, failed, load, print_report};
use crate::app::cases::{CasesError, cases_of, run as run_cases};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Stack files (default: every stacks/*.yaml but the files of cases).
    pub stacks: Vec<PathBuf>,
    /// Environment of the stack files (default: the base definition).
    #[arg(long, short = 'e')]
    pub env: Option<String>,
}

pub fn run(args: &TestArgs, output: Output) -> Exit {
    let stacks = if args.stacks.is_empty() {
        let found =
            crate::spec::cases::stack_files(std::path::Path::new("stacks")).unwrap_or_default();
        if found.is_empty() {
            eprintln!("error: no stack file named, and none in stacks/");
            return Exit::Invalid;
        }
        found
    } else {
        args.stacks.clone()
    };
    let mut exit = Exit::Ok;
    let mut documents = Vec::new();
    for stack in &stacks {
        let stack_args = StackArgs {
            stack: stack.clone(),
            env: args.env.clone(),
        };
        let resolved = match load(&stack_args, output) {
            Ok(resolved) => resolved,
            Err(e) => return e,
        };
        let cases = match cases_of(&resolved, stack) {
            Ok(cases) => cases,
            Err(CasesError::Invalid(report)) => {
                print_report(&report, output);
                return Exit::Invalid;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Invalid;
            }
        };
        let outcomes = match run_cases(&resolved, &cases) {
            Ok(outcomes) => outcomes,
            Err(e) => return failed(&e),
        };
        let failed_cases = outcomes.iter().filter(|o| !o.mismatches.is_empty()).count();
        if failed_cases > 0 {
            exit = Exit::Invalid;
        }
        match output {
            Output::Json => documents.push(json!({
                "stack": stack.display().to_string(),
                "passed": outcomes.len() - failed_cases,
                "failed": failed_cases,
                "cases": outcomes,
            })),
            Output::Text => {
                for outcome in &outcomes {
                    if outcome.mismatches.is_empty() {
                        println!("ok    {}: {}", stack.display(), outcome.name);
                        continue;
                    }
                    println!("FAIL  {}: {}", stack.display(), outcome.name);
                    for mismatch in &outcome.mismatches {
                        println!("      {}:", mismatch.what);
                        for line in mismatch.diff.lines() {
                            println!("        {line}");
                        }
                    }
                }
                println!(
                    "{}: {} case(s), {} passed, {failed_cases} failed",
                    stack.display(),
                    outcomes.len(),
                    outcomes.len() - failed_cases
                );
            }
        }
    }
    if output == Output::Json {
        println!("{}", json!({ "stacks": documents }));
    }
    exit
}
