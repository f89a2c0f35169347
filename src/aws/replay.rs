//! Recorded answers for unit tests of AWS paths the emulator cannot play
//! (Systems Manager's managed instances and command invocations, CloudWatch
//! as real AWS answers it): a loopback HTTP server that answers each call,
//! told apart by its `X-Amz-Target` (JSON protocols) or `Action` (query
//! protocol), with the next of the answers recorded for it, and keeps the
//! requests for the test to inspect. The real SDK clients talk to it, so the
//! request serialization and response parsing under test are the real ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Aws;

/// One recorded answer: HTTP status, content type, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    /// An awsJson1.1 answer (Systems Manager).
    pub fn json(body: serde_json::Value) -> Self {
        Self {
            status: 200,
            content_type: "application/x-amz-json-1.1",
            body: body.to_string(),
        }
    }

    /// An awsJson1.1 error, as `__type` and `message`.
    pub fn json_error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            content_type: "application/x-amz-json-1.1",
            body: serde_json::json!({ "__type": code, "message": message }).to_string(),
        }
    }

    /// A query-protocol (XML) answer (CloudWatch).
    pub fn xml(body: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/xml",
            body: body.to_string(),
        }
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `X-Amz-Target`'s operation, or the query protocol's `Action`.
    pub operation: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    answers: HashMap<String, VecDeque<Answer>>,
    requests: Vec<Request>,
}

/// The server; dropped with the test's runtime.
#[derive(Clone)]
pub struct Replay {
    state: Arc<Mutex<State>>,
    pub endpoint: String,
}

impl Replay {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { state, endpoint }
    }

    /// Queues `answer` for the next call of `operation` (e.g.
    /// `DescribeInstanceInformation`); the last one queued repeats.
    pub fn answer(&self, operation: &str, answer: Answer) -> &Self {
        self.state
            .lock()
            .unwrap()
            .answers
            .entry(operation.to_string())
            .or_default()
            .push_back(answer);
        self
    }

    pub fn requests(&self, operation: &str) -> Vec<Request> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.operation == operation)
            .cloned()
            .collect()
    }

    /// Clients of every service pointed at this server.
    pub async fn aws(&self) -> Aws {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "testing", "testing", None, None, "replay",
            ))
            .load()
            .await;
        Aws::from_config(&config)
    }
}

async fn serve(mut stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let operation = match header("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or_default().to_string(),
            None => body
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .unwrap_or_default()
                .to_string(),
        };
        let answer = {
            let mut state = state.lock().unwrap();
            state.requests.push(Request {
                operation: operation.clone(),
                body,
            });
            let queue = state.answers.entry(operation.clone()).or_default();
            if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().cloned()
            }
        }
        .unwrap_or_else(|| Answer::json_error(400, "NotRecorded", &operation));
        let response = format!(
            "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-amzn-requestid: replay\r\n\r\n{}",
            answer.status,
            answer.content_type,
            answer.body.len(),
            answer.body
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
