//! `streamstack plan`: what `up` would change, and the cost estimate.

use clap::Args;
use serde_json::json;

use super::{Cli, Exit, Output, StackArgs, in_environment};
use crate::app::plan::{PlanReport, plan};
use crate::cost::Workload;
use crate::deploy::changeset::{self, Kind};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Exit 0 when there are no changes and 4 when there are (like terraform's -detailed-exitcode).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Records a second the cost estimate assumes.
    #[arg(long, default_value_t = 100.0, value_name = "N")]
    pub records_per_s: f64,
    /// Average record size in KB the cost estimate assumes.
    #[arg(long, default_value_t = 3.0, value_name = "KB")]
    pub record_kb: f64,
    /// DynamoDB writes a record makes, in small-item units (its item, and its share of the slice's partial counts and checkpoint); default: measured on the stack's replay file, or assumed from the declared aggregates.
    #[arg(long, value_name = "N")]
    pub items_per_record: Option<f64>,
}

pub fn run(args: &PlanArgs, cli: &Cli) -> Exit {
    let workload = Workload {
        records_per_s: args.records_per_s,
        record_kb: args.record_kb,
        ..Default::default()
    };
    match in_environment(cli, &args.stack, async |env| {
        plan(&env, workload, args.items_per_record).await
    }) {
        Ok(report) => {
            print_plan(&report, cli.output);
            if args.detailed_exitcode && !report.changes.is_empty() {
                Exit::Changes
            } else {
                Exit::Ok
            }
        }
        Err(exit) => exit,
    }
}

fn print_cost(cost: &crate::cost::Estimate, items_basis: &str) {
    println!(
        "\ncost estimate ({} list prices of {}; {} records/s of {} KB, {:.2} DynamoDB items a record, {items_basis}; `--records-per-s`, `--record-kb`, `--items-per-record`):",
        cost.region,
        cost.prices_as_of,
        cost.workload.records_per_s,
        cost.workload.record_kb,
        cost.workload.items_per_record
    );
    for l in &cost.lines {
        println!(
            "  {:<11} {:<58} {:>10.2} USD/month",
            l.service, l.item, l.monthly_usd
        );
    }
    println!("  {:<70} {:>10.2} USD/month", "total", cost.monthly_usd);
    println!(
        "  {:<70} {:>10.4} USD/hour",
        "idle (no data flowing)", cost.idle_hourly_usd
    );
    for u in &cost.unpriced {
        println!("  not priced: {u}");
    }
}

fn print_plan(report: &PlanReport, output: Output) {
    let (stack, kind, changes) = (&report.stack, report.kind, &report.changes);
    match output {
        Output::Json => println!(
            "{}",
            json!({ "stack": stack, "kind": kind, "changes": changes, "summary": changeset::summary(changes), "cost": report.cost, "items_per_record_basis": report.items_per_record_basis })
        ),
        Output::Text if changes.is_empty() => println!("{stack}: no changes"),
        Output::Text => {
            println!(
                "{stack}: {} would change",
                if kind == Kind::Create {
                    "a new stack"
                } else {
                    "the stack"
                }
            );
            for c in changes {
                let marker = if c.replaces_stateful() || c.removes_stateful() {
                    "!"
                } else {
                    " "
                };
                let replacement = if c.replacement.is_empty() {
                    String::new()
                } else {
                    format!(" replacement: {}", c.replacement)
                };
                let props = if c.properties.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", c.properties.join(", "))
                };
                println!(
                    "{marker} {:<8} {:<32} {:<40}{replacement}{props}",
                    c.action, c.logical_id, c.resource_type
                );
                if marker == "!" {
                    println!(
                        "    ! {} holds data or serves traffic: `up` refuses this without --allow-replace",
                        c.logical_id
                    );
                }
            }
            println!("{}", changeset::summary(changes));
        }
    }
    if output == Output::Text {
        print_cost(&report.cost, &report.items_per_record_basis);
    }
}
