//! Stack files: loading, environments, validation. Pure: no I/O but reading
//! the file, no network.

pub mod cases;
pub mod diagnostic;
pub mod expressions;
pub mod model;
pub mod rules;
pub mod schema;
pub mod transform;
pub mod yaml;

use std::path::Path;

use diagnostic::{Diagnostic, Report, SourceText};
use model::Stack;
use yaml::{Node, Value};

/// Largest stack file accepted; real ones are a few KB.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Most environments a stack file may define. Each one is resolved and
/// checked in full, so their number multiplies the work of validation.
pub const MAX_ENVIRONMENTS: usize = 64;

/// A stack resolved for one environment, ready for the template compiler.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub stack: Stack,
    /// The environment applied, if any.
    pub environment: Option<String>,
}

impl Resolved {
    /// The CloudFormation stack name, which also prefixes every resource name.
    pub fn stack_name(&self) -> String {
        match &self.environment {
            Some(env) => format!("{}-{}", self.stack.name, env),
            None => self.stack.name.clone(),
        }
    }
}

/// A parsed stack file: its text and tree, before any environment is chosen.
#[derive(Debug, Clone)]
pub struct StackFile {
    pub source: SourceText,
    root: Node,
}

/// Reading the file failed before validation could start.
#[derive(Debug, thiserror::Error)]
#[error("cannot read stack file {path}: {source}")]
pub struct ReadError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Reads a stack file from disk. Only I/O errors are `Err`; problems with
/// the content come back as a [`Report`] from [`parse`].
pub fn read(path: &Path) -> Result<(String, Vec<u8>), ReadError> {
    let name = path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(|source| ReadError {
        path: name.clone(),
        source,
    })?;
    // Read one byte past the limit, so an oversized file is detected without loading it whole.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut file, MAX_FILE_BYTES as u64 + 1),
        &mut bytes,
    )
    .map_err(|source| ReadError {
        path: name.clone(),
        source,
    })?;
    Ok((name, bytes))
}

/// Parses and checks a whole stack file (base and every environment). All
/// problems come back together in the report.
pub fn parse(name: &str, bytes: &[u8]) -> Result<StackFile, Report> {
    let source = match decode(name, bytes) {
        Ok(source) => source,
        Err(report) => return Err(*report),
    };
    let (root, mut diagnostics) = yaml::parse(&source);
    let Some(root) = root else {
        return Err(Report {
            source,
            diagnostics,
        });
    };
    diagnostics.extend(schema::check(&root, schema::Against::Document).diagnostics);
    let file = StackFile { source, root };
    // The base and each environment, resolved: schema again (an override can
    // break what the base had right) and the cross-field rules.
    // What only an environment gets wrong says which environment it is.
    let base = file.check_environment(None);
    let names = file.environment_names();
    if let Some(extra) = names.get(MAX_ENVIRONMENTS)
        && let Some(key) = file.root.lookup_key(["environments"], extra)
    {
        diagnostics.push(
            Diagnostic::new(key.span, format!("more than {MAX_ENVIRONMENTS} environments"))
                .with_hint("each environment is a separate deployment; split the file, or remove the ones not in use"),
        );
    }
    // What the base or the document check reported already (a set: a file
    // may have thousands of errors, each checked once per environment).
    let seen: std::collections::HashSet<Diagnostic> =
        base.iter().chain(&diagnostics).cloned().collect();
    for env in names.iter().take(MAX_ENVIRONMENTS) {
        for mut d in file.check_environment(Some(env)) {
            if !seen.contains(&d) {
                d.message = format!("{} (environment \"{env}\")", d.message);
                diagnostics.push(d);
            }
        }
    }
    diagnostics.extend(base);
    if diagnostics.is_empty() {
        Ok(file)
    } else {
        diagnostics.sort();
        diagnostics.dedup();
        Err(Report {
            source: file.source,
            diagnostics,
        })
    }
}

fn decode(name: &str, bytes: &[u8]) -> Result<SourceText, Box<Report>> {
    let lossy = || {
        SourceText::new(
            name,
            String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_FILE_BYTES)]).into_owned(),
        )
    };
    if bytes.len() > MAX_FILE_BYTES {
        let source = lossy();
        let at = source.span_at(1, 0, 0);
        return Err(Box::new(Report {
            source,
            diagnostics: vec![
                Diagnostic::new(
                    at,
                    format!("the file is larger than {} KiB", MAX_FILE_BYTES / 1024),
                )
                .with_hint("a stack file is a few KB of YAML; is this the right file?"),
            ],
        }));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(SourceText::new(name, text.to_string())),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count();
            let source = lossy();
            let at = source.span_at(line, col, 1);
            Err(Box::new(Report {
                source,
                diagnostics: vec![Diagnostic::new(at, "the file is not UTF-8 text")
                    .with_hint("stack files are UTF-8 YAML; this looks like a binary or differently encoded file")],
            }))
        }
    }
}

