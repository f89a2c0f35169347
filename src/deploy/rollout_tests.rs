//! The rollout against recorded Systems Manager answers, shaped as real AWS
//! sends them (the emulator has no managed instances nor invocations).

use serde_json::json;

use super::*;
use crate::aws::replay::{Answer, Replay};

const A: &str = "i-0aaaaaaaaaaaaaaa1";
const B: &str = "i-0bbbbbbbbbbbbbbb2";
const CMD: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

fn options(expected: usize) -> Options {
    Options {
        expected,
        register_timeout: Duration::from_millis(300),
        command_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(10),
    }
}

fn hosts(list: &[(&str, &str)]) -> Answer {
    Answer::json(json!({
        "InstanceInformationList": list.iter().map(|(id, ping)| json!({
            "InstanceId": id, "PingStatus": ping, "PlatformType": "Linux",
            "PlatformName": "Amazon Linux", "PlatformVersion": "2023", "ResourceType": "EC2Instance",
            "AgentVersion": "3.3.1142.0", "IsLatestVersion": false, "LastPingDateTime": 1.7e9,
        })).collect::<Vec<_>>()
    }))
}

fn sent(replay: &Replay) {
    replay.answer(
        "SendCommand",
        Answer::json(json!({ "Command": {
            "CommandId": CMD, "DocumentName": "AWS-RunShellScript", "Status": "Pending",
            "TargetCount": 0, "CompletedCount": 0, "ErrorCount": 0,
        }})),
    );
}

fn invocations(list: &[(&str, &str)]) -> Answer {
    Answer::json(json!({
        "CommandInvocations": list.iter().map(|(id, status)| json!({
            "CommandId": CMD, "InstanceId": id, "Status": status, "StatusDetails": status,
            "DocumentName": "AWS-RunShellScript",
        })).collect::<Vec<_>>()
    }))
}

fn output(id: &str, status: &str, stdout: &str, stderr: &str) -> Answer {
    Answer::json(json!({
        "CommandId": CMD, "InstanceId": id, "PluginName": "aws:runShellScript",
        "Status": status, "StatusDetails": status,
        "ResponseCode": if status == "Success" { 0 } else { 1 },
        "StandardOutputContent": stdout, "StandardErrorContent": stderr,
    }))
}

fn report(sha: &str) -> String {
    format!("streamstack-bootstrap: installed streamstack\n{REPORT_PREFIX}{sha}\n")
}

#[tokio::test]
async fn waits_until_every_host_is_online_then_rolls_out_and_checks_what_each_runs() {
    let replay = Replay::start().await;
    replay
        .answer(
            "DescribeInstanceInformation",
            hosts(&[(A, "Online"), (B, "ConnectionLost")]),
        )
        .answer(
            "DescribeInstanceInformation",
            hosts(&[(A, "Online"), (B, "Online")]),
        );
    sent(&replay);
    replay
        // Just after SendCommand the invocations are not all listed yet.
        .answer("ListCommandInvocations", invocations(&[(A, "InProgress")]))
        .answer(
            "ListCommandInvocations",
            invocations(&[(A, "Success"), (B, "Success")]),
        )
        .answer(
            "GetCommandInvocation",
            output(A, "Success", &report(&sha('a')), ""),
        )
        .answer(
            "GetCommandInvocation",
            output(B, "Success", &report(&sha('a')), ""),
        );
    let aws = replay.aws().await;
    let mut events = Vec::new();
    let mut options = options(2);
    options.register_timeout = Duration::from_secs(10);
    let outcome = roll_out(&aws, "tweets-prod", &sha('a'), true, &options, &mut |e| {
        events.push(e)
    })
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome {
            command: Some(CMD.into()),
            hosts: 2
        }
    );
    assert_eq!(
        events[0],
        Event::Waiting {
            online: 1,
            expected: 2
        }
    );
    assert!(
        matches!(
            &events[1],
            Event::Sent {
                hosts: 2,
                what: "rollout",
                ..
            }
        ),
        "{events:?}"
    );
    // The hosts are found by the stack's tag; the command goes to them by id.
    let describe = &replay.requests("DescribeInstanceInformation")[0].body;
    assert!(
        describe.contains(r#""Key":"tag:streamstack:stack""#) && describe.contains("tweets-prod"),
        "{describe}"
    );
    let send = &replay.requests("SendCommand")[0].body;
    let send: serde_json::Value = serde_json::from_str(send).unwrap();
    assert_eq!(send["InstanceIds"], json!([A, B]));
    let commands = send["Parameters"]["commands"].as_array().unwrap();
    assert_eq!(commands[0], format!("bash {BOOTSTRAP_ON_HOST} || exit $?"));
    assert!(commands[1].as_str().unwrap().contains("/proc/$pid/exe"));
}

#[tokio::test]
async fn hosts_that_never_register_fail_naming_what_is_missing() {
    let replay = Replay::start().await;
    replay.answer(
        "DescribeInstanceInformation",
        hosts(&[(A, "Online"), (B, "ConnectionLost")]),
    );
    let aws = replay.aws().await;
    let mut events = Vec::new();
    let err = roll_out(
        &aws,
        "tweets-prod",
        &sha('a'),
        true,
        &options(2),
        &mut |e| events.push(e),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("1 of the 2 host(s) of tweets-prod registered with Systems Manager (PingStatus Online) within 0 s")
            && text.contains(&format!("({B} is ConnectionLost)")),
        "{text}"
    );
    assert!(
        replay.requests("SendCommand").is_empty(),
        "nothing was sent"
    );
    // Progress once per change, not once per poll.
    assert_eq!(
        events,
        [Event::Waiting {
            online: 1,
            expected: 2
        }]
    );
}

