//! Ships the processor to its host(s) on AWS: the binary and the stack file
//! go to the stack's artifacts bucket under their SHA-256, a pointer
//! (`processor/current`) names them, and SSM Run Command re-runs each host's
//! bootstrap (its user data, kept by cloud-init) so it fetches, checks and
//! installs them and restarts the service (deploy::rollout). Instances are
//! never replaced for a new binary, and nothing needs SSH. Unchanged
//! artifacts upload nothing.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use crate::aws::{Aws, AwsError, ResultExt};
use crate::names::artifacts;

/// The host's bootstrap as cloud-init keeps the user data script.
pub const BOOTSTRAP_ON_HOST: &str = "/var/lib/cloud/instance/scripts/part-001";

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub sha256: String,
    /// The binary was uploaded (false: that content was already there).
    pub uploaded: bool,
    /// The pointer named other artifacts before.
    pub changed: bool,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pointer the bootstrap reads (see scripts/host-bootstrap.sh).
pub fn pointer(binary_sha: &str, stack_sha: &str, env: Option<&str>) -> String {
    format!(
        "key={}\nsha256={binary_sha}\nstack_key={}\nenv={}\n",
        artifacts::binary_key(binary_sha),
        artifacts::stack_file_key(stack_sha),
        env.unwrap_or("")
    )
}

async fn exists(aws: &Aws, bucket: &str, key: &str) -> Result<bool, AwsError> {
    match aws.s3().head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if crate::aws::is_not_found(&e) => Ok(false),
        Err(e) => Err(AwsError::new(format!("looking for s3://{bucket}/{key}"), e)),
    }
}

async fn put(aws: &Aws, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
    aws.s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        // A binary of tens of MB on a slow uplink outlasts the per-attempt
        // timeout meant for the processor's small calls.
        .customize()
        .config_override(
            aws_sdk_s3::config::Builder::default()
                .timeout_config(aws_config::timeout::TimeoutConfig::disabled()),
        )
        .send()
        .await
        .aws(format!("uploading s3://{bucket}/{key}"))?;
    Ok(())
}

/// Uploads what changed and points `processor/current` at it; the hosts get
/// it from deploy::rollout.
pub async fn ship(
    aws: &Aws,
    bucket: &str,
    binary: &Path,
    stack_file: &Path,
    env: Option<&str>,
) -> Result<Shipment, ShipError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ShipError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let binary_bytes = read(binary)?;
    let sha = sha256_hex(&binary_bytes);
    let stack_bytes = read(stack_file)?;
    let stack_sha = sha256_hex(&stack_bytes);

    let binary_key = artifacts::binary_key(&sha);
    let uploaded = !exists(aws, bucket, &binary_key).await?;
    if uploaded {
        put(aws, bucket, &binary_key, binary_bytes).await?;
    }
    let stack_key = artifacts::stack_file_key(&stack_sha);
    if !exists(aws, bucket, &stack_key).await? {
        put(aws, bucket, &stack_key, stack_bytes).await?;
    }
    let wanted = pointer(&sha, &stack_sha, env);
    let pointer_key = artifacts::pointer_key();
    let current = match aws
        .s3()
        .get_object()
        .bucket(bucket)
        .key(&pointer_key)
        .send()
        .await
    {
        Ok(out) => out
            .body
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.into_bytes()).into_owned())
            .ok(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
        Err(e) => {
            return Err(AwsError::new(format!("reading s3://{bucket}/{pointer_key}"), e).into());
        }
    };
    let changed = current.as_deref() != Some(wanted.as_str());
    if changed {
        put(aws, bucket, &pointer_key, wanted.into_bytes()).await?;
    }
    Ok(Shipment {
        sha256: sha,
        uploaded,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pointer_names_content_addressed_keys() {
        let p = pointer(&"a".repeat(64), &"b".repeat(64), Some("prod"));
        assert_eq!(
            p,
            format!(
                "key=processor/{a}/streamstack\nsha256={a}\nstack_key=processor/stacks/{b}.yaml\nenv=prod\n",
                a = "a".repeat(64),
                b = "b".repeat(64)
            )
        );
        assert!(pointer("x", "y", None).ends_with("env=\n"));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
