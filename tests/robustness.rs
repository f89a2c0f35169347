//! Hostile and broken input: the loader answers with located errors, never
//! a panic, and stops early on input that would blow up time or memory.
//! (Speed itself is measured by `make bench`, not asserted here.)

use streamstack::spec;

fn first_error(bytes: &[u8]) -> String {
    let report = spec::parse("input.yaml", bytes).expect_err("input must be rejected");
    assert!(!report.diagnostics.is_empty());
    report.diagnostics[0].message.clone()
}

#[test]
fn empty_file() {
    assert_eq!(
        first_error(b""),
        "the stack file must be a mapping, found null"
    );
}

#[test]
fn non_utf8_is_located() {
    let report = spec::parse("input.yaml", b"name: tweets\nregion: \xff\xfe\n").unwrap_err();
    let d = &report.diagnostics[0];
    assert_eq!(d.message, "the file is not UTF-8 text");
    assert_eq!((d.span.line, d.span.column), (2, 9));
}

#[test]
fn binary_garbage() {
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    first_error(&bytes);
    first_error(b"\0\0\0\0name: x");
}

#[test]
fn oversized_file_is_refused_without_parsing() {
    let mut big = b"name: tweets\nregion: us-east-1\ntags:\n".to_vec();
    while big.len() < 10 * 1024 * 1024 {
        big.extend_from_slice(b"  k: v\n");
    }
    assert!(first_error(&big).contains("larger than 1024 KiB"));
}

#[test]
fn deep_nesting_stops_at_the_limit() {
    // Flow nesting is stopped by the YAML scanner's own limit, block nesting by ours.
    let deep = format!("name: {}", "[".repeat(1_000_000));
    assert!(first_error(deep.as_bytes()).contains("recursion limit exceeded"));
    let deep_block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert!(first_error(deep_block.as_bytes()).contains("nesting deeper than"));
}

#[test]
fn billion_laughs_is_stopped() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = format!("*a{}", i - 1);
        text.push_str(&format!(
            "a{i}: &a{i} [{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}]\n"
        ));
    }
    assert!(first_error(text.as_bytes()).contains("expands to more than"));
}

#[test]
fn duplicate_keys_are_all_reported() {
    let report = spec::parse(
        "d.yaml",
        b"name: alpha\nname: beta\nregion: us-east-1\nregion: us-west-2\n",
    )
    .unwrap_err();
    let lines: Vec<_> = report.diagnostics.iter().map(|d| d.span.line).collect();
    assert_eq!(lines, vec![2, 4]);
}

#[test]
fn a_list_or_scalar_document_is_not_a_stack() {
    assert_eq!(
        first_error(b"- a\n- b\n"),
        "the stack file must be a mapping, found a list"
    );
    assert_eq!(
        first_error(b"just text"),
        "the stack file must be a mapping, found a string"
    );
}

/// Thousands of mutated copies of the example stack (bytes flipped, cut,
/// duplicated): each one either resolves and compiles in every environment,
/// or is rejected with diagnostics that point inside the file. Never a panic.
#[test]
fn mutated_stack_files_never_panic_and_errors_point_inside_the_file() {
    let original =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/stacks/tweets.yaml")).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: deterministic, so a failure reproduces.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = (next() % 256) as u8,
                1 => bytes.truncate(at.max(1)),
                2 => {
                    let len = (next() as usize % 40).min(bytes.len() - at);
                    let chunk = bytes[at..at + len].to_vec();
                    bytes.splice(at..at, chunk);
                }
                _ => {
                    bytes.remove(at);
                }
            }
            if bytes.is_empty() {
                bytes.push(b'x');
            }
        }
        match spec::parse("m.yaml", &bytes) {
            Ok(file) => {
                for env in
                    std::iter::once(None).chain(file.environment_names().into_iter().map(Some))
                {
                    let resolved = file
                        .resolve(env.as_deref())
                        .expect("a valid file resolves in each of its environments");
                    streamstack::template::compile(&resolved);
                }
                accepted += 1;
            }
            Err(report) => {
                let lines = report.source.text().lines().count().max(1) + 1;
                assert!(!report.diagnostics.is_empty());
                for d in &report.diagnostics {
                    assert!(
                        d.span.line >= 1 && d.span.line <= lines,
                        "line {} of {lines}: {}",
                        d.span.line,
                        d.message
                    );
                    assert!(d.span.offset + d.span.len <= report.source.text().len());
                }
                rejected += 1;
            }
        }
    }
    // Both paths must have been exercised for the test to mean anything.
    assert!(
        accepted > 100 && rejected > 100,
        "accepted {accepted}, rejected {rejected}"
    );
}
