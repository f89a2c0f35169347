//! One fixture a kind of mistake: each file under tests/fixtures/invalid
//! ends with the diagnostics it must produce (`# expect: LINE:COL message`),
//! and validation must report exactly those, at exactly those places.

use std::path::Path;

use streamstack::spec;

fn expectations(text: &str) -> Vec<(usize, usize, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let (place, message) = rest.split_once(' ').expect("`# expect: LINE:COL message`");
            let (line, col) = place.split_once(':').expect("LINE:COL");
            (
                line.parse().unwrap(),
                col.parse().unwrap(),
                message.to_string(),
            )
        })
        .collect()
}

#[test]
fn every_fixture_reports_exactly_its_expected_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut checked = 0;
    // Every mismatch, with what the loader said in the `# expect:` form
    // (so a new fixture's expectations can be reviewed and pasted).
    let mut mismatches = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        // Bytes: some fixtures are not UTF-8 on purpose; the expectations are ASCII.
        let bytes = std::fs::read(&path).unwrap();
        let expected = expectations(&String::from_utf8_lossy(&bytes));
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` lines",
            path.display()
        );
        let report = spec::parse(&path.display().to_string(), &bytes)
            .expect_err(&format!("{} must be invalid", path.display()));
        let actual: Vec<(usize, usize, String)> = report
            .diagnostics
            .iter()
            .map(|d| (d.span.line, d.span.column, d.message.clone()))
            .collect();
        if actual != expected {
            let said: String = actual
                .iter()
                .map(|(l, c, m)| format!("# expect: {l}:{c} {m}\n"))
                .collect();
            mismatches.push(format!("{}:\n{said}", path.display()));
        }
        for d in &report.diagnostics {
            assert!(
                d.hint.is_some() || d.message.contains("YAML syntax"),
                "{}: `{}` has no hint",
                path.display(),
                d.message
            );
        }
        checked += 1;
    }
    assert!(
        mismatches.is_empty(),
        "diagnostics differ from the `# expect:` lines; the loader said:\n\n{}",
        mismatches.join("\n")
    );
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn unknown_keys_suggest_the_nearest_known_key() {
    let text = "name: tweets\nregion: us-east-1\nstream: { shard: 2 }\nalarms: { zzz: 1 }\n";
    let report = spec::parse("s.yaml", text.as_bytes()).unwrap_err();
    let hints: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| d.hint.clone().unwrap())
        .collect();
    assert_eq!(hints[0], "did you mean \"shards\"?");
    // Nothing close: list what is allowed instead of guessing.
    assert!(
        hints[1].starts_with("expected one of: archive_freshness_s, dead_letters, email"),
        "{}",
        hints[1]
    );
}

#[test]
fn an_unknown_environment_is_an_error_with_a_suggestion() {
    let text =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/tweets.yaml")).unwrap();
    let file = spec::parse("stacks/tweets.yaml", &text).unwrap();
    let report = file.resolve(Some("prdo")).unwrap_err();
    assert_eq!(
        report.diagnostics[0].message,
        "no environment \"prdo\" in this file"
    );
    assert_eq!(
        report.diagnostics[0].hint.as_deref(),
        Some("did you mean \"prod\"?")
    );
}
