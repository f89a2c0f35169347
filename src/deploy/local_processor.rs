//! The processor as a local background process, for stacks whose
//! environment targets the emulator (there is no EC2 host to run it): a pid
//! file, a log and a fingerprint under `.state/processors/{stack}/`.
//!
//! `up` starts it, or leaves it alone when the running one has the same
//! binary and stack file (the fingerprint); `down` stops it (SIGTERM: it
//! stores its batch, checkpoints and releases its leases); `status` shows it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde::Serialize;

/// Where a stack's local processor keeps its pid, log and fingerprint.
pub fn state_dir(stack: &str) -> PathBuf {
    PathBuf::from(".state/processors").join(stack)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalProcessor {
    pub pid: Option<u32>,
    pub running: bool,
    pub log: PathBuf,
    /// The log's last line (its latest progress line), when there is one.
    pub last_line: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A processor with the same binary and stack file was already running.
    Unchanged(u32),
    Started(u32),
    /// A different one ran: it was stopped and the new one started.
    Restarted(u32),
}

/// Whether `pid` is alive and is a streamstack process (not a reused pid).
fn alive(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let text = String::from_utf8_lossy(&c);
            text.contains("streamstack") && text.contains("consume")
        })
        .unwrap_or(false)
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true)
}

fn read_pid(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join("processor.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What identifies a processor's code and configuration.
pub fn fingerprint(binary: &Path, stack_file: &Path, env: Option<&str>) -> std::io::Result<String> {
    let meta = fs::metadata(binary)?;
    let mut hash = Md5::new();
    hash.update(meta.len().to_le_bytes());
    if let Ok(modified) = meta.modified()
        && let Ok(since) = modified.duration_since(std::time::UNIX_EPOCH)
    {
        hash.update(since.as_nanos().to_le_bytes());
    }
    hash.update(fs::read(stack_file)?);
    hash.update(env.unwrap_or("").as_bytes());
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub fn inspect(stack: &str) -> LocalProcessor {
    let dir = state_dir(stack);
    let pid = read_pid(&dir);
    let log = dir.join("processor.log");
    let last_line = fs::read_to_string(&log).ok().and_then(|t| {
        t.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
    });
    LocalProcessor {
        running: pid.is_some_and(alive),
        pid,
        log,
        last_line,
    }
}

/// Starts `binary consume STACK_FILE [-e ENV]` in the background, unless the
/// same one already runs. Its environment is this process's (so it reaches
/// the same endpoint with the same credentials).
pub fn ensure_running(
    stack: &str,
    binary: &Path,
    stack_file: &Path,
    env: Option<&str>,
) -> std::io::Result<Started> {
    let dir = state_dir(stack);
    fs::create_dir_all(&dir)?;
    let print = fingerprint(binary, stack_file, env)?;
    let current = inspect(stack);
    let mut restarted = false;
    if let (true, Some(pid)) = (current.running, current.pid) {
        if fs::read_to_string(dir.join("processor.fingerprint"))
            .ok()
            .as_deref()
            == Some(print.as_str())
        {
            return Ok(Started::Unchanged(pid));
        }
        stop(stack, Duration::from_secs(10))?;
        restarted = true;
    }
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("processor.log"))?;
    writeln!(log, "--- started by streamstack up ---")?;
    let mut cmd = Command::new(binary);
    cmd.arg("consume").arg(stack_file);
    if let Some(env) = env {
        cmd.args(["--env", env]);
    }
    // Progress lines every 10 s, like the host's journal.
    cmd.args(["--report-every", "10"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    {
        // Its own process group: a Ctrl-C in the terminal that ran `up` does not reach it.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let child = cmd.spawn()?;
    let pid = child.id();
    fs::write(dir.join("processor.pid"), pid.to_string())?;
    fs::write(dir.join("processor.fingerprint"), print)?;
    Ok(if restarted {
        Started::Restarted(pid)
    } else {
        Started::Started(pid)
    })
}

/// Stops the processor (SIGTERM, then SIGKILL after `grace`); true when one ran.
pub fn stop(stack: &str, grace: Duration) -> std::io::Result<bool> {
    let dir = state_dir(stack);
    let Some(pid) = read_pid(&dir).filter(|p| alive(*p)) else {
        let _ = fs::remove_file(dir.join("processor.pid"));
        return Ok(false);
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
    }
    let _ = fs::remove_file(dir.join("processor.pid"));
    Ok(true)
}
