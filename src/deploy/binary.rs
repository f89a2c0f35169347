//! The processor binary that `up` ships must run on the host: a Linux ELF
//! for the instance type's architecture that needs no glibc newer than
//! Amazon Linux 2023's. Checked before any AWS change, because a binary that
//! does not run there is only found out after the rollout, on every host, as
//! a crash-looping service.

use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

/// The newest glibc the default AMI (Amazon Linux 2023) ships.
pub const HOST_GLIBC: (u32, u32) = (2, 34);

/// A CPU architecture of EC2 instance types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// The architecture of an instance type. Graviton types carry a `g` among
    /// the attribute letters after the generation digit (`t4g`, `m7gd`,
    /// `c6gn`, `im4gn`, `is4gen`, `g5g`, `hpc7g`); `a1` is the first Graviton.
    /// A `g` before the digit is the GPU family (`g4dn`, `g6e`, `gr6`): x86.
    pub fn of_instance_type(instance_type: &str) -> Arch {
        let family = instance_type.split('.').next().unwrap_or_default();
        let attributes = family
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .trim_start_matches(|c: char| c.is_ascii_digit());
        if family == "a1" || attributes.contains('g') {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }

    fn machine(self) -> elf::Machine {
        match self {
            Arch::X86_64 => elf::EM_X86_64,
            Arch::Arm64 => elf::EM_AARCH64,
        }
    }

    /// The Rust target `make dist` builds for it.
    pub fn dist_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

/// What the check found in a binary that runs on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    /// No program interpreter: a static binary (musl), needing no glibc.
    pub is_static: bool,
    /// The newest `GLIBC_x.y` version it requires, if any.
    pub max_glibc: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("reading the processor binary {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Linux executable (not a 64-bit ELF file){}", fix(*arch))]
    NotElf { path: PathBuf, arch: Arch },
    #[error("{path} is not a readable ELF file ({reason}){}", fix(*arch))]
    Malformed {
        path: PathBuf,
        reason: String,
        arch: Arch,
    },
    #[error("{path} is built for {found}, but {instance_type} hosts are {arch}{}", fix(*arch))]
    WrongArch {
        path: PathBuf,
        found: String,
        instance_type: String,
        arch: Arch,
    },
    #[error(
        "{path} needs glibc {}.{} ({needs}), but the hosts run Amazon Linux 2023 with glibc {}.{}{}",
        max.0, max.1, HOST_GLIBC.0, HOST_GLIBC.1, fix(*arch)
    )]
    GlibcTooNew {
        path: PathBuf,
        max: (u32, u32),
        needs: String,
        arch: Arch,
    },
}

/// How to get a binary that runs on the host, ending every refusal.
fn fix(arch: Arch) -> String {
    let target = arch.dist_target();
    format!(
        ": nothing was changed on AWS. Build one that runs there with `make dist` \
         (a static, stripped release build: target/{target}/release/streamstack{}), \
         then ship it with `streamstack up --processor-binary target/{target}/release/streamstack`",
        if arch == Arch::Arm64 {
            "; for arm64 pass DIST_TARGET=aarch64-unknown-linux-musl and have an aarch64 musl linker"
        } else {
            ""
        }
    )
}

