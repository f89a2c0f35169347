//! Bad input for the stack-file loader (`spec::parse`), generated: arbitrary
//! text, YAML-ish noise, and structured mutations of the shipped stack files
//! (lines deleted, duplicated, swapped, re-indented; a cut at a random byte;
//! random characters inserted; scalars replaced by values of other types).
//!
//! Whatever the input: no panic, an `Ok` or a non-empty list of errors, and
//! every error located inside the text (line within the line count, column
//! within that line, span on character boundaries). Edits that do not change
//! what a file means (comments, blank lines, CRLF, trailing spaces, flow or
//! block style of the same tree) leave a valid file valid and resolving to
//! the same stack.
//!
//! Hostile input is bounded in memory as well: a counting allocator measures
//! what the loader holds at its peak for a given input, on this thread only.
//!
//! Case counts are small by default (CI); `PROPTEST_CASES=20000` for a long
//! run (`make fuzz`).

use std::path::Path;

use proptest::prelude::*;
use streamstack::spec;

#[path = "support/fuzz.rs"]
mod fuzz;
use fuzz::{config, peak_bytes};

#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn shipped() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks");
    let mut files: Vec<(String, String)> = streamstack::spec::cases::stack_files(&dir)
        .unwrap()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), text)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "stacks/ has {} files", files.len());
    files
}

/// What `parse` gave for one input: `Ok`, or errors that are all located
/// inside the text. Panics (fails the case) otherwise.
fn check_located(bytes: &[u8]) -> Result<spec::StackFile, spec::diagnostic::Report> {
    let result = spec::parse("fuzz.yaml", bytes);
    if let Err(report) = &result {
        assert_located(report);
    }
    result
}

/// The lines of a text as YAML counts them: `\r\n`, `\n` and a lone `\r`
/// end a line. Each line with its terminator's length.
fn yaml_lines(text: &str) -> Vec<(&str, usize)> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['\n', '\r']) {
        let end = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        lines.push((&rest[..i], end));
        rest = &rest[i + end..];
    }
    lines.push((rest, 0));
    lines
}

fn assert_located(report: &spec::diagnostic::Report) {
    let text = report.source.text();
    assert!(!report.diagnostics.is_empty(), "an Err with no diagnostics");
    let with_ends = yaml_lines(text);
    let lines: Vec<&str> = with_ends.iter().map(|(l, _)| *l).collect();
    for d in &report.diagnostics {
        let s = d.span;
        assert!(
            s.line >= 1 && s.line <= lines.len(),
            "{}:{}: line outside the text ({} lines): {}",
            s.line,
            s.column,
            lines.len(),
            d.message
        );
        let line = lines[s.line - 1];
        let chars = line.chars().count();
        assert!(
            s.column >= 1 && s.column <= chars + 1,
            "{}:{}: column outside the line ({chars} characters): {}",
            s.line,
            s.column,
            d.message
        );
        // The byte span is where line:column says, on character boundaries.
        let line_start: usize = with_ends[..s.line - 1]
            .iter()
            .map(|(l, end)| l.len() + end)
            .sum();
        let in_line = line
            .char_indices()
            .nth(s.column - 1)
            .map_or(line.len(), |(i, _)| i);
        assert_eq!(
            s.offset,
            line_start + in_line,
            "{}:{}: byte offset does not match line:column: {}",
            s.line,
            s.column,
            d.message
        );
        assert!(s.offset + s.len <= text.len(), "span past the end");
        assert!(text.is_char_boundary(s.offset) && text.is_char_boundary(s.offset + s.len));
        assert!(!d.message.is_empty());
    }
}

