//! Shipping the processor to a host, against the emulator: `ship` uploads by
//! content hash and writes the pointer; the host's bootstrap
//! (scripts/host-bootstrap.sh), run in a sandbox (a temporary root, the AWS
//! CLI pointed at the emulator, no systemd), fetches the binary, checks its
//! hash, runs it, installs it and writes the unit; a wrong hash, a missing
//! object or a binary that does not run fails loudly and installs nothing.
//! A pointer S3 will not show (403: how it answers a missing key to a role
//! without s3:ListBucket) is "not shipped yet", as a missing one is.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use aws_sdk_s3::primitives::ByteStream;
use streamstack::aws::Aws;
use streamstack::deploy::ship::{self, sha256_hex};
use support::{aws, endpoint};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// An `aws` command for the script: the emulator venv's AWS CLI.
fn aws_cli_dir(dir: &Path) -> PathBuf {
    fake_aws(
        dir,
        &format!("exec {REPO}/.venv/emulator/bin/python -m awscli \"$@\""),
    )
}

/// An `aws` command running `body` (a shell script).
fn fake_aws(dir: &Path, body: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("aws");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn bootstrap(root: &Path, bucket: &str, tools: &Path) -> Output {
    bootstrap_at(root, bucket, tools, &endpoint())
}

fn bootstrap_at(root: &Path, bucket: &str, tools: &Path, endpoint: &str) -> Output {
    let path = format!("{}:{}", tools.display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new("bash")
        .arg(format!("{REPO}/scripts/host-bootstrap.sh"))
        .env_clear()
        .env("PATH", path)
        .env("HOME", root)
        .env("PREFIX", root)
        .env("STREAMSTACK_STACK", "shipped-prod")
        .env("STREAMSTACK_REGION", "us-east-1")
        .env("STREAMSTACK_ARTIFACT_BUCKET", bucket)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    eprintln!(
        "bootstrap exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn bucket(aws: &Aws, name: &str) -> String {
    aws.s3().create_bucket().bucket(name).send().await.unwrap();
    name.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn ship_then_bootstrap_installs_the_checked_binary_and_its_unit() {
    let aws = aws().await;
    let tmp = tempfile::tempdir().unwrap();
    let tools = aws_cli_dir(tmp.path());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let bucket = bucket(&aws, &format!("artifacts-{nanos:x}")).await;

    // Before anything is shipped, the bootstrap says so and succeeds.
    let root0 = tmp.path().join("root0");
    let out = bootstrap(&root0, &bucket, &tools);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no processor shipped yet"));
    assert!(!root0.join("usr/local/bin/streamstack").exists());

    // Ship a (tiny, fake) binary and the stack file.
    let binary = tmp.path().join("streamstack");
    std::fs::write(&binary, b"#!/bin/sh\necho streamstack 0.1.0-fake\n").unwrap();
    let stack_file = Path::new(REPO).join("stacks/tweets.yaml");
    let first = ship::ship(&aws, &bucket, &binary, &stack_file, Some("prod"))
        .await
        .unwrap();
    assert!(first.uploaded && first.changed);
    assert_eq!(first.sha256, sha256_hex(&std::fs::read(&binary).unwrap()));
    let key = format!("processor/{}/streamstack", first.sha256);
    aws.s3()
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    // The same again: nothing uploaded, nothing rolled out.
    let again = ship::ship(&aws, &bucket, &binary, &stack_file, Some("prod"))
        .await
        .unwrap();
    assert!(!again.uploaded && !again.changed);

    // The host installs what was shipped.
    let root = tmp.path().join("root");
    let out = bootstrap(&root, &bucket, &tools);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("new binary runs: streamstack 0.1.0-fake"),
        "it ran the binary before installing it"
    );
    let installed = root.join("usr/local/bin/streamstack");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&binary).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read(root.join("etc/streamstack/stack.yaml")).unwrap(),
        std::fs::read(&stack_file).unwrap()
    );
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/streamstack.service")).unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/streamstack consume /etc/streamstack/stack.yaml --env prod\n"
        ),
        "{unit}"
    );
    for line in [
        "Restart=always",
        "EnvironmentFile=/etc/streamstack/streamstack.env",
        "WantedBy=multi-user.target",
        "TimeoutStopSec=10",
    ] {
        assert!(unit.contains(line), "{line} missing from\n{unit}");
    }
    let env = std::fs::read_to_string(root.join("etc/streamstack/streamstack.env")).unwrap();
    assert!(env.contains("STREAMSTACK_STACK=shipped-prod") && env.contains("AWS_REGION=us-east-1"));

    // Tampered bytes under the hash: refused, and the installed binary stays.
    aws.s3()
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from_static(b"#!/bin/sh\necho evil\n"))
        .send()
        .await
        .unwrap();
    let out = bootstrap(&root, &bucket, &tools);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has sha256") && err.contains("not installed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&binary).unwrap()
    );

    // A missing object: refused, loudly.
    aws.s3()
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let out = bootstrap(&root, &bucket, &tools);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("downloading s3://{bucket}/{key} failed")),
        "{err}"
    );

    // A binary that does not run here (an ELF of another architecture): its
    // hash is right, but it is not installed, and the failure says why.
    let mut foreign = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    foreign.truncate(4096);
    foreign[18..20].copy_from_slice(
        &(if cfg!(target_arch = "aarch64") {
            62u16
        } else {
            183u16
        })
        .to_le_bytes(),
    );
    std::fs::write(&binary, &foreign).unwrap();
    let bad = ship::ship(&aws, &bucket, &binary, &stack_file, Some("prod"))
        .await
        .unwrap();
    assert!(bad.changed);
    let out = bootstrap(&root, &bucket, &tools);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "the new binary {} does not run on this host",
            &bad.sha256[..12]
        )) && err.contains("not installed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        b"#!/bin/sh\necho streamstack 0.1.0-fake\n",
        "the running binary stays"
    );
}

/// What the AWS CLI prints when S3 answers 403 (a missing key, to a role
/// without s3:ListBucket), and when it cannot be reached at all.
const FORBIDDEN: &str =
    "fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden";
const UNREACHABLE: &str = "fatal error: Could not connect to the endpoint URL: \"https://s3.us-east-1.amazonaws.com/artifacts/processor/current\"";

#[test]
fn a_pointer_s3_answers_403_for_is_not_shipped_yet_but_other_errors_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let tools = fake_aws(
        &tmp.path().join("forbidden"),
        &format!("echo '{FORBIDDEN}' >&2; exit 1"),
    );
    let root = tmp.path().join("root");
    let out = bootstrap_at(&root, "artifacts", &tools, "http://127.0.0.1:9");
    assert!(
        out.status.success(),
        "first boot before any `up` must not fail"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("no processor shipped yet") && said.contains("403"),
        "{said}"
    );
    assert!(!root.join("usr/local/bin/streamstack").exists());

    let tools = fake_aws(
        &tmp.path().join("unreachable"),
        &format!("echo '{UNREACHABLE}' >&2; exit 1"),
    );
    let out = bootstrap_at(&root, "artifacts", &tools, "http://127.0.0.1:9");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Could not connect"));
}