/// Checks the binary at `path` for hosts of `instance_type`.
pub fn check(path: &Path, instance_type: &str) -> Result<Fit, BinaryError> {
    let bytes = std::fs::read(path).map_err(|source| BinaryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    check_bytes(&bytes, path, instance_type)
}

pub fn check_bytes(data: &[u8], path: &Path, instance_type: &str) -> Result<Fit, BinaryError> {
    let arch = Arch::of_instance_type(instance_type);
    let malformed = |e: object::read::Error| BinaryError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
        arch,
    };
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) | Ok(_) | Err(_) if !data.starts_with(&elf::ELFMAG) => {
            return Err(BinaryError::NotElf {
                path: path.to_path_buf(),
                arch,
            });
        }
        Ok(FileKind::Elf32) => {
            return Err(BinaryError::WrongArch {
                path: path.to_path_buf(),
                found: "a 32-bit architecture".into(),
                instance_type: instance_type.into(),
                arch,
            });
        }
        Ok(_) => unreachable!("only ELF files start with the ELF magic"),
        Err(e) => return Err(malformed(e)),
    }
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let machine = header.e_machine(endian);
    if machine != arch.machine() {
        return Err(BinaryError::WrongArch {
            path: path.to_path_buf(),
            found: machine_name(machine),
            instance_type: instance_type.into(),
            arch,
        });
    }
    let is_static = !header
        .program_headers(endian, data)
        .map_err(malformed)?
        .iter()
        .any(|p| p.p_type(endian) == elf::PT_INTERP);

    // The versions of shared libraries' symbols it was linked against
    // (.gnu.version_r): glibc's name the release that introduced them.
    let sections = header.sections(endian, data).map_err(malformed)?;
    let mut needs: Vec<(u32, u32, String)> = Vec::new();
    if let Some((mut verneeds, link)) = sections.gnu_verneed(endian, data).map_err(malformed)? {
        let strings = sections.strings(endian, data, link).map_err(malformed)?;
        while let Some((_, mut aux)) = verneeds.next().map_err(malformed)? {
            while let Some(entry) = aux.next().map_err(malformed)? {
                let name = entry.name(endian, strings).map_err(malformed)?;
                let name = String::from_utf8_lossy(name);
                if let Some(version) = glibc_version(&name) {
                    needs.push((version.0, version.1, name.into_owned()));
                }
            }
        }
    }
    needs.sort();
    let max_glibc = needs.last().map(|(major, minor, _)| (*major, *minor));
    if let Some(max) = max_glibc.filter(|m| *m > HOST_GLIBC) {
        let too_new: Vec<&str> = needs
            .iter()
            .filter(|(a, b, _)| (*a, *b) > HOST_GLIBC)
            .map(|(_, _, n)| n.as_str())
            .collect();
        return Err(BinaryError::GlibcTooNew {
            path: path.to_path_buf(),
            max,
            needs: too_new.join(", "),
            arch,
        });
    }
    Ok(Fit {
        is_static,
        max_glibc,
    })
}

fn machine_name(machine: elf::Machine) -> String {
    match machine {
        elf::EM_X86_64 => "x86_64".into(),
        elf::EM_AARCH64 => "arm64".into(),
        other => format!("another architecture ({other:?})"),
    }
}