/// Every environment of a valid file resolves; the base too.
fn resolve_all(file: &spec::StackFile) -> Vec<spec::model::Stack> {
    std::iter::once(None)
        .chain(file.environment_names().into_iter().map(Some))
        .map(|env| {
            file.resolve(env.as_deref())
                .unwrap_or_else(|r| panic!("a valid file must resolve in {env:?}: {r}"))
                .stack
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------

/// Values of every YAML type (and some that YAML or the schema reject).
const SCALARS: &[&str] = &[
    "~",
    "null",
    "true",
    "no",
    "0",
    "-1",
    "1",
    "501",
    "9223372036854775807",
    "99999999999999999999999",
    "-9223372036854775809",
    "1e400",
    ".nan",
    "-.inf",
    "0x7fffffffffffffff",
    "0o777",
    "1.5",
    "2.0",
    "1e1",
    "1e19",
    "\"\"",
    "'quoted'",
    "\"a\\u0000b\"",
    "plain text",
    "[]",
    "[1, 2]",
    "{}",
    "{ a: 1 }",
    "&anchor 3",
    "*anchor",
    "!Ref x",
    "!!int 3",
    "!!str 3",
    "!!binary aGk=",
    "|\n    block",
    ">-\n    folded",
    "[",
    "{",
    "\"",
    "'",
    "- x",
    "? k",
    "%YAML 1.2",
    "---",
    "...",
    "\t1",
    "\u{feff}",
    "\0",
    "é🦀",
];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
    Insert(usize, String),
    Reindent(usize, usize),
    ReplaceScalar(usize, usize),
    TabIndent(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let noise = prop_oneof![
        prop::collection::vec(any::<char>(), 1..4).prop_map(|c| c.into_iter().collect()),
        prop::sample::select(vec![
            ":", "- ", "[", "]", "{", "}", ",", "#", "&a", "*a", "!", "|", ">", "'", "\"", "\n",
            "\r\n", "\t", "  ", "? ", "%", "@", "`", "\u{feff}", "\0", "\u{85}", "\u{2028}",
        ])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), noise).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), 0usize..9).prop_map(|(l, n)| Mutation::Reindent(l, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(l, s)| Mutation::ReplaceScalar(l, s)),
        any::<usize>().prop_map(Mutation::TabIndent),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::Truncate(at) => {
            let mut cut = at % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        Mutation::Insert(at, s) => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return format!("{}{s}{}", &text[..at], &text[at..]);
        }
        Mutation::Reindent(i, by) => {
            let line = &mut lines[i % n];
            *line = format!("{}{}", " ".repeat(*by), line.trim_start());
        }
        Mutation::ReplaceScalar(i, s) => {
            let line = &mut lines[i % n];
            if let Some(colon) = line.find(": ") {
                *line = format!("{}: {}", &line[..colon], SCALARS[s % SCALARS.len()]);
            } else if let Some(dash) = line.find("- ") {
                *line = format!("{}- {}", &line[..dash], SCALARS[s % SCALARS.len()]);
            }
        }
        Mutation::TabIndent(i) => {
            let line = &mut lines[i % n];
            let indent = line.len() - line.trim_start_matches(' ').len();
            *line = format!("{}{}", "\t".repeat(indent.div_ceil(2)), &line[indent..]);
        }
    }
    lines.join("\n")
}

/// Edits that change how a file is written, not what it says.
#[derive(Debug, Clone)]
enum Neutral {
    CommentAfter(usize),
    BlankLine(usize),
    TrailingSpaces(usize),
    Crlf,
    LeadingDocumentMarker,
    TrailingDocumentEnd,
}

fn neutral() -> impl Strategy<Value = Neutral> {
    prop_oneof![
        any::<usize>().prop_map(Neutral::CommentAfter),
        any::<usize>().prop_map(Neutral::BlankLine),
        any::<usize>().prop_map(Neutral::TrailingSpaces),
        Just(Neutral::Crlf),
        Just(Neutral::LeadingDocumentMarker),
        Just(Neutral::TrailingDocumentEnd),
    ]
}

