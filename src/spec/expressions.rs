//! The stack file's jq expressions, checked when the file is validated:
//! each is compiled (a syntax error or an unknown filter is reported at its
//! line and column in the file, pointing into the expression), and results
//! whose type the expression's form fixes are checked against what they
//! are used for. With them, the rules of the transform that span fields:
//! windows, names, and the cases of `streamstack test`.

use std::collections::HashSet;

use super::diagnostic::{Diagnostic, SourceText, Span};
use super::model::{Stack, TransformSpec};
use super::yaml::Node;
use crate::jq::{self, Shape};

/// Every problem of the stack's transform, aggregates and cases.
pub fn check(stack: &Stack, tree: &Node, source: &SourceText) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut expression = |path: &[&str], name: &str, code: &str, wrong: &[Shape], use_: &str| {
        let Some(node) = tree.lookup(path.iter().copied()) else {
            return;
        };
        match jq::Expression::compile(code) {
            Ok(_) => {
                if let Some(shape) = jq::certain_shapes(code)
                    .into_iter()
                    .find(|s| wrong.contains(s))
                {
                    out.push(
                        Diagnostic::new(
                            node.span,
                            format!("{name} yields {}; {use_}", shape.name()),
                        )
                        .with_hint(match shape {
                            Shape::Array => "to use each element, iterate it: `.tags[]`",
                            Shape::Object => "pick one field of it: `.user.id`",
                            Shape::Boolean => {
                                "a comparison yields true or false; use the value itself"
                            }
                        }),
                    );
                }
            }
            Err(errors) => {
                for e in errors {
                    out.push(
                        Diagnostic::new(
                            within(source, node, code, e.span.clone()),
                            format!("{name}: {}", e.message),
                        )
                        .with_hint("the expression is jq (https://jqlang.org/manual/)"),
                    );
                }
            }
        }
    };
    let processor = &stack.processor;
    if let TransformSpec::Jq(t) = &processor.transform {
        let base = ["processor", "transform"];
        expression(
            &[&base[..], &["events"]].concat(),
            "transform.events",
            &t.events,
            &[],
            "",
        );
        expression(
            &[&base[..], &["key"]].concat(),
            "transform.key",
            &t.key,
            &[Shape::Array, Shape::Object, Shape::Boolean],
            "a key must be a string or an integer",
        );
        if let Some(time) = &t.time {
            expression(
                &[&base[..], &["time"]].concat(),
                "transform.time",
                time,
                &[Shape::Array, Shape::Object, Shape::Boolean],
                "a time must be an RFC 3339 string or epoch seconds",
            );
        }
        for (field, code) in &t.fields {
            expression(
                &["processor", "transform", "fields", field],
                &format!("transform.fields.{field}"),
                code,
                &[],
                "",
            );
        }
    }
    for (i, aggregate) in processor.aggregates.iter().enumerate() {
        let index = i.to_string();
        expression(
            &["processor", "aggregates", &index, "by"],
            &format!("aggregates.{}.by", aggregate.name),
            &aggregate.by,
            &[Shape::Array, Shape::Object],
            "values counted must be strings, numbers or booleans",
        );
    }
    out.extend(rules(stack, tree));
    out
}

/// Names, windows and cases.
fn rules(stack: &Stack, tree: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let at = |path: &[&str]| super::rules::at(tree, path);
    let processor = &stack.processor;
    let mut names = HashSet::new();
    for (i, aggregate) in processor.aggregates.iter().enumerate() {
        let index = i.to_string();
        if aggregate.window_s().is_none() {
            out.push(
                Diagnostic::new(
                    at(&["processor", "aggregates", &index, "window"]),
                    format!("window `{}` does not divide a day", aggregate.window),
                )
                .with_hint("windows start at the same times every day (UTC): use 1m, 2m, 5m, 10m, 15m, 30m, 1h, 2h, 3h, 6h, 12h or 1d"),
            );
        }
        if !names.insert(aggregate.name.as_str()) {
            out.push(
                Diagnostic::new(
                    at(&["processor", "aggregates", &index, "name"]),
                    format!("aggregate `{}` is declared twice", aggregate.name),
                )
                .with_hint("each aggregate needs its own name (`top --by NAME`)"),
            );
        }
    }
    if let TransformSpec::Jq(t) = &processor.transform {
        let reserved = [
            Some(stack.table.partition_key.as_str()),
            stack.table.ttl_attribute.as_deref(),
        ];
        for field in t.fields.keys() {
            if reserved.contains(&Some(field.as_str())) {
                out.push(
                    Diagnostic::new(
                        tree.lookup_key(["processor", "transform", "fields"], field)
                            .map_or_else(|| at(&["processor", "transform", "fields"]), |k| k.span),
                        format!("field `{field}` is the table's key or TTL attribute, which the processor sets"),
                    )
                    .with_hint("the key comes from `key`; rename the field"),
                );
            }
            if field.is_empty() || field.len() > 255 {
                out.push(Diagnostic::new(
                    at(&["processor", "transform", "fields"]),
                    format!("field name `{field}` must be 1 to 255 characters"),
                ));
            }
        }
    }
    let declared: HashSet<String> = processor.aggregates().into_iter().map(|a| a.name).collect();
    for (i, case) in stack.tests.iter().enumerate() {
        let index = i.to_string();
        if let Some(arrival) = &case.arrival
            && time::OffsetDateTime::parse(arrival, &time::format_description::well_known::Rfc3339)
                .is_err()
        {
            out.push(
                Diagnostic::new(
                    at(&["tests", &index, "arrival"]),
                    format!("arrival `{arrival}` is not an RFC 3339 time"),
                )
                .with_hint("such as 2024-05-01T12:00:00Z"),
            );
        }
        for name in case.aggregates.iter().flat_map(|a| a.keys()) {
            if !declared.contains(name) {
                let mut known: Vec<&str> = declared.iter().map(String::as_str).collect();
                known.sort();
                out.push(
                    Diagnostic::new(
                        at(&["tests", &index, "aggregates", name]),
                        format!("case `{}` expects counts of `{name}`, which is not an aggregate of this stack", case.name),
                    )
                    .with_hint(format!("aggregates: {}", known.join(", "))),
                );
            }
        }
    }
    out
}

