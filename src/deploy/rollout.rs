//! Rolls the shipped processor out to the stack's hosts through SSM Run
//! Command, and checks that each host runs it.
//!
//! Three things real AWS does that this module is built around:
//! - A host is only reachable once its SSM agent has registered
//!   (DescribeInstanceInformation lists it with PingStatus `Online`); on a
//!   first `up` that takes a minute or two after the instance is created.
//! - A command sent to a tag that matches no registered host succeeds with
//!   zero targets: success of the command is not success of the rollout.
//!   So the command goes to the registered hosts by id, and every one of
//!   the stack's `host.count` must answer Success.
//! - The pointer in S3 may be right while a host runs something else (it was
//!   down at the last rollout, or its service could not start). Each host
//!   reports the SHA-256 of the binary its service runs (`/proc/PID/exe`,
//!   read in the command's own output, so the processor needs nothing for
//!   it); a host that differs gets the rollout again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter, PingStatus};

use super::ship::BOOTSTRAP_ON_HOST;
use crate::aws::{Aws, AwsError, ResultExt};

/// The line each host prints: the SHA-256 of the binary streamstack.service
/// runs, or `none` when it runs nothing. The service's main process is read
/// through /proc, so a binary replaced on disk but not restarted is told apart.
const REPORT_PREFIX: &str = "streamstack-running-sha256=";
const REPORT: &str = r#"pid="$(systemctl show --property MainPID --value streamstack.service 2>/dev/null || true)"; if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/exe" ]; then echo "streamstack-running-sha256=$(sha256sum "/proc/$pid/exe" | cut -d' ' -f1)"; else echo "streamstack-running-sha256=none"; fi"#;

/// SendCommand takes at most 50 instance ids; `host.count` is at most 20.
const MAX_TARGETS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(
        "{online} of the {expected} host(s) of {stack} registered with Systems Manager (PingStatus Online) within {waited_s} s{}: \
         is the instance running (`streamstack status`), and can it reach the SSM endpoints over HTTPS? Run `up` again once it is",
        missing(not_online)
    )]
    HostsNotRegistered {
        stack: String,
        expected: usize,
        online: usize,
        waited_s: u64,
        /// Hosts that registered but are not online: id and ping status.
        not_online: Vec<(String, String)>,
    },
    #[error("{stack} has {online} hosts online, more than SendCommand's {MAX_TARGETS} per command")]
    TooManyHosts { stack: String, online: usize },
    #[error(
        "the rollout reached {succeeded} of the {expected} host(s) of {stack} (SSM command {command}): {}; see `aws ssm list-command-invocations --command-id {command} --details`",
        failures.join("; ")
    )]
    Incomplete {
        stack: String,
        command: String,
        expected: usize,
        succeeded: usize,
        failures: Vec<String>,
    },
    #[error(
        "after the rollout (SSM command {command}) {} of {stack} do(es) not run the shipped binary {}: {}; see `journalctl -u streamstack` on the host",
        hosts.len(), &shipped[..12.min(shipped.len())], hosts.iter().map(|(id, sha)| format!("{id} runs {sha}")).collect::<Vec<_>>().join(", ")
    )]
    NotRunning {
        stack: String,
        command: String,
        shipped: String,
        hosts: Vec<(String, String)>,
    },
    #[error("the SSM command {command} to the hosts of {stack} did not finish within {waited_s} s")]
    CommandTimedOut {
        stack: String,
        command: String,
        waited_s: u64,
    },
}

fn missing(not_online: &[(String, String)]) -> String {
    if not_online.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = not_online
            .iter()
            .map(|(id, s)| format!("{id} is {s}"))
            .collect();
        format!(" ({})", list.join(", "))
    }
}

/// What `roll_out` reports while it waits (the caller shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Hosts registered and online so far, of those expected.
    Waiting { online: usize, expected: usize },
    /// A command went to these hosts.
    Sent {
        command: String,
        hosts: usize,
        what: &'static str,
    },
    /// Hosts that run another binary than the shipped one, before a rollout.
    Differ { hosts: Vec<(String, String)> },
}

#[derive(Debug, Clone)]
pub struct Options {
    /// `host.count` of the stack.
    pub expected: usize,
    /// How long hosts may take to register with Systems Manager.
    pub register_timeout: Duration,
    /// How long one command may run on the hosts (the bootstrap downloads tens of MB).
    pub command_timeout: Duration,
    pub poll: Duration,
}

