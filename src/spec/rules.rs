//! Rules that span several fields, checked on a resolved stack. Each one
//! guards against a template CloudFormation would reject late, or an
//! environment that deploys but cannot work.

use super::diagnostic::{Diagnostic, Span};
use super::model::{BillingMode, CapacityMode, Stack};
use super::yaml::Node;

/// AWS account ids are 12 digits; they are part of the bucket name.
const ACCOUNT_ID_LEN: usize = 12;

/// Where a path is in the file: the node itself, or its nearest ancestor
/// present (defaults have no place of their own).
pub(super) fn at(tree: &Node, path: &[&str]) -> Span {
    (0..=path.len())
        .rev()
        .find_map(|n| tree.lookup(path[..n].iter().copied()))
        .map_or(tree.span, |node| node.span)
}

/// S3 bucket names are 3 to 63 characters.
const BUCKET_NAME_MAX: usize = 63;

/// The stack's buckets (the archive, and the artifacts `up` ships to the
/// host) and the length of each name, which must be globally unique: the
/// stack name, account and region make it so.
pub fn bucket_name_lengths(stack_name: &str, region: &str) -> [(&'static str, usize); 2] {
    // "{stack}-{bucket}-{account}-{region}", as src/template names them.
    ["archive", "artifacts"].map(|bucket| {
        (
            bucket,
            stack_name.len() + bucket.len() + 2 + ACCOUNT_ID_LEN + 1 + region.len(),
        )
    })
}

/// Firehose prefix expression namespaces that work without dynamic partitioning.
fn prefix_expressions(prefix: &str) -> Vec<&str> {
    prefix
        .match_indices("!{")
        .filter_map(|(i, _)| prefix[i + 2..].split_once('}').map(|(expr, _)| expr))
        .collect()
}

pub fn check(stack: &Stack, env: Option<&str>, tree: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let stack_name = match env {
        Some(e) => format!("{}-{e}", stack.name),
        None => stack.name.clone(),
    };

    // The longest name that is too long, when one is: the others are
    // shortened by the same fix.
    if let Some((bucket, len)) = bucket_name_lengths(&stack_name, &stack.region)
        .into_iter()
        .filter(|(_, len)| *len > BUCKET_NAME_MAX)
        .max_by_key(|(_, len)| *len)
    {
        out.push(
            Diagnostic::new(at(tree, &["name"]), format!("the {bucket} bucket name would be {len} characters; S3 allows {BUCKET_NAME_MAX}"))
                .with_hint(format!("buckets are named {stack_name}-archive-<account>-{0} and {stack_name}-artifacts-<account>-{0}: shorten the stack or environment name", stack.region)),
        );
    }

    if stack.stream.mode == CapacityMode::OnDemand && stack.stream.shards.is_some() {
        out.push(
            Diagnostic::new(
                at(tree, &["stream", "shards"]),
                "`shards` applies only to a provisioned stream",
            )
            .with_hint("remove `shards`, or set `mode: provisioned`"),
        );
    }

    // Records older than the retention period are gone: an iterator age at or
    // past it can never be observed.
    let retention_s = u64::from(stack.stream.retention_hours) * 3600;
    if stack.alarms.iterator_age_s >= retention_s {
        out.push(
            Diagnostic::new(
                at(tree, &["alarms", "iterator_age_s"]),
                format!(
                    "this alarm can never fire: records expire after {} h ({retention_s} s)",
                    stack.stream.retention_hours
                ),
            )
            .with_hint("pick a threshold well below stream.retention_hours, such as a few minutes"),
        );
    }

    // Firehose holds records up to the buffer interval before delivering, so
    // data freshness always reaches it: a lower threshold would always fire.
    if stack.alarms.archive_freshness_s <= u64::from(stack.archive.buffer.interval_s) {
        out.push(
            Diagnostic::new(
                at(tree, &["alarms", "archive_freshness_s"]),
                format!(
                    "this alarm would always fire: Firehose waits up to archive.buffer.interval_s ({} s) before delivering",
                    stack.archive.buffer.interval_s
                ),
            )
            .with_hint("set it above the buffer interval, with a margin for delivery time"),
        );
    }

    let archive = &stack.archive;
    for (field, prefix) in [
        ("prefix", &archive.prefix),
        ("error_prefix", &archive.error_prefix),
        ("dead_letter_prefix", &archive.dead_letter_prefix),
    ] {
        if prefix.starts_with('/') {
            out.push(
                Diagnostic::new(
                    at(tree, &["archive", field]),
                    format!("`{field}` must not start with \"/\""),
                )
                .with_hint("S3 keys have no leading slash; it would create an empty-named folder"),
            );
        }
        for expr in prefix_expressions(prefix) {
            let ok = match expr.split_once(':') {
                Some(("timestamp", pattern)) => !pattern.is_empty(),
                Some(("firehose", "random-string")) => true,
                Some(("firehose", "error-output-type")) => field == "error_prefix",
                _ => false,
            };
            if !ok {
                out.push(
                    Diagnostic::new(at(tree, &["archive", field]), format!("`!{{{expr}}}` is not an expression Firehose accepts here"))
                        .with_hint("use !{timestamp:<pattern>} or !{firehose:random-string}; !{firehose:error-output-type} belongs in error_prefix"),
                );
            }
        }
    }
    if !prefix_expressions(&archive.prefix).is_empty()
        && !archive
            .error_prefix
            .contains("!{firehose:error-output-type}")
    {
        out.push(
            Diagnostic::new(at(tree, &["archive", "error_prefix"]), "`error_prefix` must contain !{firehose:error-output-type} when `prefix` uses expressions")
                .with_hint("Firehose rejects the delivery stream otherwise, e.g. errors/!{firehose:error-output-type}/"),
        );
    }
    let raw_static = archive.prefix.split("!{").next().unwrap_or_default();
    if (!raw_static.is_empty() && archive.dead_letter_prefix.starts_with(raw_static))
        || archive.prefix.starts_with(&archive.dead_letter_prefix)
    {
        out.push(
            Diagnostic::new(
                at(tree, &["archive", "dead_letter_prefix"]),
                "dead letters would land inside the raw archive prefix",
            )
            .with_hint("give dead letters a prefix of their own, such as dead-letters/"),
        );
    }

    let table = &stack.table;
    match table.billing {
        BillingMode::Provisioned => {
            for (field, value) in [
                ("read_capacity", table.read_capacity),
                ("write_capacity", table.write_capacity),
            ] {
                if value.is_none() {
                    out.push(
                        Diagnostic::new(
                            at(tree, &["table", "billing"]),
                            format!("provisioned billing needs `table.{field}`"),
                        )
                        .with_hint(
                            "set read_capacity and write_capacity, or use billing: on-demand",
                        ),
                    );
                }
            }
        }
        BillingMode::OnDemand => {
            for (field, value) in [
                ("read_capacity", table.read_capacity),
                ("write_capacity", table.write_capacity),
            ] {
                if value.is_some() {
                    out.push(
                        Diagnostic::new(
                            at(tree, &["table", field]),
                            format!("`{field}` applies only to provisioned billing"),
                        )
                        .with_hint("remove it, or set `billing: provisioned`"),
                    );
                }
            }
        }
    }
    if table.ttl_days.is_some() && table.ttl_attribute.is_none() {
        out.push(
            Diagnostic::new(
                at(tree, &["table", "ttl_days"]),
                "`ttl_days` needs `ttl_attribute`",
            )
            .with_hint(
                "name the attribute DynamoDB expires items by, e.g. ttl_attribute: expires_at",
            ),
        );
    }
    if table.ttl_attribute.as_deref() == Some(table.partition_key.as_str()) {
        out.push(Diagnostic::new(
            at(tree, &["table", "ttl_attribute"]),
            "the TTL attribute cannot be the partition key",
        ));
    }

    let host = &stack.host;
    let own_network = (host.vpc_id.is_some(), !host.subnet_ids.is_empty());
    if own_network.0 != own_network.1 {
        out.push(
            Diagnostic::new(
                at(tree, &["host"]),
                "`host.vpc_id` and `host.subnet_ids` go together",
            )
            .with_hint("give both (your own network) or neither (a VPC of the stack's own)"),
        );
    }

    if let Some(source) = &stack.processor.source {
        let chosen = [
            source.x_api.is_some(),
            source.replay.is_some(),
            source.synthetic.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if chosen != 1 {
            out.push(
                Diagnostic::new(
                    at(tree, &["processor", "source"]),
                    format!(
                        "a source needs exactly one of x_api, replay, synthetic; found {chosen}"
                    ),
                )
                .with_hint("remove `source` altogether when records come from another producer"),
            );
        }
        if let Some(x) = &source.x_api {
            let mut seen = std::collections::HashSet::new();
            for (i, rule) in x.rules.iter().enumerate() {
                if !seen.insert(rule.value()) {
                    out.push(Diagnostic::new(
                        at(
                            tree,
                            &["processor", "source", "x_api", "rules", &i.to_string()],
                        ),
                        format!("rule \"{}\" is listed twice", rule.value()),
                    ));
                }
            }
        }
    }
    out
}
