//! The stack file's JSON Schema (generated from the model, so it cannot
//! drift from it), and its use as the first validation pass: every schema
//! violation becomes a located diagnostic in the user's words.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::diagnostic::Diagnostic;
use super::model::Stack;
use super::yaml::Node;

/// Environment names become part of AWS resource names.
pub const ENVIRONMENT_NAME_PATTERN: &str = "^[a-z][a-z0-9]{0,11}$";

/// The schema of one resolved stack (the base with an environment applied).
pub fn stack_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        generator.into_root_schema_for::<Stack>().to_value()
    })
}

/// The schema of a stack file: a stack plus `environments`, each a partial
/// stack (any field may be overridden, none is required). This is what
/// `streamstack schema` prints for editors.
pub fn document_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut doc = stack_schema().clone();
        let mut partial = doc.clone();
        if let Some(obj) = partial.as_object_mut() {
            for meta in ["$schema", "title", "description"] {
                obj.remove(meta);
            }
            obj.insert(
                "description".into(),
                json!("Overrides of the base definition for one environment: any field but `name`."),
            );
            if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
                props.remove("name");
            }
        }
        strip_required(&mut partial);
        doc["title"] = json!("streamstack stack file");
        doc["properties"]["environments"] = json!({
            "description": "Named environments (local, dev, prod, ...). Each overrides fields of the base definition; `streamstack ... --env NAME` picks one.",
            "type": "object",
            "propertyNames": { "pattern": ENVIRONMENT_NAME_PATTERN },
            "additionalProperties": partial,
        });
        doc
    })
}

fn strip_required(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            obj.remove("required");
            obj.values_mut().for_each(strip_required);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_required),
        _ => {}
    }
}

/// The compiled validator of each schema, built once a process.
fn validator(against: Against) -> &'static Validator {
    static DOCUMENT: OnceLock<Validator> = OnceLock::new();
    static STACK: OnceLock<Validator> = OnceLock::new();
    let (cell, schema) = match against {
        Against::Document => (&DOCUMENT, document_schema()),
        Against::Stack => (&STACK, stack_schema()),
    };
    cell.get_or_init(|| {
        jsonschema::draft202012::new(schema).expect("the generated schema is valid JSON Schema")
    })
}

/// Which schema to check a tree against.
#[derive(Debug, Clone, Copy)]
pub enum Against {
    /// A whole stack file, environments included.
    Document,
    /// One resolved stack.
    Stack,
}

/// The outcome of a schema check.
pub struct Checked {
    /// One diagnostic a violation, located.
    pub diagnostics: Vec<Diagnostic>,
    /// The instance with every offending value removed, so that defaults
    /// fill in and the cross-field rules can still run on the rest.
    pub pruned: Value,
}

