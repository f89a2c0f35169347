//! The binary as a user runs it: exit codes, what goes to stdout and stderr.

use assert_cmd::Command;
use predicates::prelude::*;

fn streamstack() -> Command {
    let mut cmd = Command::cargo_bin("streamstack").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn validate_accepts_every_shipped_stack() {
    for stack in ["stacks/tweets.yaml", "stacks/minimal.yaml"] {
        streamstack()
            .args(["validate", stack])
            .assert()
            .success()
            .stdout(predicate::str::contains("valid"));
    }
    streamstack()
        .args(["validate", "stacks/tweets.yaml"])
        .assert()
        .success()
        .stdout("stacks/tweets.yaml: valid (environments: local, dev, prod)\n");
}

/// `validate FILE`'s report of a wrong stack file, which must exit 1.
fn validate_refuses(file: &str) -> String {
    let out = streamstack().args(["validate", file]).assert().code(1);
    String::from_utf8(out.get_output().stderr.clone()).unwrap()
}

#[test]
fn validate_reports_every_mistake_with_its_location_and_exits_1() {
    let stderr = validate_refuses("tests/fixtures/invalid/several-mistakes.yaml");
    for place in [
        "1:7", "4:3", "5:20", "6:9", "8:22", "9:15", "11:12", "13:19", "16:23", "17:5",
    ] {
        assert!(
            stderr.contains(&format!(
                "tests/fixtures/invalid/several-mistakes.yaml:{place}: "
            )),
            "{place} missing in:\n{stderr}"
        );
    }
    // The offending line is shown, and the hint.
    assert!(stderr.contains("  shard: 2"));
    assert!(stderr.contains("did you mean \"shards\"?"));
    assert!(stderr.contains("several-mistakes.yaml: 11 errors"));
}

#[test]
fn validate_json_output_lists_errors_for_tools() {
    let out = streamstack()
        .args([
            "--output",
            "json",
            "validate",
            "tests/fixtures/invalid/unknown-key.yaml",
        ])
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 4);
    assert_eq!(v["errors"][0]["column"], 3);
    assert_eq!(v["errors"][0]["hint"], "did you mean \"instance_type\"?");
}

#[test]
fn validate_of_a_missing_file_or_unknown_environment_exits_1() {
    streamstack()
        .args(["validate", "stacks/nope.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read stack file"));
    streamstack()
        .args(["validate", "stacks/tweets.yaml", "--env", "staging"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no environment \"staging\""));
}