fn apply_neutral(text: &str, m: &Neutral) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len();
    match m {
        Neutral::CommentAfter(i) => {
            // A full-line comment, indented like the line it follows.
            let line = &lines[i % n];
            let indent = line.len() - line.trim_start().len();
            let comment = format!("{}# an added comment: [ {{ & * |", " ".repeat(indent));
            lines.insert(i % n + 1, comment);
        }
        Neutral::BlankLine(i) => lines.insert(i % (n + 1), String::new()),
        Neutral::TrailingSpaces(i) => {
            let line = &mut lines[i % n];
            // Not after a `|` or `>` block header, nor inside a block scalar: none in the shipped files.
            line.push_str("   ");
        }
        Neutral::Crlf => return lines.join("\r\n") + "\r\n",
        // Once each: a second `---` starts a second document.
        Neutral::LeadingDocumentMarker if !lines.iter().any(|l| l.trim_end() == "---") => {
            lines.insert(0, "---".into())
        }
        Neutral::TrailingDocumentEnd if !lines.iter().any(|l| l.trim_end() == "...") => {
            lines.push("...".into())
        }
        Neutral::LeadingDocumentMarker | Neutral::TrailingDocumentEnd => {}
    }
    lines.join("\n") + "\n"
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "name",
        "region",
        "stream",
        "shards",
        "environments",
        "a",
        "0",
        "-1",
        "1e9",
        "true",
        "~",
        ":",
        ": ",
        "- ",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        "#",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "!",
        "!!str ",
        "|",
        ">",
        "'",
        "\"",
        "\\",
        "\n",
        "\r\n",
        "\r",
        "\t",
        " ",
        "  ",
        "    ",
        "? ",
        "%YAML 1.2",
        "---",
        "...",
        "\u{feff}",
        "\0",
        "é",
        "🦀",
        "\u{2028}",
    ]);
    prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(1024))]

    /// Any text at all.
    #[test]
    fn arbitrary_text_never_panics_and_errors_are_located(text in any::<String>()) {
        // Arbitrary Unicode is never a stack: it has no `name`.
        let _ = check_located(text.as_bytes());
    }

    /// Any bytes (the loader takes bytes: invalid UTF-8 is located too).
    #[test]
    fn arbitrary_bytes_never_panic_and_errors_are_located(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = check_located(&bytes);
    }

    /// Text made of YAML's own punctuation and the stack file's words.
    #[test]
    fn yaml_like_noise_never_panics_and_errors_are_located(text in yamlish()) {
        if let Ok(file) = check_located(text.as_bytes()) {
            resolve_all(&file);
        }
    }

    /// The shipped files with one to four structural mutations.
    #[test]
    fn mutated_shipped_files_are_valid_or_located_errors(
        which in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let files = shipped();
        let (_, original) = &files[which % files.len()];
        let mut text = original.clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        // Still valid: it resolves in every environment and compiles.
        if let Ok(file) = check_located(text.as_bytes()) {
            for env in std::iter::once(None).chain(file.environment_names().into_iter().map(Some)) {
                let resolved = file.resolve(env.as_deref()).unwrap();
                streamstack::template::compile(&resolved);
            }
        }
    }

    /// The same file written differently means the same stack.
    #[test]
    fn neutral_edits_keep_a_shipped_file_valid_and_unchanged(
        which in any::<usize>(),
        edits in prop::collection::vec(neutral(), 1..6),
    ) {
        let files = shipped();
        let (name, original) = &files[which % files.len()];
        let before = resolve_all(&spec::parse(name, original.as_bytes()).unwrap());
        let mut text = original.clone();
        for e in &edits {
            text = apply_neutral(&text, e);
        }
        let file = match spec::parse(name, text.as_bytes()) {
            Ok(file) => file,
            Err(report) => panic!("{edits:?} made {name} invalid:\n{report}\n{text}"),
        };
        prop_assert_eq!(resolve_all(&file), before);
    }
}

// ---------------------------------------------------------------------------
// Edge cases
// ---------------------------------------------------------------------------

fn errors(bytes: &[u8]) -> Vec<String> {
    let report = check_located(bytes).expect_err("must be rejected");
    report
        .diagnostics
        .iter()
        .map(|d| format!("{}:{} {}", d.span.line, d.span.column, d.message))
        .collect()
}

#[test]
fn every_shipped_file_is_valid_in_every_environment() {
    for (name, text) in shipped() {
        let file = spec::parse(&name, text.as_bytes()).unwrap_or_else(|r| panic!("{r}"));
        assert!(!resolve_all(&file).is_empty());
    }
}

#[test]
fn deep_flow_nesting_is_a_located_error() {
    for open in ["[", "{", "[{", "{a: "] {
        let text = format!(
            "name: tweets\nregion: us-east-1\ntags: {}",
            open.repeat(100_000)
        );
        let (errs, peak) = peak_bytes(|| errors(text.as_bytes()));
        assert_eq!(errs.len(), 1, "{open}: {errs:?}");
        assert!(errs[0].starts_with("3:"), "{open}: {errs:?}");
        assert!(
            peak < 64 * text.len() + (1 << 20),
            "{open}: {peak} bytes held for {} bytes of input",
            text.len()
        );
    }
}

#[test]
fn deep_block_nesting_is_a_located_error() {
    // Mappings, lists, and both mixed, far past the limit.
    // (Indentation grows with depth: 500 levels fit in the size limit.)
    let maps: String = (0..500)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let lists: String = (0..500)
        .map(|i| format!("{}- \n", " ".repeat(2 * i)))
        .collect();
    let mixed: String = (0..500)
        .map(|i| format!("{}- k{i}:\n", " ".repeat(4 * i)))
        .collect();
    for text in [maps, lists, mixed] {
        let text = format!("name: tweets\nregion: us-east-1\ntags:\n{text}");
        let errs = errors(text.as_bytes());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("nesting deeper than"), "{errs:?}");
    }
}