/// Checks a tree against the schema.
pub fn check(root: &Node, against: Against) -> Checked {
    let schema = match against {
        Against::Document => document_schema(),
        Against::Stack => stack_schema(),
    };
    let instance = root.to_json();
    let mut diagnostics = Vec::new();
    let mut offending = Vec::new();
    for error in validator(against).iter_errors(&instance) {
        describe(&error, root, schema, &mut diagnostics);
        let path = segments(error.instance_path());
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                offending.extend(
                    unexpected
                        .iter()
                        .map(|key| path.iter().cloned().chain([key.clone()]).collect()),
                );
            }
            // A missing key cannot be pruned; defaults may or may not cover it.
            ValidationErrorKind::Required { .. } => {}
            _ => offending.push(path),
        }
    }
    let mut pruned = instance;
    for path in offending {
        remove(&mut pruned, &path);
    }
    Checked {
        diagnostics,
        pruned,
    }
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for seg in parent {
        node = match node {
            Value::Object(obj) => match obj.get_mut(seg) {
                Some(next) => next,
                None => return,
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        Value::Object(obj) => {
            obj.remove(last);
        }
        // Removing a list item would shift the others' positions; null it.
        Value::Array(items) => {
            if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

fn segments(location: &jsonschema::paths::Location) -> Vec<String> {
    location
        .iter()
        .map(|s| match s {
            LocationSegment::Property(p) => p.to_string(),
            LocationSegment::Index(i) => i.to_string(),
        })
        .collect()
}

/// The subschema that holds the failing keyword (schema path minus its last segment).
fn keyword_parent<'s>(schema: &'s Value, error: &ValidationError<'_>) -> Option<&'s Value> {
    let path = segments(error.schema_path());
    let (_, parent) = path.split_last()?;
    parent.iter().try_fold(schema, |node, seg| match node {
        Value::Object(obj) => obj.get(seg.as_str()),
        Value::Array(items) => items.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

fn describe(error: &ValidationError<'_>, root: &Node, schema: &Value, out: &mut Vec<Diagnostic>) {
    let path = segments(error.instance_path());
    let node = root.lookup(path.iter().map(String::as_str)).unwrap_or(root);
    let field = path
        .iter()
        .rev()
        .find(|s| s.parse::<usize>().is_err())
        .map_or("the stack file".to_string(), |s| format!("`{s}`"));
    let sub = keyword_parent(schema, error);
    let description = sub
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // A field that may hold a secret is never quoted back (a token pasted
    // into the file must not reach a terminal, a CI log or an editor).
    let secret = path.last().is_some_and(|f| is_secret_field(f));
    let shown = if secret {
        "the value (not shown: it may be a secret)".to_string()
    } else {
        show(error.instance())
    };
    let first_new = out.len();
    let at = Context {
        root,
        node,
        schema,
        path: &path,
        field: &field,
        sub,
        shown: &shown,
    };
    describe_kind(error, &at, description, out);
    if secret {
        for d in &mut out[first_new..] {
            d.secret = true;
        }
    }
}

/// Fields whose values may be credentials.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "key_material"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Where a validation error is, and how to name what is there.
struct Context<'a> {
    root: &'a Node,
    node: &'a Node,
    schema: &'a Value,
    path: &'a [String],
    field: &'a str,
    sub: Option<&'a Value>,
    shown: &'a str,
}

fn describe_kind(
    error: &ValidationError<'_>,
    at: &Context<'_>,
    description: Option<String>,
    out: &mut Vec<Diagnostic>,
) {
    let Context {
        root,
        node,
        schema,
        path,
        field,
        sub,
        shown,
    } = *at;
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed: Vec<&str> = sub
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for key in unexpected {
                let span = root
                    .lookup_key(path.iter().map(String::as_str), key)
                    .map_or(node.span, |k| k.span);
                let hint = match nearest(key, &allowed) {
                    Some(best) => format!("did you mean \"{best}\"?"),
                    None if allowed.is_empty() => "remove it".to_string(),
                    None => format!("expected one of: {}", allowed.join(", ")),
                };
                out.push(Diagnostic::new(span, format!("unknown key \"{key}\"")).with_hint(hint));
            }
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            let sub_description = sub
                .and_then(|s| s.get("properties"))
                .and_then(|p| p.get(property))
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str)
                .map(str::to_string);
            out.push(
                Diagnostic::new(node.span, format!("missing required key \"{property}\""))
                    .with_optional_hint(sub_description),
            );
        }
        ValidationErrorKind::Type { .. } => {
            let expected = sub
                .and_then(|s| s.get("type"))
                .map(expected_types)
                .unwrap_or_else(|| "another type".into());
            let hint = match (node.value.clone(), expected.as_str()) {
                (super::yaml::Value::Str(s), e) if e.contains("boolean") && is_yaml11_bool(&s) => {
                    Some(format!(
                        "YAML 1.2 reads `{s}` as a string: write true or false"
                    ))
                }
                (super::yaml::Value::Str(s), e)
                    if (e.contains("integer") || e.contains("number"))
                        && s.trim().parse::<f64>().is_ok() =>
                {
                    Some("remove the quotes around the number".into())
                }
                _ => description,
            };
            out.push(
                Diagnostic::new(
                    node.span,
                    format!("{field} must be {expected}, found {}", node.type_name()),
                )
                .with_optional_hint(hint),
            );
        }
        ValidationErrorKind::Enum { options } => {
            let names: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let value = error.instance().as_str().unwrap_or_default();
            let hint = match nearest(value, &names) {
                Some(best) => format!("did you mean \"{best}\"?"),
                None => format!("expected one of: {}", names.join(", ")),
            };
            out.push(
                Diagnostic::new(
                    node.span,
                    format!("{shown} is not a valid value for {field}"),
                )
                .with_hint(hint),
            );
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push(
                Diagnostic::new(
                    node.span,
                    format!("{field} is {shown}, below the minimum of {limit}"),
                )
                .with_optional_hint(description),
            );
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push(
                Diagnostic::new(
                    node.span,
                    format!("{field} is {shown}, above the maximum of {limit}"),
                )
                .with_optional_hint(description),
            );
        }
        ValidationErrorKind::Pattern { .. } => {
            out.push(
                Diagnostic::new(node.span, format!("{shown} is not a valid {field}"))
                    .with_optional_hint(description),
            );
        }
        ValidationErrorKind::MinLength { limit } => {
            out.push(
                Diagnostic::new(
                    node.span,
                    format!("{field} is too short: at least {limit} characters"),
                )
                .with_optional_hint(description),
            );
        }
        ValidationErrorKind::MaxLength { limit } => {
            out.push(
                Diagnostic::new(
                    node.span,
                    format!("{field} is too long: at most {limit} characters"),
                )
                .with_optional_hint(description),
            );
        }
        ValidationErrorKind::MinItems { limit } => {
            out.push(
                Diagnostic::new(node.span, format!("{field} needs at least {limit} item(s)"))
                    .with_optional_hint(description),
            );
        }
        ValidationErrorKind::MaxItems { limit } => {
            out.push(
                Diagnostic::new(node.span, format!("{field} takes at most {limit} items"))
                    .with_optional_hint(description),
            );
        }
        ValidationErrorKind::MaxProperties { limit } => {
            out.push(
                Diagnostic::new(node.span, format!("{field} takes at most {limit} entries"))
                    .with_optional_hint(description),
            );
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            // Only environment names are constrained this way.
            let name = inner.instance().as_str().unwrap_or_default().to_string();
            let span = root
                .lookup_key(path.iter().map(String::as_str), &name)
                .map_or(node.span, |k| k.span);
            out.push(
                Diagnostic::new(span, format!("\"{name}\" is not a valid environment name"))
                    .with_hint("lowercase letters and digits, starting with a letter, at most 12 characters (it becomes part of AWS resource names)"),
            );
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // `Option<T>` fields are `anyOf [T, null]`: report why the value is not a T.
            let branch = context
                .iter()
                .find(|errs| {
                    !errs.iter().all(|e| {
                        matches!(e.kind(), ValidationErrorKind::Type { .. })
                            && e.instance_path() == error.instance_path()
                    })
                })
                .or_else(|| context.first());
            match branch {
                Some(errs) if !errs.is_empty() && !node_is_null(node) => {
                    for e in errs {
                        describe(e, root, schema, out);
                    }
                }
                _ => out.push(
                    Diagnostic::new(node.span, format!("{field} has the wrong shape"))
                        .with_optional_hint(description),
                ),
            }
        }
        _ => out.push(Diagnostic::new(
            node.span,
            format!("{field}: {}", error.masked()),
        )),
    }
}

fn node_is_null(node: &Node) -> bool {
    matches!(node.value, super::yaml::Value::Null)
}

fn is_yaml11_bool(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "yes" | "no" | "on" | "off" | "y" | "n"
    )
}

fn expected_types(types: &Value) -> String {
    let article = |t: &str| match t {
        "integer" => "an integer",
        "object" => "a mapping",
        "array" => "a list",
        "boolean" => "a boolean",
        "number" => "a number",
        "string" => "a string",
        "null" => "null",
        _ => "another type",
    };
    match types {
        Value::String(t) => article(t).to_string(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(article)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "another type".into(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        other => {
            let text = other.to_string();
            if text.len() > 40 {
                // Cut on a character boundary: keys and strings may be any Unicode.
                let cut = (0..=40)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                format!("{}...", &text[..cut])
            } else {
                text
            }
        }
    }
}

/// The closest known name, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