impl StackFile {
    /// Environment names in file order.
    pub fn environment_names(&self) -> Vec<String> {
        match self.root.get("environments").map(|n| &n.value) {
            Some(Value::Map(entries)) => entries.iter().map(|(k, _)| k.name.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// The base definition with an environment's overrides applied.
    fn merged(&self, env: Option<&str>) -> Node {
        // Copies all but `environments` (which may be most of the file).
        let base = match &self.root.value {
            Value::Map(entries) => Node {
                span: self.root.span,
                value: Value::Map(
                    entries
                        .iter()
                        .filter(|(k, _)| k.name != "environments")
                        .cloned()
                        .collect(),
                ),
            },
            _ => self.root.clone(),
        };
        match env.and_then(|e| self.root.lookup(["environments", e])) {
            Some(overlay) => merge(base, overlay),
            None => base,
        }
    }

    fn check_environment(&self, env: Option<&str>) -> Vec<Diagnostic> {
        let merged = self.merged(env);
        let checked = schema::check(&merged, schema::Against::Stack);
        let mut diagnostics = checked.diagnostics;
        // With the offending values pruned, defaults fill in and the rules
        // still find mistakes elsewhere in the same run. A stack that cannot
        // be read even so (a required key missing) was reported already.
        let mut pruned = checked.pruned;
        if let Some(obj) = pruned.as_object_mut() {
            // Stand-ins for pruned required keys: short, valid, and never reported on.
            obj.entry("name").or_insert_with(|| "xxx".into());
            obj.entry("region").or_insert_with(|| "us-east-1".into());
        }
        match serde_path_to_error::deserialize::<_, Stack>(pruned) {
            Ok(stack) => {
                diagnostics.extend(rules::check(&stack, env, &merged));
                diagnostics.extend(expressions::check(&stack, &merged, &self.source));
            }
            // What the schema lets through but the model cannot hold (an
            // integer too large for its field): located here, so that a file
            // that validates always resolves.
            Err(e) if diagnostics.is_empty() => {
                let path = e.path().to_string();
                let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
                let at = merged
                    .lookup(segments.iter().copied())
                    .map_or(merged.span, |n| n.span);
                let field = segments.last().copied().unwrap_or("the stack");
                diagnostics.push(
                    Diagnostic::new(at, format!("`{field}` cannot be read: {}", e.inner()))
                        .with_hint(
                            "integers in a stack file are small; check the value's type and size",
                        ),
                );
            }
            Err(_) => {}
        }
        diagnostics
    }

    /// Resolves the stack for one environment (or the base when `None`).
    pub fn resolve(&self, env: Option<&str>) -> Result<Resolved, Report> {
        if let Some(env) = env
            && self.root.lookup(["environments", env]).is_none()
        {
            let names = self.environment_names();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let at = self
                .root
                .lookup_key([], "environments")
                .map_or(self.root.span, |k| k.span);
            let hint = match schema::nearest(env, &refs) {
                Some(best) => format!("did you mean \"{best}\"?"),
                None if refs.is_empty() => "this file defines no environments".to_string(),
                None => format!("defined: {}", refs.join(", ")),
            };
            return Err(Report {
                source: self.source.clone(),
                diagnostics: vec![
                    Diagnostic::new(at, format!("no environment \"{env}\" in this file"))
                        .with_hint(hint),
                ],
            });
        }
        let merged = self.merged(env);
        let stack = serde_json::from_value::<Stack>(merged.to_json()).map_err(|e| Report {
            source: self.source.clone(),
            diagnostics: vec![Diagnostic::new(
                merged.span,
                format!("cannot read the stack: {e}"),
            )],
        })?;
        Ok(Resolved {
            stack,
            environment: env.map(str::to_string),
        })
    }
}

/// Overlays `overlay` on `base`: mappings merge key by key, anything else is
/// replaced. Replaced nodes keep the overlay's location, so errors in an
/// environment's value point into that environment.
fn merge(base: Node, overlay: &Node) -> Node {
    match (base.value, &overlay.value) {
        (Value::Map(mut entries), Value::Map(over)) => {
            for (key, value) in over {
                match entries.iter().position(|(k, _)| k.name == key.name) {
                    Some(i) => {
                        let (k, old) = entries.remove(i);
                        entries.insert(i, (k, merge(old, value)));
                    }
                    None => entries.push((key.clone(), value.clone())),
                }
            }
            Node {
                span: base.span,
                value: Value::Map(entries),
            }
        }
        _ => overlay.clone(),
    }
}

/// Reads, parses and resolves in one go: what most commands need.
pub fn load(path: &Path, env: Option<&str>) -> Result<Resolved, LoadError> {
    let (name, bytes) = read(path)?;
    let file = parse(&name, &bytes).map_err(LoadError::Invalid)?;
    file.resolve(env).map_err(LoadError::Invalid)
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{}", .0)]
    Invalid(Report),
}
