//! The layers, as rules a change can break: who may import whom, where
//! printing and AWS calls may live, and how long a file may grow. The
//! README's design section describes the layers; this keeps it true.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

/// The lines of `layer`'s files that contain `needle`, as `file:line: text`.
fn lines_with(layer: &str, needle: &str) -> Vec<String> {
    let root = src();
    let dir = root.join(layer);
    let files = if dir.is_dir() {
        sources(&dir)
    } else {
        let path = root.join(format!("{layer}.rs"));
        vec![(path.clone(), std::fs::read_to_string(&path).unwrap())]
    };
    let root = &root;
    files
        .iter()
        .flat_map(|(path, text)| {
            text.lines().enumerate().filter_map(move |(i, line)| {
                let code = line.split("//").next().unwrap_or("");
                code.contains(needle).then(|| {
                    format!(
                        "{}:{}: {}",
                        path.strip_prefix(root).unwrap().display(),
                        i + 1,
                        line.trim()
                    )
                })
            })
        })
        .collect()
}

#[test]
fn the_engines_import_neither_the_compiler_nor_each_other_nor_the_layers_above() {
    let mut crossings = Vec::new();
    for (layer, forbidden) in [
        (
            "processor",
            &[
                "crate::template",
                "crate::deploy",
                "crate::app",
                "crate::cli",
            ][..],
        ),
        (
            "deploy",
            &[
                "crate::template",
                "crate::processor",
                "crate::app",
                "crate::cli",
            ],
        ),
        (
            "template",
            &[
                "crate::processor",
                "crate::deploy",
                "crate::app",
                "crate::cli",
            ],
        ),
        (
            "spec",
            &[
                "crate::template",
                "crate::processor",
                "crate::deploy",
                "crate::app",
                "crate::cli",
            ],
        ),
        (
            "names",
            &[
                "crate::template",
                "crate::processor",
                "crate::deploy",
                "crate::app",
                "crate::cli",
            ],
        ),
        (
            "jq",
            &[
                "crate::template",
                "crate::processor",
                "crate::deploy",
                "crate::app",
                "crate::cli",
                "crate::spec",
            ],
        ),
        (
            "aws",
            &[
                "crate::template",
                "crate::processor",
                "crate::deploy",
                "crate::app",
                "crate::cli",
            ],
        ),
        ("app", &["crate::cli"]),
    ] {
        for needle in forbidden {
            crossings.extend(lines_with(layer, needle));
        }
    }
    assert!(
        crossings.is_empty(),
        "cross-layer imports:\n{}",
        crossings.join("\n")
    );
}

#[test]
fn only_cli_prints_and_only_to_render() {
    let mut printing = Vec::new();
    for layer in [
        "app",
        "deploy",
        "processor",
        "template",
        "spec",
        "names",
        "aws",
    ] {
        for needle in ["eprintln!", "println!", "eprint!(", "print!("] {
            printing.extend(lines_with(layer, needle));
        }
    }
    assert!(
        printing.is_empty(),
        "printing outside cli:\n{}",
        printing.join("\n")
    );
}

#[test]
fn cli_makes_no_aws_call() {
    let calls: Vec<String> = [".send()", ".into_paginator()", "Aws::connect"]
        .iter()
        .flat_map(|needle| lines_with("cli", needle))
        .collect();
    assert!(calls.is_empty(), "AWS calls in cli:\n{}", calls.join("\n"));
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = sources(&src())
        .into_iter()
        .filter(|(_, text)| text.lines().count() > 800)
        .map(|(path, text)| format!("{}: {} lines", path.display(), text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "files over 800 lines:\n{}",
        long.join("\n")
    );
}