#[test]
fn alias_bombs_are_stopped_early_and_bounded() {
    // Billion laughs in flow and in block style, and a wide one-level fan-out.
    let mut flow = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let mut block = String::from("b0: &b0\n  k: lol\n");
    for i in 1..12 {
        let p = format!("*a{}", i - 1);
        flow.push_str(&format!("a{i}: &a{i} [{}]\n", vec![p; 10].join(", ")));
        block.push_str(&format!("b{i}: &b{i}\n"));
        for j in 0..10 {
            block.push_str(&format!("  k{j}: *b{}\n", i - 1));
        }
    }
    let wide = format!(
        "a: &a [{}]\nb: [{}]\n",
        vec!["x"; 5_000].join(","),
        vec!["*a"; 5_000].join(",")
    );
    // Few nodes, long text: one 900 KB string copied 30,000 times is 27 GB.
    let long = format!(
        "a: &a {}\nb: [{}]\n",
        "x".repeat(900_000),
        vec!["*a"; 30_000].join(",")
    );
    // The same through a key of the anchored mapping.
    let long_key = format!(
        "a: &a {{ {}: 1 }}\nb: [{}]\n",
        "k".repeat(900_000),
        vec!["*a"; 30_000].join(",")
    );
    for text in [flow, block, wide, long, long_key] {
        assert!(text.len() <= spec::MAX_FILE_BYTES);
        let (errs, peak) = peak_bytes(|| errors(text.as_bytes()));
        assert!(errs[0].contains("expands to more than"), "{errs:?}");
        // A tree of the node limit is tens of MB at most; the bomb is exabytes.
        assert!(peak < 256 << 20, "{peak} bytes held");
    }
}

#[test]
fn unknown_and_self_referencing_aliases_are_located_errors() {
    for text in ["name: *nothing\n", "name: &a [*a]\n", "a: &a\n  b: *a\n"] {
        let errs = errors(text.as_bytes());
        assert!(!errs.is_empty(), "{text}");
    }
}

#[test]
fn a_file_just_under_the_size_limit_is_parsed_and_bounded() {
    // Megabytes of comments, of long strings, of keys, of list items.
    let head = "name: tweets\nregion: us-east-1\ntags:\n";
    let comments = format!("{head}{}", "# comment\n".repeat(100_000));
    let long_value = format!("{head}  k: {}\n", "v".repeat(1_000_000));
    let long_key = format!("{head}  {}: v\n", "k".repeat(1_000_000));
    let many_keys: String = format!(
        "{head}{}",
        (0..60_000)
            .map(|i| format!("  k{i}: v\n"))
            .collect::<String>()
    );
    let many_items = format!("{head}  k: [{}]\n", vec!["1"; 400_000].join(","));
    for text in [comments, long_value, long_key, many_keys, many_items] {
        assert!(text.len() <= spec::MAX_FILE_BYTES, "{}", text.len());
        let (_, peak) = peak_bytes(|| {
            let _ = check_located(text.as_bytes());
        });
        assert!(
            peak < 200 * text.len(),
            "{peak} bytes held for {} bytes of input",
            text.len()
        );
    }
}

#[test]
fn thousands_of_environments_are_a_located_error() {
    // Each environment is resolved and checked against the whole base, so
    // 5,000 of them over a large base would take hours: past the limit,
    // the first extra one is reported and the rest are not checked.
    let mut text = String::from("name: tweets\nregion: us-east-1\nstream: { shards: 3 }\ntags:\n");
    for i in 0..10_000 {
        text.push_str(&format!("  t{i}: v\n"));
    }
    text.push_str("environments:\n");
    let first_env_line = text.lines().count() + 1;
    for i in 0..5_000 {
        text.push_str(&format!("  e{i}: {{ stream: {{ mode: on-demand }} }}\n"));
    }
    let report = check_located(text.as_bytes()).unwrap_err();
    let limit = spec::MAX_ENVIRONMENTS;
    let over: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.message.starts_with("more than"))
        .collect();
    assert_eq!(over.len(), 1, "{}", report);
    assert_eq!(
        (over[0].span.line, over[0].span.column),
        (first_env_line + limit, 3)
    );
    // The environments within the limit are checked: each one's own mistake
    // (one the cross-field rules find only with the environment applied).
    let shards = report
        .diagnostics
        .iter()
        .filter(|d| d.message.contains("applies only to a provisioned stream"))
        .count();
    assert_eq!(shards, limit);
}

