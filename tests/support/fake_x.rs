//! A fake X API on 127.0.0.1, shared by tests/x_api.rs (the source against
//! it, in process) and tests/security.rs (the binary against it): a small
//! HTTP/1.1 server that answers each request as a handler says (JSON, a
//! stream in chunks with pauses, raw bytes no well-behaved server would
//! send, or nothing), and keeps every request it received.
//!
//! ```ignore
//! #[path = "support/fake_x.rs"]
//! mod fake_x;
//! ```

// Each test file uses a part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamstack::processor::write::source::x_api::STREAM_PATH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub enum Reply {
    Json(u16, Value),
    AwsJson(u16, Value),
    Stream(Vec<Step>),
    /// Bytes written as they are, status line and headers included: for
    /// responses no well-behaved server would send.
    Raw(Vec<Step>),
    /// Close the connection without answering.
    Refuse,
}

pub enum Step {
    Chunk(Vec<u8>),
    Pause(Duration),
    /// The terminating chunk: a clean end of the body.
    End,
    /// Close mid-body (no terminating chunk).
    Abort,
    /// Send nothing more until the client hangs up.
    Hold,
}

pub type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

pub struct Server {
    pub url: String,
    requests: Arc<Mutex<Vec<Req>>>,
    accept: JoinHandle<()>,
    /// The runtime serving it, for tests that are not async themselves.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    pub async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, handler.clone(), log.clone()));
            }
        });
        Self {
            url,
            requests,
            accept,
            runtime: None,
        }
    }

    /// The same server for a test that is not async (one that runs the
    /// binary): it runs on a runtime of its own, kept as long as the server.
    pub fn start_blocking(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut server = runtime.block_on(Self::start(handler));
        server.runtime = Some(runtime);
        server
    }

    /// Every `Authorization` header it received, in order.
    pub fn authorizations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.header("authorization").map(str::to_string))
            .collect()
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    pub fn stream_requests(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == STREAM_PATH)
            .collect()
    }
}

async fn serve(mut socket: TcpStream, handler: Arc<Handler>, log: Arc<Mutex<Vec<Req>>>) {
    let Some(req) = read_request(&mut socket).await else {
        return;
    };
    log.lock().unwrap().push(req.clone());
    match handler(&req) {
        Reply::Refuse => {}
        Reply::Json(status, body) => respond(&mut socket, status, "application/json", body).await,
        Reply::AwsJson(status, body) => {
            respond(&mut socket, status, "application/x-amz-json-1.1", body).await;
        }
        Reply::Stream(steps) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            write_steps(&mut socket, steps, true).await;
        }
        Reply::Raw(steps) => write_steps(&mut socket, steps, false).await,
    }
}

/// `chunked`: each `Chunk` is framed as an HTTP/1.1 chunk, and `End` is the
/// terminating chunk; otherwise bytes go out as they are and `End` closes.
async fn write_steps(socket: &mut TcpStream, steps: Vec<Step>, chunked: bool) {
    for step in steps {
        match step {
            Step::Chunk(bytes) => {
                let mut frame = Vec::with_capacity(bytes.len() + 16);
                if chunked {
                    frame.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
                }
                frame.extend_from_slice(&bytes);
                if chunked {
                    frame.extend_from_slice(b"\r\n");
                }
                if socket.write_all(&frame).await.is_err() {
                    return;
                }
            }
            Step::Pause(d) => tokio::time::sleep(d).await,
            Step::End => {
                if chunked {
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                }
                let _ = socket.shutdown().await;
                return;
            }
            Step::Abort => return,
            Step::Hold => {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        }
    }
}

async fn respond(socket: &mut TcpStream, status: u16, content_type: &str, body: Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(body.as_bytes()).await;
    let _ = socket.shutdown().await;
}

async fn read_request(socket: &mut TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        target,
        headers,
        body: String::from_utf8(body).ok()?,
        at,
    })
}

/// Stream replies handed out in order; once they run out, a connection that
/// stays open and silent (tests cancel before the stall timeout).
pub fn scripted(replies: Vec<Reply>) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    let replies = Mutex::new(VecDeque::from(replies));
    move |req: &Req| {
        assert_eq!(req.path(), STREAM_PATH, "unexpected request {req:?}");
        replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Stream(vec![Step::Hold]))
    }
}