/// `GLIBC_2.34` -> (2, 34); `GLIBC_2.2.5` -> (2, 2); `GLIBC_PRIVATE` -> none.
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> (PathBuf, Vec<u8>) {
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    #[test]
    fn graviton_types_are_arm64_and_the_rest_x86() {
        for t in [
            "t4g.micro",
            "m7g.large",
            "c6gn.xlarge",
            "r7gd.2xlarge",
            "im4gn.large",
            "is4gen.medium",
            "g5g.xlarge",
            "hpc7g.4xlarge",
            "a1.medium",
            "x2gd.medium",
        ] {
            assert_eq!(Arch::of_instance_type(t), Arch::Arm64, "{t}");
        }
        for t in [
            "t3.micro",
            "t3a.small",
            "m7i.large",
            "c6in.large",
            "g4dn.xlarge",
            "g6e.xlarge",
            "gr6.4xlarge",
            "m5zn.large",
            "inf2.xlarge",
        ] {
            assert_eq!(Arch::of_instance_type(t), Arch::X86_64, "{t}");
        }
    }

    #[test]
    fn glibc_versions_are_read_from_their_names() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GLIBC_2"), Some((2, 0)));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version("GCC_3.0"), None);
    }

    /// This test binary is a real x86_64 Linux ELF linked against this
    /// machine's glibc: the check reads its actual requirements.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn this_binary_is_read_for_real() {
        let (path, bytes) = me();
        let result = check_bytes(&bytes, &path, "t3.micro");
        let expected_max = max_glibc_by_hand(&bytes);
        match result {
            Ok(fit) => {
                assert_eq!(fit.max_glibc, expected_max);
                assert_eq!(fit.is_static, cfg!(target_env = "musl"));
            }
            Err(BinaryError::GlibcTooNew { max, needs, .. }) => {
                assert_eq!(Some(max), expected_max);
                assert!(needs.contains(&format!("GLIBC_{}.{}", max.0, max.1)));
            }
            Err(e) => panic!("{e}"),
        }
        // Not what Graviton hosts run.
        let err = check_bytes(&bytes, &path, "t4g.small").unwrap_err();
        assert!(
            matches!(&err, BinaryError::WrongArch { found, .. } if found == "x86_64"),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("built for x86_64, but t4g.small hosts are arm64")
                && text.contains("nothing was changed on AWS")
                && text.contains("make dist")
                && text.contains("--processor-binary"),
            "{text}"
        );
    }

    /// The newest `GLIBC_2.x` string in the file, found without parsing the
    /// ELF: the version strings of .gnu.version_r are in .dynstr.
    fn max_glibc_by_hand(bytes: &[u8]) -> Option<(u32, u32)> {
        bytes
            .split(|b| *b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok())
            .filter_map(glibc_version)
            .max()
    }

    #[test]
    fn a_newer_glibc_than_the_host_has_is_refused_with_the_way_out() {
        let (path, bytes) = me();
        // The same binary, its newest requirement renamed to one above the host's.
        let Some(max) = max_glibc_by_hand(&bytes) else {
            return; // a static build: nothing to rename
        };
        let from = format!("GLIBC_{}.{}\0", max.0, max.1);
        // Same length, so every offset in the string table stays right.
        let to = format!("GLIBC_{}.{}\0", max.0 + 7, max.1);
        let mut patched = bytes.clone();
        let mut at = 0;
        while let Some(i) = patched[at..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
        {
            patched[at + i..at + i + to.len()].copy_from_slice(to.as_bytes());
            at += i + to.len();
        }
        let err = check_bytes(&patched, &path, "t3.micro").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, BinaryError::GlibcTooNew { max: (9, _), .. }),
            "{text}"
        );
        assert!(
            text.contains("but the hosts run Amazon Linux 2023 with glibc 2.34")
                && text.contains(
                    "nothing was changed on AWS. Build one that runs there with `make dist`"
                )
                && text.contains(
                    "--processor-binary target/x86_64-unknown-linux-musl/release/streamstack"
                ),
            "{text}"
        );
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let (path, bytes) = me();
        let err = check_bytes(&bytes[..200], &path, "t3.micro").unwrap_err();
        assert!(matches!(err, BinaryError::Malformed { .. }), "{err}");
        let err = check_bytes(&bytes[..10], &path, "t3.micro").unwrap_err();
        assert!(matches!(err, BinaryError::Malformed { .. }), "{err}");

        let err = check_bytes(b"#!/bin/sh\necho hi\n", Path::new("x.sh"), "t3.micro").unwrap_err();
        assert!(matches!(err, BinaryError::NotElf { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("x.sh is not a Linux executable")
        );
        let err = check_bytes(b"", Path::new("empty"), "t3.micro").unwrap_err();
        assert!(matches!(err, BinaryError::NotElf { .. }), "{err}");

        // An aarch64 header on x86_64 hosts, and the reverse.
        let mut arm = bytes.clone();
        arm[18..20].copy_from_slice(&183u16.to_le_bytes());
        let err = check_bytes(&arm, &path, "t3.micro").unwrap_err();
        assert!(
            matches!(&err, BinaryError::WrongArch { found, arch: Arch::X86_64, .. } if found == "arm64"),
            "{err}"
        );
        assert!(check_bytes(&arm, &path, "m7g.large").is_ok());

        // A 32-bit ELF.
        let mut elf32 = bytes.clone();
        elf32[4] = 1;
        let err = check_bytes(&elf32, &path, "t3.micro").unwrap_err();
        assert!(matches!(err, BinaryError::WrongArch { .. }), "{err}");
    }

    #[test]
    fn a_missing_file_says_which() {
        let err = check(Path::new("/nonexistent/streamstack"), "t3.micro").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/streamstack"));
    }
}