#[test]
fn a_mistake_repeated_in_several_environments_is_reported_in_each() {
    let text = "name: tweets\nregion: us-east-1\nenvironments:\n  a: { stream: { mode: on-demand, shards: 2 } }\n  b: { stream: { mode: on-demand } }\n  c: { stream: { mode: on-demand } }\nstream: { shards: 3 }\n";
    let errs = errors(text.as_bytes());
    assert_eq!(
        errs,
        [
            "4:43 `shards` applies only to a provisioned stream (environment \"a\")",
            "7:19 `shards` applies only to a provisioned stream (environment \"b\")",
            "7:19 `shards` applies only to a provisioned stream (environment \"c\")",
        ]
    );
}

#[test]
fn a_lone_carriage_return_ends_a_line_as_in_yaml() {
    // Old Mac line ends: YAML counts `\r` as a line break, so must the report.
    let errs = errors(b"name: tweets\rregion: us-east-1\rstream: { shards: x }\r");
    assert_eq!(errs, ["3:19 `shards` must be an integer, found a string"]);
    let errs = errors(b"name: tweets\r\nregion: us-east-1\rstream: { shards: x }\n");
    assert_eq!(errs, ["3:19 `shards` must be an integer, found a string"]);
}

#[test]
fn tabs_are_located_errors() {
    let errs = errors(b"name: tweets\nregion: us-east-1\nstream:\n\tshards: 2\n");
    assert!(errs[0].starts_with("4:"), "{errs:?}");
    // A tab as separation: YAML allows it, saphyr-parser does not; either
    // way, nothing is lost silently and any error is on that line.
    if let Err(report) = check_located(b"name: tweets\nregion:\tus-east-1\n") {
        assert_eq!(report.diagnostics[0].span.line, 2);
    }
}

#[test]
fn a_byte_order_mark_and_crlf_are_accepted() {
    let (name, text) = &shipped()[1];
    let plain = resolve_all(&spec::parse(name, text.as_bytes()).unwrap());
    let bom = format!("\u{feff}{text}");
    assert_eq!(resolve_all(&check_located(bom.as_bytes()).unwrap()), plain);
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(resolve_all(&check_located(crlf.as_bytes()).unwrap()), plain);
    // And an error after a BOM or in a CRLF file is still at the right place.
    let errs =
        errors("\u{feff}name: tweets\r\nregion: us-east-1\r\nstream: { shards: x }\r\n".as_bytes());
    assert_eq!(errs, ["3:19 `shards` must be an integer, found a string"]);
}

#[test]
fn nul_bytes_and_control_characters_are_located_errors() {
    for text in [
        "name: tweets\nregion: us-east-1\0\n",
        "\0",
        "name: tw\0eets\nregion: us-east-1\n",
        "name: tweets\nregion: us-east-1\n\u{7}: x\n",
    ] {
        let errs = errors(text.as_bytes());
        assert!(!errs.is_empty());
    }
}

#[test]
fn invalid_utf8_is_located_at_its_byte() {
    for (bytes, at) in [
        (b"\xff".as_slice(), "1:1"),
        (b"name: tweets\nregion: us-\xc3\n", "2:12"),
        (
            b"name: \xc3\xa9\nregion: \xf0\x9f\xa6\x80\xe2\x82\n".as_slice(),
            "2:10",
        ),
    ] {
        let errs = errors(bytes);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with(at), "{errs:?}");
    }
}

#[test]
fn a_valid_file_always_resolves_whatever_its_numbers() {
    // Floats without a fraction, integers too large for any field: the
    // loader either reads them as integers or says where they are, but never
    // passes a file that then cannot be resolved.
    for value in [
        "2.0",
        "5e0",
        "1e3",
        "-0.0",
        "1e19",
        "99999999999999999999",
        "1e300",
    ] {
        for key in ["stream: { shards: ", "alarms: { iterator_age_s: "] {
            let text = format!("name: tweets\nregion: us-east-1\n{key}{value} }}\n");
            if let Ok(file) = check_located(text.as_bytes()) {
                resolve_all(&file);
            }
        }
    }
    let file =
        check_located(b"name: tweets\nregion: us-east-1\nstream: { shards: 2.0 }\n").unwrap();
    assert_eq!(file.resolve(None).unwrap().stack.stream.shard_count(), 2);
    let errs = errors(b"name: tweets\nregion: us-east-1\nalarms: { iterator_age_s: 1e300 }\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("3:27 `iterator_age_s`"), "{errs:?}");
}