impl Options {
    pub fn new(expected: usize, poll: Duration) -> Self {
        Self {
            expected,
            // cloud-init, then the agent's first registration: usually 1-3 minutes.
            register_timeout: Duration::from_secs(600),
            command_timeout: Duration::from_secs(600),
            poll,
        }
    }
}

/// What happened on the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The rollout command, when one was sent.
    pub command: Option<String>,
    /// Hosts that run the shipped binary.
    pub hosts: usize,
}

/// One host's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: String,
    /// The SHA-256 it reported, `none`, or empty when it printed no report.
    running: String,
    stderr: String,
}

/// Makes the hosts of `stack` run the binary `sha256`: waits for them to
/// register, asks what they run (unless the pointer just `changed`: then
/// they are known to need it), and rolls out to them when any differs.
pub async fn roll_out(
    aws: &Aws,
    stack: &str,
    sha256: &str,
    changed: bool,
    options: &Options,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, RolloutError> {
    let hosts = wait_for_hosts(aws, stack, options, on_event).await?;
    if !changed {
        let (_, answers) = run(aws, stack, &hosts, REPORT, "report", options, on_event).await?;
        let differ = differing(&answers, sha256);
        let all_answered =
            answers.values().filter(|a| a.status == "Success").count() >= options.expected;
        if differ.is_empty() && all_answered {
            return Ok(Outcome {
                command: None,
                hosts: answers.len(),
            });
        }
        on_event(Event::Differ { hosts: differ });
    }
    let script = format!("bash {BOOTSTRAP_ON_HOST} || exit $?\n{REPORT}");
    let (command, answers) = run(aws, stack, &hosts, &script, "rollout", options, on_event).await?;
    let succeeded = answers.values().filter(|a| a.status == "Success").count();
    if succeeded < options.expected {
        let mut failures: Vec<String> = answers
            .iter()
            .filter(|(_, a)| a.status != "Success")
            .map(|(id, a)| {
                let last = a
                    .stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                format!(
                    "{id} {}{}",
                    a.status,
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(": {last}")
                    }
                )
            })
            .collect();
        if answers.len() < options.expected {
            failures.push(format!(
                "{} host(s) were not reached",
                options.expected - answers.len()
            ));
        }
        return Err(RolloutError::Incomplete {
            stack: stack.into(),
            command,
            expected: options.expected,
            succeeded,
            failures,
        });
    }
    let differ = differing(&answers, sha256);
    if !differ.is_empty() {
        return Err(RolloutError::NotRunning {
            stack: stack.into(),
            command,
            shipped: sha256.into(),
            hosts: differ,
        });
    }
    Ok(Outcome {
        command: Some(command),
        hosts: succeeded,
    })
}

/// Hosts whose report is not `sha256` (a failed host reports nothing).
fn differing(answers: &BTreeMap<String, Answer>, sha256: &str) -> Vec<(String, String)> {
    answers
        .iter()
        .filter(|(_, a)| a.running != sha256)
        .map(|(id, a)| {
            let running = match a.running.as_str() {
                "" => format!("nothing it could report ({})", a.status),
                "none" => "no processor".to_string(),
                sha => sha[..12.min(sha.len())].to_string(),
            };
            (id.clone(), running)
        })
        .collect()
}

