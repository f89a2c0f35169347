//! The cases of `streamstack test` kept beside a stack file: for
//! `stacks/orders.yaml`, `stacks/orders.tests.yaml`, a mapping with one key,
//! `tests`, a list of cases of the same shape as the stack file's own
//! `tests`. Read with the stack file's located YAML, so each mistake is
//! reported at its line and column.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diagnostic::{Diagnostic, Report, SourceText};
use super::transform::TestCase;
use super::yaml;

/// A file of cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CasesFile {
    /// The cases `streamstack test` runs against the stack file beside this one.
    pub tests: Vec<TestCase>,
}

/// Whether a file is a file of cases (`*.tests.yaml`), not a stack file.
pub fn is_cases_file(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".tests.yaml")
}

/// The stack files of a folder (`*.yaml` but the files of cases), sorted.
pub fn stack_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !is_cases_file(p))
        .collect();
    found.sort();
    Ok(found)
}

/// Where the cases of a stack file are kept beside it.
pub fn beside(stack_file: &Path) -> PathBuf {
    let stem = stack_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stack_file.with_file_name(format!("{stem}.tests.yaml"))
}

/// Parses a file of cases; every mistake found, located.
pub fn parse(name: &str, text: String) -> Result<Vec<TestCase>, Report> {
    let source = SourceText::new(name, text);
    let (root, mut diagnostics) = yaml::parse(&source);
    let Some(root) = root else {
        return Err(Report {
            source,
            diagnostics,
        });
    };
    if diagnostics.is_empty() {
        match serde_path_to_error::deserialize::<_, CasesFile>(root.to_json()) {
            Ok(file) => return Ok(file.tests),
            Err(e) => {
                let path = e.path().to_string();
                let segments: Vec<&str> = path
                    .split(['.', '[', ']'])
                    .filter(|s| !s.is_empty())
                    .collect();
                // The deepest node the path reaches.
                let at = super::rules::at(&root, &segments);
                diagnostics.push(
                    Diagnostic::new(at, format!("{path}: {}", e.inner()))
                        .with_hint("a file of cases is `tests:` and a list of cases: name, record, and what it must give (items, aggregates, dead_letters)"),
                );
            }
        }
    }
    Err(Report {
        source,
        diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_read_and_a_mistake_is_located() {
        let cases = parse(
            "t.yaml",
            "tests:\n  - name: one\n    record: {id: 1}\n    items: [{id: '1'}]\n".into(),
        )
        .unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].record, serde_json::json!({"id": 1}));
        let report = parse(
            "t.yaml",
            "tests:\n  - name: one\n    record: {id: 1}\n    itemz: []\n".into(),
        )
        .unwrap_err();
        assert_eq!(report.diagnostics.len(), 1);
        assert_eq!(
            report.diagnostics[0].span.line, 4,
            "{:?}",
            report.diagnostics
        );
        assert!(report.diagnostics[0].message.contains("itemz"));
        assert_eq!(
            beside(Path::new("stacks/orders.yaml")),
            Path::new("stacks/orders.tests.yaml")
        );
    }
}