#[test]
fn synth_prints_the_template_and_writes_the_same_bytes_with_out() {
    let printed = streamstack()
        .args(["synth", "stacks/tweets.yaml", "-e", "prod"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&printed).unwrap();
    assert_eq!(v["AWSTemplateFormatVersion"], "2010-09-09");
    assert_eq!(v["Metadata"]["streamstack"]["stack"], "tweets-prod");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    streamstack()
        .args(["synth", "stacks/tweets.yaml", "-e", "prod", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(std::fs::read(&out).unwrap(), printed);
}

#[test]
fn synth_refuses_an_invalid_stack_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    streamstack()
        .args(["synth", "tests/fixtures/invalid/out-of-range.yaml", "-o"])
        .arg(&out)
        .assert()
        .code(1);
    assert!(!out.exists());
}

#[test]
fn schema_is_a_json_schema_with_environments() {
    let out = streamstack().arg("schema").assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(
        v["properties"]["environments"]["additionalProperties"]["properties"]["stream"].is_object()
    );
    assert!(v["required"].as_array().unwrap().contains(&"name".into()));
}

/// The processor ships to Amazon Linux 2023, whose glibc is 2.34: the binary
/// must not need a newer symbol version.
#[test]
fn the_binary_needs_no_glibc_newer_than_amazon_linux_2023s() {
    let binary = assert_cmd::cargo::cargo_bin!("streamstack");
    let out = std::process::Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .expect("objdump (binutils) runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut newest = (0u32, 0u32);
    for version in text.split("GLIBC_").skip(1) {
        let digits: String = version
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = digits.split('.').filter_map(|p| p.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
            newest = newest.max((major, minor));
        }
    }
    assert!(newest >= (2, 17), "no GLIBC versions found: {text:.500}");
    assert!(
        newest <= (2, 34),
        "the binary needs GLIBC_{}.{}",
        newest.0,
        newest.1
    );
}

/// A binary that cannot run on the hosts is refused before any AWS call:
/// the endpoint here answers nothing, and the refusal says how to get one.
#[test]
fn up_refuses_a_processor_binary_the_hosts_cannot_run_before_touching_aws() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("streamstack");
    std::fs::write(&script, "#!/bin/sh\necho not an ELF\n").unwrap();
    streamstack()
        .args([
            "up",
            "stacks/tweets.yaml",
            "--env",
            "prod",
            "--processor-binary",
        ])
        .arg(&script)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("is not a Linux executable")
                .and(predicate::str::contains("nothing was changed on AWS"))
                .and(predicate::str::contains("make dist"))
                .and(predicate::str::contains("--processor-binary"))
                .and(predicate::str::contains("describing stack").not()),
        );
}

/// The binary with no AWS settings at all: no credentials anywhere, no
/// instance metadata, and an endpoint on loopback so nothing leaves it.
fn bare(home: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("streamstack").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn without_credentials_plan_says_where_it_looked_and_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let out = bare(home.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["plan", "stacks/tweets.yaml", "-e", "dev"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("no AWS credentials found"), "{err}");
    // Where the SDK looked, each source named...
    for source in [
        "Environment",
        "Profile",
        "WebIdentityToken",
        "Ec2InstanceMetadata",
    ] {
        assert!(err.contains(source), "{source}: {err}");
    }
    // ...and the three ways forward.
    assert!(
        err.contains("AWS_PROFILE") && err.contains("aws sso login") && err.contains("-e local"),
        "{err}"
    );
    assert!(
        !err.contains("DispatchFailure(") && !err.contains("ConnectorError"),
        "a debug dump: {err}"
    );
    // The error itself stays short (log lines before it, such as the SDK's
    // warning that the test's AWS_CONFIG_FILE does not exist, are apart).
    let error = &err[err.find("error:").expect("an error line")..];
    assert!(error.len() < 1_200, "{} characters: {error}", error.len());
}

#[test]
fn an_unreachable_endpoint_is_named_with_what_to_check() {
    let home = tempfile::tempdir().unwrap();
    let out = bare(home.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["plan", "stacks/tweets.yaml", "-e", "dev"])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("cannot reach the AWS endpoint") && err.contains("Connection refused"),
        "{err}"
    );
    assert!(
        err.contains("--endpoint-url") && err.contains("--region"),
        "{err}"
    );
    assert!(
        !err.contains("DispatchFailure(") && !err.contains("ConnectorError"),
        "a debug dump: {err}"
    );
}

#[test]
fn validate_locates_jq_errors_inside_the_expression_all_at_once() {
    let stderr = validate_refuses("tests/fixtures/jq/bad-jq.yaml");
    // `      kind: '.type | (.a'`: the expression starts at column 14 and the
    // parenthesis is never closed, at its end (column 25).
    // `      user: '.actor | no_such_filter'`: the unknown filter at column 23.
    // `    - { name: kind, by: '[.type]' }` counts an array: the expression, at column 25.
    for (place, message) in [
        (
            "8:25",
            "transform.fields.kind: expected closing parenthesis",
        ),
        (
            "9:23",
            "transform.fields.user: undefined filter `no_such_filter/0`",
        ),
        ("11:25", "aggregates.kind.by yields an array"),
    ] {
        assert!(
            stderr.contains(&format!("tests/fixtures/jq/bad-jq.yaml:{place}: {message}")),
            "{place} {message}:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 errors"), "{stderr}");
}

#[test]
fn test_runs_the_cases_in_and_beside_the_stack_file_and_fails_with_a_diff() {
    streamstack()
        .args(["test", "tests/fixtures/jq/orders.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok    tests/fixtures/jq/orders.yaml: an order becomes an item and counts its country and skus",
        ))
        .stdout(predicate::str::contains(
            "ok    tests/fixtures/jq/orders.yaml: two orders in one record, one without a key",
        ))
        .stdout(predicate::str::contains("2 case(s), 2 passed, 0 failed"));

    // The same stack, and beside it a case that expects the wrong total.
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("shop.yaml");
    std::fs::copy("tests/fixtures/jq/orders.yaml", &stack).unwrap();
    std::fs::write(
        dir.path().join("shop.tests.yaml"),
        "tests:\n  - name: the wrong total\n    record: { order_id: o-3, total: 10 }\n    items:\n      - { order_id: o-3, total: 11, items: [] }\n",
    )
    .unwrap();
    let out = streamstack()
        .args(["test", stack.to_str().unwrap()])
        .assert()
        .code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("FAIL  ") && stdout.contains("the wrong total"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-    \"total\": 11") && stdout.contains("+    \"total\": 10"),
        "{stdout}"
    );
    assert!(stdout.contains("2 case(s), 1 passed, 1 failed"), "{stdout}");
}

#[test]
fn transform_with_a_stack_runs_its_jq_transform_on_a_file() {
    let out = streamstack()
        .args(["transform", "-", "--stack", "tests/fixtures/jq/orders.yaml"])
        .write_stdin(
            "{\"order_id\": \"o-1\", \"total\": 123456789012345678901234567890123456789}\n[{\"order_id\": 5, \"total\": 2.5}, {\"order_id\": \"\"}]\n\n",
        )
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stdout, "{\"items\":[],\"order_id\":\"5\",\"total\":2.5}\n");
    assert!(stderr.contains("dead letter: line 1, event 0 of the record: fields.total: 123456789012345678901234567890123456789 has 39 significant digits"), "{stderr}");
    assert!(
        stderr.contains("dead letter: line 2, event 1 of the record: key: yielded an empty string"),
        "{stderr}"
    );
    assert!(
        stderr.contains("transform: 3 lines, 1 events, 1 items, 2 dead letters, 1 keep-alives"),
        "{stderr}"
    );
}