/// The stack's hosts registered with Systems Manager and online, once there
/// are as many as expected; ids sorted.
async fn wait_for_hosts(
    aws: &Aws,
    stack: &str,
    options: &Options,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<String>, RolloutError> {
    let started = Instant::now();
    let mut last = None;
    loop {
        // A tag filter cannot be combined with other filter types
        // (DescribeInstanceInformation): the ping status is judged here.
        let filter = InstanceInformationStringFilter::builder()
            .key("tag:streamstack:stack")
            .values(stack)
            .build()
            .expect("key and values are set");
        let mut pages = aws
            .ssm()
            .describe_instance_information()
            .filters(filter)
            .into_paginator()
            .send();
        let mut online = Vec::new();
        let mut not_online = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.aws(format!(
                "listing the hosts of {stack} registered with Systems Manager"
            ))?;
            for info in page.instance_information_list() {
                let id = info.instance_id().unwrap_or_default().to_string();
                match info.ping_status() {
                    Some(PingStatus::Online) => online.push(id),
                    other => not_online.push((
                        id,
                        other.map_or("unknown".to_string(), |s| s.as_str().to_string()),
                    )),
                }
            }
        }
        online.sort();
        if online.len() >= options.expected {
            if online.len() > MAX_TARGETS {
                return Err(RolloutError::TooManyHosts {
                    stack: stack.into(),
                    online: online.len(),
                });
            }
            return Ok(online);
        }
        if started.elapsed() >= options.register_timeout {
            return Err(RolloutError::HostsNotRegistered {
                stack: stack.into(),
                expected: options.expected,
                online: online.len(),
                waited_s: started.elapsed().as_secs(),
                not_online,
            });
        }
        if last != Some(online.len()) {
            last = Some(online.len());
            on_event(Event::Waiting {
                online: online.len(),
                expected: options.expected,
            });
        }
        tokio::time::sleep(options.poll).await;
    }
}

/// Runs `script` on `hosts` and waits for every invocation to end; each
/// host's status, report and error output.
async fn run(
    aws: &Aws,
    stack: &str,
    hosts: &[String],
    script: &str,
    what: &'static str,
    options: &Options,
    on_event: &mut dyn FnMut(Event),
) -> Result<(String, BTreeMap<String, Answer>), RolloutError> {
    let ssm = aws.ssm();
    let sent = ssm
        .send_command()
        .document_name("AWS-RunShellScript")
        .set_instance_ids(Some(hosts.to_vec()))
        .parameters("commands", script.lines().map(str::to_string).collect())
        .parameters(
            "executionTimeout",
            vec![options.command_timeout.as_secs().to_string()],
        )
        .comment(format!("streamstack up: {what} the processor of {stack}"))
        .send()
        .await
        .aws(format!(
            "sending the {what} command to the hosts of {stack}"
        ))?;
    let command = sent
        .command()
        .and_then(|c| c.command_id())
        .unwrap_or_default()
        .to_string();
    on_event(Event::Sent {
        command: command.clone(),
        hosts: hosts.len(),
        what,
    });
    // Past the command's own timeout, plus time for the agent to report it.
    let deadline = Instant::now() + options.command_timeout + Duration::from_secs(60);
    loop {
        let mut statuses = BTreeMap::new();
        let mut pages = ssm
            .list_command_invocations()
            .command_id(&command)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws(format!("following the {what} command {command}"))?;
            for i in page.command_invocations() {
                statuses.insert(
                    i.instance_id().unwrap_or_default().to_string(),
                    i.status().cloned(),
                );
            }
        }
        // Right after SendCommand the list can still be empty or short.
        let done = statuses.len() >= hosts.len()
            && statuses.values().all(|s| {
                !matches!(
                    s,
                    None | Some(
                        CommandInvocationStatus::Pending
                            | CommandInvocationStatus::InProgress
                            | CommandInvocationStatus::Delayed
                            | CommandInvocationStatus::Cancelling
                    )
                )
            });
        if done {
            let mut answers = BTreeMap::new();
            for (id, status) in statuses {
                // GetCommandInvocation returns up to 24,000 characters of
                // output; ListCommandInvocations' plugin output only 2,500.
                let out = ssm
                    .get_command_invocation()
                    .command_id(&command)
                    .instance_id(&id)
                    .send()
                    .await
                    .aws(format!("reading the output of {command} on {id}"))?;
                let stdout = out.standard_output_content().unwrap_or_default();
                let running = stdout
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix(REPORT_PREFIX))
                    .unwrap_or_default()
                    .to_string();
                answers.insert(
                    id,
                    Answer {
                        status: status.map_or("unknown".into(), |s| s.as_str().to_string()),
                        running,
                        stderr: out.standard_error_content().unwrap_or_default().to_string(),
                    },
                );
            }
            return Ok((command, answers));
        }
        if Instant::now() >= deadline {
            return Err(RolloutError::CommandTimedOut {
                stack: stack.into(),
                command,
                waited_s: (options.command_timeout + Duration::from_secs(60)).as_secs(),
            });
        }
        tokio::time::sleep(options.poll).await;
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