#[tokio::test]
async fn a_rollout_that_reached_fewer_hosts_than_the_stack_has_fails() {
    let replay = Replay::start().await;
    replay.answer(
        "DescribeInstanceInformation",
        hosts(&[(A, "Online"), (B, "Online")]),
    );
    sent(&replay);
    replay
        .answer("ListCommandInvocations", invocations(&[(A, "Success"), (B, "Failed")]))
        .answer("GetCommandInvocation", output(A, "Success", &report(&sha('a')), ""))
        .answer(
            "GetCommandInvocation",
            output(B, "Failed", "", "streamstack-bootstrap: error: the new binary does not run on this host: not installed\nfailed to run commands: exit status 1\n"),
        );
    let aws = replay.aws().await;
    let err = roll_out(
        &aws,
        "tweets-prod",
        &sha('a'),
        true,
        &options(2),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("the rollout reached 1 of the 2 host(s) of tweets-prod (SSM command {CMD}): {B} Failed: failed to run commands")),
        "{text}"
    );

    // Only one host of two was ever targeted (the other is gone): a failure too.
    let replay = Replay::start().await;
    replay.answer(
        "DescribeInstanceInformation",
        hosts(&[(A, "Online"), (B, "Online")]),
    );
    sent(&replay);
    replay
        .answer(
            "ListCommandInvocations",
            invocations(&[(A, "Success"), (B, "Undeliverable")]),
        )
        .answer(
            "GetCommandInvocation",
            output(A, "Success", &report(&sha('a')), ""),
        )
        .answer("GetCommandInvocation", output(B, "Undeliverable", "", ""));
    let aws = replay.aws().await;
    let err = roll_out(
        &aws,
        "tweets-prod",
        &sha('a'),
        true,
        &options(2),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RolloutError::Incomplete {
                succeeded: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_unchanged_pointer_still_rolls_out_to_a_host_that_runs_another_binary() {
    let replay = Replay::start().await;
    replay.answer(
        "DescribeInstanceInformation",
        hosts(&[(A, "Online"), (B, "Online")]),
    );
    sent(&replay);
    replay
        .answer(
            "ListCommandInvocations",
            invocations(&[(A, "Success"), (B, "Success")]),
        )
        // The report: B runs an old binary.
        .answer(
            "GetCommandInvocation",
            output(A, "Success", &format!("{REPORT_PREFIX}{}\n", sha('a')), ""),
        )
        .answer(
            "GetCommandInvocation",
            output(B, "Success", &format!("{REPORT_PREFIX}{}\n", sha('b')), ""),
        )
        // The rollout: both run it.
        .answer(
            "GetCommandInvocation",
            output(A, "Success", &report(&sha('a')), ""),
        )
        .answer(
            "GetCommandInvocation",
            output(B, "Success", &report(&sha('a')), ""),
        );
    let aws = replay.aws().await;
    let mut events = Vec::new();
    let outcome = roll_out(
        &aws,
        "tweets-prod",
        &sha('a'),
        false,
        &options(2),
        &mut |e| events.push(e),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome {
            command: Some(CMD.into()),
            hosts: 2
        }
    );
    assert!(
        events.contains(&Event::Differ {
            hosts: vec![(B.into(), "bbbbbbbbbbbb".into())]
        }),
        "{events:?}"
    );
    let sends = replay.requests("SendCommand");
    assert_eq!(sends.len(), 2);
    assert!(
        !sends[0].body.contains(BOOTSTRAP_ON_HOST),
        "the first only asks"
    );
    assert!(
        sends[1].body.contains(BOOTSTRAP_ON_HOST),
        "the second rolls out"
    );
}

#[tokio::test]
async fn an_unchanged_pointer_and_hosts_that_run_it_send_no_rollout() {
    let replay = Replay::start().await;
    replay.answer("DescribeInstanceInformation", hosts(&[(A, "Online")]));
    sent(&replay);
    replay
        .answer("ListCommandInvocations", invocations(&[(A, "Success")]))
        .answer(
            "GetCommandInvocation",
            output(A, "Success", &format!("{REPORT_PREFIX}{}\n", sha('a')), ""),
        );
    let aws = replay.aws().await;
    let outcome = roll_out(
        &aws,
        "tweets-prod",
        &sha('a'),
        false,
        &options(1),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome {
            command: None,
            hosts: 1
        }
    );
    assert_eq!(replay.requests("SendCommand").len(), 1);
}

#[tokio::test]
async fn a_host_whose_service_runs_another_binary_after_the_rollout_fails_it() {
    let replay = Replay::start().await;
    replay.answer("DescribeInstanceInformation", hosts(&[(A, "Online")]));
    sent(&replay);
    replay
        .answer("ListCommandInvocations", invocations(&[(A, "Success")]))
        // Installed, but the service is between restarts: it runs nothing.
        .answer(
            "GetCommandInvocation",
            output(A, "Success", &format!("{REPORT_PREFIX}none\n"), ""),
        );
    let aws = replay.aws().await;
    let err = roll_out(
        &aws,
        "tweets-prod",
        &sha('a'),
        true,
        &options(1),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "do(es) not run the shipped binary aaaaaaaaaaaa: {A} runs no processor"
        )),
        "{text}"
    );
}
