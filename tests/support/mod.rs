//! Shared by the tests that need the local emulator (a moto server that
//! `make test` starts; see scripts/emulator.sh).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use streamstack::aws::Aws;

/// The emulator's endpoint. These tests cannot pass without it, so they fail
/// loudly instead of skipping.
pub fn endpoint() -> String {
    std::env::var("STREAMSTACK_TEST_ENDPOINT").expect(
        "these tests need the local emulator: run them through `make test` (it starts one), \
         or start one with `scripts/emulator.sh start` and set STREAMSTACK_TEST_ENDPOINT=http://127.0.0.1:4566",
    )
}

/// The binary, pointed at the emulator through the standard AWS settings only.
pub fn streamstack() -> Command {
    Command::from_std(streamstack_std())
}

/// The same, as a std command (for processes the test spawns and kills).
pub fn streamstack_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("streamstack"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    cmd
}

/// SDK clients for checking what the binary did.
pub async fn aws() -> Aws {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    Aws::from_config(&config)
}

/// A copy of a shipped stack file under a name no other test uses, so tests
/// can share one emulator.
pub struct StackCopy {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub name: String,
}

pub fn stack_copy(shipped: &str, edit: impl Fn(String) -> String) -> StackCopy {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stacks")
            .join(shipped),
    )
    .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("t{:x}{:05x}", std::process::id() % 4096, nanos % 0xfffff);
    let original = text
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap()
        .to_string();
    let text = edit(text.replacen(&format!("name: {original}"), &format!("name: {name}"), 1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(shipped);
    std::fs::write(&path, text).unwrap();
    StackCopy { dir, path, name }
}