/// Where `range` (bytes of `code`, the value of the scalar `node`) is in the
/// file: inside the quotes of a quoted scalar, past the indentation of a
/// block scalar. Where the scalar's text is not the code character for
/// character (escapes, folded lines), the place is the scalar's start.
pub fn within(source: &SourceText, node: &Node, code: &str, range: std::ops::Range<usize>) -> Span {
    let text = source.text();
    let raw = text
        .get(node.span.offset..node.span.offset + node.span.len)
        .unwrap_or("");
    let (start, end) = (range.start.min(code.len()), range.end.min(code.len()));
    // The code's bytes in the raw text, when they appear there as they are.
    let body_at = match raw.as_bytes().first() {
        Some(b'\'') if !code.contains('\'') && !code.contains('\n') => Some(1),
        Some(b'"') if !code.contains(['"', '\\', '\n']) => Some(1),
        Some(b'|' | b'>') => None,
        _ if !code.contains('\n') => Some(0),
        _ => None,
    }
    .filter(|at| raw.get(*at..*at + code.len()) == Some(code));
    let Some(body_at) = body_at else {
        return node.span;
    };
    let before = &raw[..body_at + start];
    let column = node.span.column - 1 + before.chars().count();
    let len = code[start..end].chars().count().max(1);
    source.span_at(node.span.line, column, len)
}

#[cfg(test)]
mod tests {
    fn diagnostics(yaml: &str) -> Vec<(usize, usize, String)> {
        let report = match super::super::parse("stack.yaml", yaml.as_bytes()) {
            Ok(_) => return Vec::new(),
            Err(report) => report,
        };
        report
            .diagnostics
            .into_iter()
            .map(|d| (d.span.line, d.span.column, d.message))
            .collect()
    }

    const HEAD: &str = "name: events\nregion: us-east-1\ntable: { partition_key: id }\n";

    #[test]
    fn a_syntax_error_is_at_its_line_and_column_inside_the_expression() {
        let yaml = format!(
            "{HEAD}processor:\n  transform:\n    key: '.id'\n    fields:\n      kind: '.type | (.a'\n      user: \".actor | no_such(1)\"\n"
        );
        let found = diagnostics(&yaml);
        // `      kind: '.type | (.a'`: the quote is at column 13, the code from 14.
        assert!(
            found.iter().any(|(line, col, m)| *line == 8
                && *col >= 14
                && m.starts_with("transform.fields.kind: expected")),
            "{found:?}"
        );
        // `      user: ".actor | no_such(1)"`: `no_such` starts at column 23.
        assert!(
            found.contains(&(
                9,
                23,
                "transform.fields.user: undefined filter `no_such/1`".into()
            )),
            "{found:?}"
        );
    }

    #[test]
    fn a_key_that_is_an_array_and_a_window_that_does_not_divide_a_day_are_refused() {
        let yaml = format!(
            "{HEAD}processor:\n  transform: {{ key: '[.id]' }}\n  aggregates:\n    - {{ name: kind, by: '.type', window: 7m }}\n    - {{ name: kind, by: '{{a: 1}}' }}\n"
        );
        let found = diagnostics(&yaml);
        let messages: Vec<&str> = found.iter().map(|(_, _, m)| m.as_str()).collect();
        assert!(
            messages
                .contains(&"transform.key yields an array; a key must be a string or an integer"),
            "{found:?}"
        );
        assert!(
            messages.contains(&"window `7m` does not divide a day"),
            "{found:?}"
        );
        assert!(
            messages.contains(&"aggregate `kind` is declared twice"),
            "{found:?}"
        );
        assert!(messages.contains(&"aggregates.kind.by yields an object; values counted must be strings, numbers or booleans"), "{found:?}");
    }

    #[test]
    fn a_good_transform_validates() {
        let yaml = format!(
            "{HEAD}processor:\n  transform:\n    events: '.records[]'\n    key: '.id'\n    time: '.created_at'\n    fields:\n      kind: '.type'\n      tags: '[.labels[]?.name]'\n  aggregates:\n    - {{ name: kind, by: '.type', window: 1m }}\n    - {{ name: label, by: '.labels[]?.name | ascii_downcase', window: 5m }}\n"
        );
        assert_eq!(diagnostics(&yaml), []);
    }
}
