//! The X API filtered-stream source against a local HTTP/1.1 server that
//! streams real tweets (from data/tweets-v2.jsonl) in chunks, with
//! heartbeats, broken connections, 503s, 429s, stalls and refusals, and that
//! keeps rules and answers SSM GetParameter like the real services.
//!
//! Reconnect delays go through a recording sleeper, so the schedule is
//! asserted exactly without waiting for it; only the stall test waits (a
//! 400 ms stall timeout), and the cancellation test waits a fraction of a
//! second.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streamstack::processor::Record;
use streamstack::processor::source::x_api::{
    BearerToken, Reconnects, STREAM_PATH, STREAM_QUERY, Sleep, Sleeper, StreamOptions, StreamRule,
    StreamStats, TokenProblem, XApiClient, XApiError, resolve_token, run,
};
use streamstack::spec::model::{TaggedRule, XApiSource, XRule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "PLANTED-bearer-7f3a9c2e41d8";
const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

// ---------------------------------------------------------------------------
// A small HTTP/1.1 server
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

enum Reply {
    Json(u16, Value),
    AwsJson(u16, Value),
    Stream(Vec<Step>),
    /// Close the connection without answering.
    Refuse,
}

enum Step {
    Chunk(Vec<u8>),
    Pause(Duration),
    /// The terminating chunk: a clean end of the body.
    End,
    /// Close mid-body (no terminating chunk).
    Abort,
    /// Send nothing more until the client hangs up.
    Hold,
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Req>>>,
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    async fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Self {
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
        }
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    fn stream_requests(&self) -> Vec<Req> {
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
            for step in steps {
                match step {
                    Step::Chunk(bytes) => {
                        let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
                        frame.extend_from_slice(&bytes);
                        frame.extend_from_slice(b"\r\n");
                        if socket.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    Step::Pause(d) => tokio::time::sleep(d).await,
                    Step::End => {
                        let _ = socket.write_all(b"0\r\n\r\n").await;
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
fn scripted(replies: Vec<Reply>) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
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

// ---------------------------------------------------------------------------
// Data and helpers
// ---------------------------------------------------------------------------

/// Stream messages made from the bundled pages: each tweet with its author
/// and the rule that matched, as the filtered stream sends them.
fn messages() -> Vec<(String, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tweets-v2.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for page in text.lines() {
        let page: Value = serde_json::from_str(page).unwrap();
        let users = page["includes"]["users"].as_array().unwrap();
        for tweet in page["data"].as_array().unwrap() {
            let author: Vec<&Value> = users
                .iter()
                .filter(|u| u["id"] == tweet["author_id"])
                .collect();
            let message = json!({
                "data": tweet,
                "includes": {"users": author},
                "matching_rules": [{"id": "1705021542813200385", "tag": "observatory"}],
            });
            out.push((
                tweet["id"].as_str().unwrap().to_string(),
                serde_json::to_vec(&message).unwrap(),
            ));
        }
    }
    out
}

const NOTICE: &str = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;

/// Lines as X frames them (`\r\n` after each), cut into chunks of `size`
/// bytes wherever that falls, mid-line included.
fn chunked(lines: &[&[u8]], size: usize) -> Vec<Step> {
    let mut body = Vec::new();
    for line in lines {
        body.extend_from_slice(line);
        body.extend_from_slice(b"\r\n");
    }
    body.chunks(size).map(|c| Step::Chunk(c.to_vec())).collect()
}

fn problem(status: u16, title: &str, detail: &str) -> Reply {
    Reply::Json(
        status,
        json!({"title": title, "detail": detail, "type": "about:blank", "status": status}),
    )
}

fn unavailable() -> Reply {
    problem(503, "Service Unavailable", "Service Unavailable")
}

fn too_many() -> Reply {
    Reply::Json(
        429,
        json!({
            "title": "ConnectionException",
            "detail": "This stream is currently at the maximum allowed connection limit.",
            "connection_issue": "TooManyConnections",
            "type": "https://api.twitter.com/2/problems/streaming-connection",
        }),
    )
}

/// Records every reconnect delay instead of sleeping, and cancels the run
/// once it has recorded `cancel_after` of them.
#[derive(Default)]
struct RecordingSleeper {
    delays: Mutex<Vec<Duration>>,
    cancel_after: Option<(usize, CancellationToken)>,
}

impl RecordingSleeper {
    fn cancelling_after(n: usize, cancel: &CancellationToken) -> Self {
        Self {
            delays: Mutex::default(),
            cancel_after: Some((n, cancel.clone())),
        }
    }

    fn delays(&self) -> Vec<Duration> {
        self.delays.lock().unwrap().clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, delay: Duration) -> Sleep {
        let mut delays = self.delays.lock().unwrap();
        delays.push(delay);
        if let Some((n, cancel)) = &self.cancel_after
            && delays.len() >= *n
        {
            cancel.cancel();
        }
        Box::pin(std::future::ready(()))
    }
}

fn options(sleeper: &Arc<RecordingSleeper>, stall_timeout: Duration) -> StreamOptions {
    StreamOptions {
        stall_timeout,
        sleeper: sleeper.clone(),
    }
}

fn client(server: &Server) -> XApiClient {
    XApiClient::new(&server.url, BearerToken::new(TOKEN).unwrap()).unwrap()
}

/// Fails a test that hangs instead of hanging the suite.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(S(20), future)
        .await
        .expect("test took more than 20 s")
}

/// Takes records until `count` have come, then cancels the stream.
async fn collect(
    mut rx: mpsc::Receiver<Record>,
    count: usize,
    cancel: CancellationToken,
) -> Vec<Record> {
    let mut got = Vec::new();
    while got.len() < count {
        match rx.recv().await {
            Some(record) => got.push(record),
            None => break,
        }
        // A slow consumer: the source must wait on the bounded channel.
        tokio::task::yield_now().await;
    }
    cancel.cancel();
    got
}

fn ssm_client(url: &str) -> aws_sdk_ssm::Client {
    let config = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "AKIDTEST", "testing", None, None, "test",
        ))
        .endpoint_url(url)
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

// ---------------------------------------------------------------------------
// The stream
// ---------------------------------------------------------------------------

#[tokio::test]
async fn delivers_every_tweet_once_in_order_across_reconnects() {
    let all = messages();
    assert_eq!(all.len(), 218);
    let lines: Vec<&[u8]> = all.iter().map(|(_, l)| l.as_slice()).collect();
    let half = &lines[50][..lines[50].len() / 2];

    let mut first = vec![
        Step::Chunk(lines[0].to_vec()),
        Step::Chunk(b"\r\n\r\n".to_vec()),
    ];
    first.extend(chunked(&lines[1..50], 777));
    first.extend([Step::Chunk(half.to_vec()), Step::Abort]);
    let mut middle = chunked(&lines[50..120], 1000);
    middle.extend([
        Step::Chunk(b"\r\n".to_vec()),
        Step::Chunk(format!("{NOTICE}\r\n").into_bytes()),
        Step::End,
    ]);
    let mut last = chunked(&lines[120..], 1500);
    last.push(Step::Hold);
    let server = Server::start(scripted(vec![
        Reply::Stream(first),
        unavailable(),
        unavailable(),
        too_many(),
        too_many(),
        Reply::Refuse,
        Reply::Stream(middle),
        unavailable(),
        Reply::Stream(last),
    ]))
    .await;

    let client = client(&server);
    let sleeper = Arc::new(RecordingSleeper::default());
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(1);
    let options = options(&sleeper, S(10));
    let (stats, got) = within(async {
        tokio::join!(
            client.stream(&tx, &cancel, &options),
            collect(rx, all.len() + 1, cancel.clone()),
        )
    })
    .await;
    let stats = stats.unwrap();

    let mut expected: Vec<(String, Vec<u8>)> = all[..120].to_vec();
    expected.push((String::new(), NOTICE.as_bytes().to_vec()));
    expected.extend(all[120..].iter().cloned());
    assert_eq!(got.len(), expected.len());
    for (i, (record, (id, line))) in got.iter().zip(&expected).enumerate() {
        assert_eq!(&record.data, line, "record {i}: bytes differ");
        if !id.is_empty() {
            assert_eq!(&record.partition_key, id, "record {i}: key");
        }
    }
    let notice_key = &got[120].partition_key;
    assert_eq!(
        notice_key.len(),
        16,
        "a notice is keyed by a hash: {notice_key}"
    );
    assert!(notice_key.chars().all(|c| c.is_ascii_hexdigit()));

    assert_eq!(
        sleeper.delays(),
        [
            Duration::ZERO, // a broken stream: at once
            S(5),           // 503
            S(10),          // 503
            S(60),          // 429
            S(120),         // 429
            MS(250),        // refused: network
            Duration::ZERO, // the stream that delivered ended cleanly: at once
            S(5),           // 503, on a schedule reset by that stream's data
        ]
    );
    assert_eq!(
        stats,
        StreamStats {
            connections: 3,
            messages: 218,
            system_messages: 1,
            heartbeats: 2,
            reconnects: Reconnects {
                dropped: 2,
                stalled: 0,
                network: 1,
                http: 3,
                rate_limited: 2,
            },
        }
    );

    let requests = server.stream_requests();
    assert_eq!(requests.len(), 9);
    for req in &requests {
        assert_eq!(req.method, "GET");
        assert_eq!(req.query(), Some(STREAM_QUERY));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn heartbeats_keep_a_quiet_stream_alive_and_silence_is_a_stall() {
    let all = messages();
    let mut quiet = vec![Step::Chunk([all[0].1.as_slice(), b"\r\n"].concat())];
    for _ in 0..6 {
        quiet.extend([Step::Pause(MS(100)), Step::Chunk(b"\r\n".to_vec())]);
    }
    quiet.push(Step::Hold);
    let server = Server::start(scripted(vec![
        Reply::Stream(quiet),
        Reply::Stream(vec![
            Step::Chunk([all[1].1.as_slice(), b"\r\n"].concat()),
            Step::Hold,
        ]),
    ]))
    .await;

    let client = client(&server);
    let sleeper = Arc::new(RecordingSleeper::default());
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(8);
    let options = options(&sleeper, MS(400));
    let (stats, got) = within(async {
        tokio::join!(
            client.stream(&tx, &cancel, &options),
            collect(rx, 2, cancel.clone()),
        )
    })
    .await;
    let stats = stats.unwrap();

    let keys: Vec<&str> = got.iter().map(|r| r.partition_key.as_str()).collect();
    assert_eq!(keys, [all[0].0.as_str(), all[1].0.as_str()]);
    assert_eq!(
        stats.heartbeats, 6,
        "heartbeats 100 ms apart must not stall"
    );
    assert_eq!(stats.reconnects.stalled, 1);
    assert_eq!(stats.reconnects.total(), 1);
    assert_eq!(sleeper.delays(), [Duration::ZERO]);
    let requests = server.stream_requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= MS(990),
        "600 ms of heartbeats then 400 ms of silence, got {gap:?}"
    );
}

#[tokio::test]
async fn connect_errors_back_off_linearly_to_16_s() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let client = XApiClient::new(&url, BearerToken::new(TOKEN).unwrap()).unwrap();
    let cancel = CancellationToken::new();
    let sleeper = Arc::new(RecordingSleeper::cancelling_after(70, &cancel));
    let (tx, _rx) = mpsc::channel(1);
    let stats = within(client.stream(&tx, &cancel, &options(&sleeper, S(10))))
        .await
        .unwrap();

    let expected: Vec<Duration> = (1..=70u64).map(|n| MS((250 * n).min(16_000))).collect();
    assert_eq!(sleeper.delays(), expected);
    assert_eq!(stats.reconnects.network, 70);
    assert_eq!(stats.connections, 0);
}

#[tokio::test]
async fn server_errors_then_rate_limits_back_off_exponentially_to_their_caps() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let server = Server::start(move |_req: &Req| {
        if seen.fetch_add(1, Ordering::SeqCst) < 8 {
            unavailable()
        } else {
            too_many()
        }
    })
    .await;

    let client = client(&server);
    let cancel = CancellationToken::new();
    let sleeper = Arc::new(RecordingSleeper::cancelling_after(15, &cancel));
    let (tx, _rx) = mpsc::channel(1);
    let stats = within(client.stream(&tx, &cancel, &options(&sleeper, S(10))))
        .await
        .unwrap();

    let expected: Vec<Duration> = [5, 10, 20, 40, 80, 160, 320, 320]
        .into_iter()
        .chain([60, 120, 240, 480, 960, 960, 960])
        .map(S)
        .collect();
    assert_eq!(sleeper.delays(), expected);
    assert_eq!(stats.reconnects.http, 8);
    assert_eq!(stats.reconnects.rate_limited, 7);
    assert_eq!(server.stream_requests().len(), 15);
}

#[tokio::test]
async fn unauthorized_and_forbidden_stop_with_x_title_and_detail() {
    let cases = [
        (
            401,
            "Unauthorized",
            "Unauthorized",
            "the bearer token was not accepted",
        ),
        (
            403,
            "Client Forbidden",
            "When authenticating requests to the Twitter API v2 endpoints, you must use keys and \
             tokens from a Twitter developer App that is attached to a Project.",
            "access level",
        ),
    ];
    for (status, title, detail, hint) in cases {
        let server = Server::start(move |_req: &Req| problem(status, title, detail)).await;
        let client = client(&server);
        let sleeper = Arc::new(RecordingSleeper::default());
        let (tx, _rx) = mpsc::channel(1);
        let err = within(client.stream(&tx, &CancellationToken::new(), &options(&sleeper, S(10))))
            .await
            .unwrap_err();

        let XApiError::Api {
            status: got_status,
            title: got_title,
            detail: got_detail,
            ..
        } = &err
        else {
            panic!("{status}: expected an API error, got {err:?}");
        };
        assert_eq!(*got_status, status);
        assert_eq!(got_title, title);
        assert_eq!(got_detail, detail);
        let message = err.to_string();
        for part in [&format!("HTTP {status}"), title, detail, hint] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
        assert!(sleeper.delays().is_empty(), "{status} must not be retried");
        assert_eq!(server.stream_requests().len(), 1);
    }
}

#[tokio::test]
async fn cancel_interrupts_a_real_backoff_wait() {
    let server = Server::start(|_req: &Req| too_many()).await;
    let client = client(&server);
    let cancel = CancellationToken::new();
    let (tx, _rx) = mpsc::channel(1);
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(MS(300)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    // Real tokio sleeps: the 60 s wait after the 429 must end at the cancel.
    let stats = within(client.stream(&tx, &cancel, &StreamOptions::default()))
        .await
        .unwrap();
    assert!(started.elapsed() < S(5), "took {:?}", started.elapsed());
    assert_eq!(stats.reconnects.rate_limited, 1);
    assert_eq!(server.stream_requests().len(), 1);
}

#[tokio::test]
async fn a_closed_channel_stops_the_source() {
    let all = messages();
    let server = Server::start(scripted(vec![Reply::Stream(chunked(
        &[all[0].1.as_slice()],
        4096,
    ))]))
    .await;
    let client = client(&server);
    let sleeper = Arc::new(RecordingSleeper::default());
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let err = within(client.stream(&tx, &CancellationToken::new(), &options(&sleeper, S(10))))
        .await
        .unwrap_err();
    assert!(matches!(err, XApiError::ChannelClosed), "{err:?}");
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

/// X's rules endpoint, kept in memory, paginated two rules a page.
fn rules_service(initial: Vec<StreamRule>) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    let state = Mutex::new((initial, 200u64));
    move |req: &Req| {
        assert_eq!(req.path(), "/2/tweets/search/stream/rules", "{req:?}");
        let mut state = state.lock().unwrap();
        let (rules, next_id) = &mut *state;
        if req.method == "GET" {
            let start = match req.query() {
                None => 0,
                Some(q) => q
                    .strip_prefix("pagination_token=page")
                    .unwrap()
                    .parse()
                    .unwrap(),
            };
            let page: Vec<&StreamRule> = rules.iter().skip(start).take(2).collect();
            let mut meta = json!({"sent": "2024-01-01T00:00:00.000Z", "result_count": page.len()});
            if start + 2 < rules.len() {
                meta["next_token"] = json!(format!("page{}", start + 2));
            }
            return if page.is_empty() {
                Reply::Json(200, json!({"meta": meta}))
            } else {
                Reply::Json(200, json!({"data": page, "meta": meta}))
            };
        }
        let body = req.json();
        if let Some(ids) = body["delete"]["ids"].as_array() {
            let before = rules.len();
            rules.retain(|r| !ids.contains(&json!(r.id)));
            let deleted = before - rules.len();
            return Reply::Json(
                200,
                json!({"meta": {"sent": "2024-01-01T00:00:00.000Z",
                      "summary": {"deleted": deleted, "not_deleted": ids.len() - deleted}}}),
            );
        }
        let add = body["add"].as_array().unwrap();
        if let Some(bad) = add.iter().find(|r| r["value"] == "INVALID(") {
            return Reply::Json(
                200,
                json!({
                    "meta": {"sent": "2024-01-01T00:00:00.000Z",
                             "summary": {"created": 0, "not_created": add.len(), "valid": 0, "invalid": 1}},
                    "errors": [{"value": bad["value"], "details": ["Unmatched parenthesis."],
                                "title": "UnprocessableEntity",
                                "type": "https://api.twitter.com/2/problems/invalid-rules"}],
                }),
            );
        }
        let mut created = Vec::new();
        for rule in add {
            *next_id += 1;
            let rule = StreamRule {
                id: next_id.to_string(),
                value: rule["value"].as_str().unwrap().to_string(),
                tag: rule["tag"].as_str().map(str::to_string),
            };
            rules.push(rule.clone());
            created.push(rule);
        }
        Reply::Json(
            201,
            json!({"data": created, "meta": {"sent": "2024-01-01T00:00:00.000Z",
                   "summary": {"created": created.len(), "not_created": 0}}}),
        )
    }
}

fn rule(id: &str, value: &str, tag: Option<&str>) -> StreamRule {
    StreamRule {
        id: id.into(),
        value: value.into(),
        tag: tag.map(Into::into),
    }
}

fn tagged(value: &str, tag: &str) -> XRule {
    XRule::Tagged(TaggedRule {
        value: value.into(),
        tag: Some(tag.into()),
    })
}

#[tokio::test]
async fn rules_sync_deletes_stale_then_adds_missing_and_is_idempotent() {
    let server = Server::start(rules_service(vec![
        rule("100", "#rustlang", Some("rust")),
        rule("101", "stale rule", None),
        // On the second page: found only by following next_token.
        rule("102", "#tokio", Some("old-tag")),
    ]))
    .await;
    let client = client(&server);
    let wanted = [
        tagged("#rustlang", "rust"),
        XRule::Query("#serde lang:en".into()),
        tagged("#tokio", "tokio"),
    ];

    let sync = within(client.sync_rules(&wanted)).await.unwrap();
    assert_eq!(
        sync.deleted,
        [
            rule("101", "stale rule", None),
            rule("102", "#tokio", Some("old-tag"))
        ]
    );
    assert_eq!(
        sync.added,
        [
            rule("201", "#serde lang:en", None),
            rule("202", "#tokio", Some("tokio"))
        ]
    );
    assert_eq!(sync.kept, 1);

    let requests = server.requests();
    let calls: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str()))
        .collect();
    let rules_path = "/2/tweets/search/stream/rules";
    assert_eq!(
        calls,
        [
            ("GET", rules_path),
            (
                "GET",
                "/2/tweets/search/stream/rules?pagination_token=page2"
            ),
            ("POST", rules_path),
            ("POST", rules_path),
        ]
    );
    assert_eq!(
        requests[2].json(),
        json!({"delete": {"ids": ["101", "102"]}})
    );
    assert_eq!(
        requests[3].json(),
        json!({"add": [{"value": "#serde lang:en"}, {"value": "#tokio", "tag": "tokio"}]})
    );
    for req in &requests {
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    assert_eq!(requests[3].header("content-type"), Some("application/json"));

    let again = within(client.sync_rules(&wanted)).await.unwrap();
    assert!(
        again.added.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.kept, 3);
    let later = &server.requests()[requests.len()..];
    assert!(
        later.iter().all(|r| r.method == "GET"),
        "an in-sync stream needs no change: {later:?}"
    );
}

#[tokio::test]
async fn rules_that_x_refuses_are_an_error_naming_them() {
    let server = Server::start(rules_service(Vec::new())).await;
    let client = client(&server);
    let err = within(client.sync_rules(&[XRule::Query("INVALID(".into())]))
        .await
        .unwrap_err();
    assert!(matches!(err, XApiError::RulesRejected(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("`INVALID(`: Unmatched parenthesis."),
        "{message}"
    );
}

// ---------------------------------------------------------------------------
// Token and the whole source
// ---------------------------------------------------------------------------

/// SSM's GetParameter (awsJson 1.1) for one parameter, X's rules and stream.
fn x_and_ssm(
    parameter: &'static str,
    value: &'static str,
    stream: Vec<Reply>,
) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    let rules = rules_service(Vec::new());
    let stream = scripted(stream);
    move |req: &Req| {
        if req.header("x-amz-target") == Some("AmazonSSM.GetParameter") {
            return if req.json()["Name"] == parameter {
                Reply::AwsJson(
                    200,
                    json!({"Parameter": {"Name": parameter, "Type": "SecureString",
                           "Value": value, "Version": 1, "DataType": "text"}}),
                )
            } else {
                Reply::AwsJson(400, json!({"__type": "ParameterNotFound", "message": ""}))
            };
        }
        if req.path() == STREAM_PATH {
            stream(req)
        } else {
            rules(req)
        }
    }
}

#[tokio::test]
async fn run_reads_the_token_from_ssm_syncs_rules_and_streams() {
    let all = messages();
    let lines: Vec<&[u8]> = all[..5].iter().map(|(_, l)| l.as_slice()).collect();
    let mut steps = chunked(&lines, 300);
    steps.push(Step::Hold);
    let server = Server::start(x_and_ssm(
        "/tweets/x-bearer",
        "ssm-held-token\n",
        vec![Reply::Stream(steps)],
    ))
    .await;
    let source = XApiSource {
        rules: vec![XRule::Query("#rustlang".into())],
        token: "ssm:/tweets/x-bearer".into(),
        base_url: format!("{}/", server.url),
    };
    let sleeper = Arc::new(RecordingSleeper::default());
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(2);
    let ssm = ssm_client(&server.url);
    let (report, got) = within(async {
        tokio::join!(
            run(&source, &ssm, tx, cancel.clone(), options(&sleeper, S(10))),
            collect(rx, 5, cancel.clone()),
        )
    })
    .await;
    let report = report.unwrap();

    let keys: Vec<&str> = got.iter().map(|r| r.partition_key.as_str()).collect();
    let expected: Vec<&str> = all[..5].iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(keys, expected);
    let rules = report.rules.unwrap();
    assert_eq!(rules.added, [rule("201", "#rustlang", None)]);
    assert!(rules.deleted.is_empty());
    assert_eq!(report.stats.messages, 5);
    assert_eq!(report.stats.connections, 1);

    let requests = server.requests();
    assert_eq!(
        requests[0].json(),
        json!({"Name": "/tweets/x-bearer", "WithDecryption": true})
    );
    let x_calls: Vec<&Req> = requests[1..].iter().collect();
    assert_eq!(
        x_calls
            .iter()
            .map(|r| (r.method.as_str(), r.path()))
            .collect::<Vec<_>>(),
        [
            ("GET", "/2/tweets/search/stream/rules"),
            ("POST", "/2/tweets/search/stream/rules"),
            ("GET", STREAM_PATH),
        ]
    );
    for req in x_calls {
        // Trimmed of the newline it was stored with.
        assert_eq!(req.header("authorization"), Some("Bearer ssm-held-token"));
    }
}

#[tokio::test]
async fn a_missing_ssm_parameter_is_a_clear_error() {
    let server = Server::start(x_and_ssm("/other", "x", Vec::new())).await;
    let err = within(resolve_token(
        "ssm:/tweets/x-bearer",
        &ssm_client(&server.url),
    ))
    .await
    .unwrap_err();
    let XApiError::Token { reference, problem } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(reference, "ssm:/tweets/x-bearer");
    assert_eq!(
        problem,
        &TokenProblem::SsmNotFound("/tweets/x-bearer".into())
    );
    assert!(
        err.to_string()
            .contains("SSM parameter /tweets/x-bearer does not exist")
    );
}

#[tokio::test]
async fn env_token_references_resolve_from_the_environment() {
    // Cargo sets CARGO_PKG_NAME for the test process as for the build.
    let ssm = ssm_client("http://127.0.0.1:9");
    let token = resolve_token("env:CARGO_PKG_NAME", &ssm).await.unwrap();
    let server = Server::start(rules_service(Vec::new())).await;
    let client = XApiClient::new(&server.url, token).unwrap();
    within(client.rules()).await.unwrap();
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {}", env!("CARGO_PKG_NAME")).as_str())
    );

    let err = resolve_token("env:STREAMSTACK_TEST_SURELY_UNSET_9c1", &ssm)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, XApiError::Token { problem: TokenProblem::EnvUnset(name), .. }
            if name == "STREAMSTACK_TEST_SURELY_UNSET_9c1"),
        "{err:?}"
    );
    let err = resolve_token("AAAA-a-token-pasted-in-place", &ssm)
        .await
        .unwrap_err();
    assert!(matches!(err, XApiError::TokenReference(_)), "{err:?}");
}

#[tokio::test]
async fn bad_base_urls_are_refused() {
    for url in ["ftp://api.x.com", "api.x.com", "http://", "not a url"] {
        let err = XApiClient::new(url, BearerToken::new(TOKEN).unwrap()).unwrap_err();
        assert!(matches!(err, XApiError::BaseUrl { .. }), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug_output() {
    // A server that echoes the Authorization header back in its errors.
    let echo = |req: &Req| {
        let auth = req.header("authorization").unwrap_or_default().to_string();
        Reply::Json(
            403,
            json!({"title": format!("Forbidden for {auth}"), "detail": format!("you sent {auth}")}),
        )
    };
    let server = Server::start(echo).await;
    let token = BearerToken::new(TOKEN).unwrap();
    let client = XApiClient::new(&server.url, token.clone()).unwrap();
    let sleeper = Arc::new(RecordingSleeper::default());
    let (tx, _rx) = mpsc::channel(1);

    let stream_err =
        within(client.stream(&tx, &CancellationToken::new(), &options(&sleeper, S(10))))
            .await
            .unwrap_err();
    let rules_err = within(client.sync_rules(&[XRule::Query("a".into())]))
        .await
        .unwrap_err();
    // The echo did happen, scrubbed: otherwise this test proves nothing.
    assert!(
        server.requests()[0]
            .header("authorization")
            .unwrap()
            .contains(TOKEN)
    );
    assert!(
        stream_err.to_string().contains("you sent Bearer ***"),
        "{stream_err}"
    );

    // The token from SSM, rejected by an echoing X.
    let ssm_server = Server::start(x_and_ssm("/t", TOKEN, Vec::new())).await;
    let source = XApiSource {
        rules: vec![XRule::Query("a".into())],
        token: "ssm:/t".into(),
        base_url: server.url.clone(),
    };
    let (tx2, _rx2) = mpsc::channel(1);
    let run_err = within(run(
        &source,
        &ssm_client(&ssm_server.url),
        tx2,
        CancellationToken::new(),
        options(&sleeper, S(10)),
    ))
    .await
    .unwrap_err();
    assert!(run_err.to_string().contains("Bearer ***"), "{run_err}");

    let texts = [
        stream_err.to_string(),
        format!("{stream_err:?}"),
        rules_err.to_string(),
        format!("{rules_err:?}"),
        run_err.to_string(),
        format!("{run_err:?}"),
        format!("{token:?}"),
        format!("{client:?}"),
        format!("{:?}", options(&sleeper, S(10))),
        format!("{source:?}"),
    ];
    for text in &texts {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains("7f3a9c"), "part of the token leaked: {text}");
    }
    assert!(texts[7].contains("***"), "{}", texts[7]);
}
