//! The X API filtered-stream source against a local HTTP/1.1 server that
//! streams real tweets (from data/tweets-v2.jsonl) in chunks, with
//! heartbeats, broken connections, 503s, 429s, stalls and refusals, and that
//! keeps rules and answers SSM GetParameter like the real services.
//!
//! Reconnect delays go through a recording sleeper, so the schedule is
//! asserted exactly without waiting for it; only the stall test waits (a
//! 400 ms stall timeout), and the cancellation test waits a fraction of a
//! second.

#[path = "support/fake_x.rs"]
mod fake_x;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_x::{Reply, Req, Server, Step, scripted};
use serde_json::{Value, json};
use streamstack::processor::Record;
use streamstack::processor::write::source::x_api::{
    BearerToken, MAX_LINE, Reconnects, STREAM_PATH, STREAM_QUERY, Sleep, Sleeper, StreamOptions,
    StreamRule, StreamStats, TokenProblem, XApiClient, XApiError, resolve_token, run,
};
use streamstack::spec::model::{TaggedRule, XApiSource, XRule};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "PLANTED-bearer-7f3a9c2e41d8";
const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

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
        // Shown with a failing test's output.
        log: Arc::new(|line: &str| println!("log: {line}")),
        ..StreamOptions::default()
    }
}

/// Keeps what the stream logs.
fn logging(options: &mut StreamOptions) -> Arc<Mutex<Vec<String>>> {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let keep = logs.clone();
    options.log = Arc::new(move |line: &str| {
        println!("log: {line}");
        keep.lock().unwrap().push(line.to_string());
    });
    logs
}

fn lines_with(logs: &Mutex<Vec<String>>, part: &str) -> usize {
    logs.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(part))
        .count()
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
            malformed: 0,
            heartbeats: 2,
            // The half of line 50 that the first connection broke off.
            partial_lines: 1,
            oversize_lines: 0,
            dropped_bytes: half.len() as u64,
            max_buffered: stats.max_buffered,
            reconnects: Reconnects {
                dropped: 2,
                stalled: 0,
                network: 1,
                http: 3,
                rate_limited: 2,
            },
        }
    );

    let longest = lines.iter().map(|l| l.len()).max().unwrap() as u64;
    assert!(stats.max_buffered <= longest + 1, "{}", stats.max_buffered);

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

fn tagged(value: &str, tag: &str) -> XRule {
    XRule::Tagged(TaggedRule {
        value: value.into(),
        tag: Some(tag.into()),
    })
}

#[tokio::test]
async fn rules_sync_deletes_stale_then_adds_missing_and_is_idempotent() {
    let server = Server::start(rules_service(vec![
        StreamRule::new("100", "#rustlang", Some("rust")),
        StreamRule::new("101", "stale rule", None),
        // On the second page: found only by following next_token.
        StreamRule::new("102", "#tokio", Some("old-tag")),
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
            StreamRule::new("101", "stale rule", None),
            StreamRule::new("102", "#tokio", Some("old-tag"))
        ]
    );
    assert_eq!(
        sync.added,
        [
            StreamRule::new("201", "#serde lang:en", None),
            StreamRule::new("202", "#tokio", Some("tokio"))
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
    assert_eq!(rules.added, [StreamRule::new("201", "#rustlang", None)]);
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

// ---------------------------------------------------------------------------
// Broken streams
// ---------------------------------------------------------------------------

/// Streams from `server` until `count` records have come (then cancels).
async fn stream_until(
    server: &Server,
    options: &StreamOptions,
    count: usize,
) -> (StreamStats, Vec<Record>) {
    let client = client(server);
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(4);
    let (stats, got) = within(async {
        tokio::join!(
            client.stream(&tx, &cancel, options),
            collect(rx, count, cancel.clone()),
        )
    })
    .await;
    (stats.unwrap(), got)
}

fn datas(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect()
}

fn texts(lines: &[&[u8]]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// A response written byte for byte: `head` (status line and headers, no
/// blank line), then the body steps as they are.
fn raw(head: &str, body: Vec<Step>) -> Reply {
    let mut steps = vec![Step::Chunk(format!("{head}\r\n\r\n").into_bytes())];
    steps.extend(body);
    Reply::Raw(steps)
}

fn raw_200(content_type: &str, body: &str) -> Reply {
    raw(
        &format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             connection: close",
            body.len()
        ),
        vec![Step::Chunk(body.as_bytes().to_vec()), Step::End],
    )
}

fn line_then_hold(line: &[u8]) -> Reply {
    Reply::Stream(vec![Step::Chunk([line, b"\r\n"].concat()), Step::Hold])
}

fn crlf(line: &[u8]) -> Vec<u8> {
    [line, b"\r\n"].concat()
}

#[tokio::test]
async fn a_line_cut_by_the_end_of_its_connection_is_dropped_logged_and_the_client_reconnects() {
    let all = messages();
    let line = |i: usize| all[i].1.as_slice();
    let cut1 = &line(1)[..line(1).len() / 2];
    let cut3 = &line(3)[..100];
    let server = Server::start(scripted(vec![
        // Broken off mid-line.
        Reply::Stream(vec![
            Step::Chunk(crlf(line(0))),
            Step::Chunk(cut1.to_vec()),
            Step::Abort,
        ]),
        // A clean end between a message and its \r\n: the message is whole.
        Reply::Stream(vec![
            Step::Chunk(crlf(line(1))),
            Step::Chunk(line(2).to_vec()),
            Step::End,
        ]),
        // A clean end mid-line, with no message before it.
        Reply::Stream(vec![Step::Chunk(cut3.to_vec()), Step::End]),
        line_then_hold(line(3)),
    ]))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, S(10));
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 4).await;

    assert_eq!(datas(&got), texts(&[line(0), line(1), line(2), line(3)]));
    assert_eq!(stats.messages, 4);
    assert_eq!(stats.malformed, 0, "no partial line was sent");
    assert_eq!(stats.partial_lines, 2);
    assert_eq!(stats.dropped_bytes, (cut1.len() + cut3.len()) as u64);
    assert_eq!(stats.connections, 4);
    assert_eq!(stats.reconnects.dropped, 3);
    // Each connection that delivered reconnects at once; the one that only
    // brought half a line does not reset the schedule.
    assert_eq!(sleeper.delays(), [Duration::ZERO, Duration::ZERO, MS(250)]);
    let partial = |n: usize, how: &str| {
        lines_with(
            &logs,
            &format!("dropped a partial line of {n} bytes (not sent), cut off when {how}"),
        )
    };
    assert_eq!(partial(cut1.len(), "the stream broke"), 1, "{logs:?}");
    assert_eq!(partial(cut3.len(), "the stream ended"), 1, "{logs:?}");
    assert_eq!(lines_with(&logs, "; reconnecting in "), 3, "{logs:?}");
}

#[tokio::test]
async fn broken_chunked_encoding_drops_the_connection_not_the_data_before_it() {
    let all = messages();
    let line = |i: usize| all[i].1.as_slice();
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked";
    let chunk =
        |bytes: &[u8]| [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat();
    let server = Server::start(scripted(vec![
        // A chunk size that is not hex, after a whole line and half of one.
        raw(
            head,
            vec![
                Step::Chunk(chunk(&crlf(line(0)))),
                Step::Chunk(chunk(&line(1)[..40])),
                Step::Chunk(b"zz\r\nnot a chunk\r\n".to_vec()),
                Step::Hold,
            ],
        ),
        // A chunk that promises 4 KiB and is closed after 10 bytes.
        raw(
            head,
            vec![
                Step::Chunk(chunk(&crlf(line(1)))),
                Step::Chunk(b"1000\r\n{\"data\":{".to_vec()),
                Step::Abort,
            ],
        ),
        // A chunk without its trailing \r\n.
        raw(
            head,
            vec![
                Step::Chunk(chunk(&crlf(line(2)))),
                Step::Chunk(b"5\r\n{\"a\":XYZ".to_vec()),
                Step::Hold,
            ],
        ),
        line_then_hold(line(3)),
    ]))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, S(10));
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 4).await;

    assert_eq!(datas(&got), texts(&[line(0), line(1), line(2), line(3)]));
    assert_eq!(stats.partial_lines, 3, "{logs:?}");
    assert_eq!(stats.malformed, 0);
    assert_eq!(stats.reconnects.dropped, 3);
    assert_eq!(stats.reconnects.total(), 3);
    assert_eq!(lines_with(&logs, "the stream broke"), 6, "{logs:?}");
}

#[tokio::test]
async fn a_giant_line_is_dropped_without_buffering_it_and_the_stream_reads_on() {
    let all = messages();
    let line = |i: usize| all[i].1.as_slice();
    const LIMIT: usize = 64 << 10;
    const GIANT: usize = 20 << 20;
    let mut steps = vec![Step::Chunk(
        [crlf(line(0)), b"{\"giant\":\"".to_vec()].concat(),
    )];
    steps.extend((0..GIANT / LIMIT).map(|_| Step::Chunk(vec![b'x'; LIMIT])));
    steps.push(Step::Chunk(
        [b"\"}\r\n\r\n".as_slice(), &crlf(line(1))].concat(),
    ));
    // Over the limit by one byte, in one chunk with its neighbours.
    steps.push(Step::Chunk(
        [crlf(&[b'y'; LIMIT + 1]), crlf(line(2))].concat(),
    ));
    // A connection that ends inside a giant line.
    steps.push(Step::Chunk(vec![b'z'; 3 * LIMIT]));
    steps.push(Step::Abort);
    let server = Server::start(scripted(vec![
        Reply::Stream(steps),
        line_then_hold(line(3)),
    ]))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, S(10));
    options.max_line = LIMIT;
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 4).await;

    assert_eq!(datas(&got), texts(&[line(0), line(1), line(2), line(3)]));
    assert_eq!(stats.oversize_lines, 3);
    assert_eq!(stats.partial_lines, 0);
    assert_eq!(stats.heartbeats, 1);
    assert_eq!(
        stats.dropped_bytes,
        (10 + GIANT + 4) as u64 + (LIMIT + 3) as u64 + (3 * LIMIT) as u64
    );
    assert!(
        stats.max_buffered <= LIMIT as u64 + 1,
        "buffered {} bytes for a {LIMIT} byte limit",
        stats.max_buffered
    );
    assert_eq!(stats.connections, 2, "read on, not reconnected");
    assert_eq!(stats.reconnects.dropped, 1);
    assert_eq!(
        lines_with(
            &logs,
            "dropped a line longer than the 65536 byte limit (not sent)"
        ),
        3,
        "{logs:?}"
    );
    assert_eq!(
        lines_with(
            &logs,
            "the connection ended inside the line that was too long"
        ),
        1
    );
}

#[tokio::test]
async fn the_default_line_limit_is_16_mib() {
    let all = messages();
    let over = MAX_LINE + 1;
    let mut steps: Vec<Step> = (0..over.div_ceil(1 << 20))
        .map(|i| Step::Chunk(vec![b'x'; (over - i * (1 << 20)).min(1 << 20)]))
        .collect();
    steps.push(Step::Chunk(b"\r\n".to_vec()));
    steps.push(Step::Chunk(crlf(&all[0].1)));
    steps.push(Step::Hold);
    let server = Server::start(scripted(vec![Reply::Stream(steps)])).await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, S(10));
    assert_eq!(options.max_line, MAX_LINE);
    assert_eq!(StreamOptions::default().max_line, 16 << 20);
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 1).await;
    assert_eq!(got[0].data, all[0].1);
    assert_eq!(stats.oversize_lines, 1);
    assert!(stats.max_buffered <= MAX_LINE as u64 + 1);
    assert_eq!(lines_with(&logs, "longer than the 16777216 byte limit"), 1);
}

#[tokio::test]
async fn a_200_that_is_not_json_is_retried_as_an_http_error_and_nothing_is_sent() {
    let all = messages();
    let portal = "<!DOCTYPE html>\r\n<html><head><title>Hotel WiFi login</title></head>\r\n\
                  <body>Please accept the terms</body></html>\r\n";
    let server = Server::start(scripted(vec![
        raw_200("text/html; charset=utf-8", portal),
        raw_200(
            "application/octet-stream",
            "\u{1}\u{2}binary\r\n{\"data\":{}}\r\n",
        ),
        // An endless page: only its start is read.
        raw(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain",
            vec![Step::Chunk(vec![b'.'; 4096]), Step::Hold],
        ),
        line_then_hold(&all[0].1),
    ]))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, S(10));
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 1).await;

    assert_eq!(datas(&got), texts(&[&all[0].1]));
    assert_eq!(stats.connections, 1, "only the JSON stream counts");
    assert_eq!(stats.reconnects.http, 3);
    assert_eq!(stats.malformed, 0);
    assert_eq!(sleeper.delays(), [S(5), S(10), S(20)]);
    for part in [
        "HTTP 200 with content type `text/html; charset=utf-8`, not a stream: \"<!DOCTYPE html>",
        "Hotel WiFi login",
        "content type `application/octet-stream`",
        "content type `text/plain`",
    ] {
        assert_eq!(lines_with(&logs, part), 1, "{part}: {logs:?}");
    }
}

#[tokio::test]
async fn empty_and_heartbeat_only_connections_back_off_instead_of_looping() {
    let empty = || raw_200("application/json", "");
    let heartbeat = || Reply::Stream(vec![Step::Chunk(b"\r\n".to_vec()), Step::End]);
    let server = Server::start(scripted(vec![empty(), heartbeat(), empty(), heartbeat()])).await;
    let client = client(&server);
    let cancel = CancellationToken::new();
    let sleeper = Arc::new(RecordingSleeper::cancelling_after(4, &cancel));
    let (tx, mut rx) = mpsc::channel(1);
    let stats = within(client.stream(&tx, &cancel, &options(&sleeper, S(10))))
        .await
        .unwrap();
    assert_eq!(
        sleeper.delays(),
        [Duration::ZERO, MS(250), MS(500), MS(750)]
    );
    assert_eq!(stats.connections, 4);
    assert_eq!(stats.heartbeats, 2);
    assert_eq!(stats.reconnects.dropped, 4);
    assert!(rx.try_recv().is_err(), "nothing was sent");
}

#[tokio::test]
async fn lines_that_are_not_json_are_sent_on_counted_and_logged_once() {
    let all = messages();
    let odd: [&[u8]; 4] = [
        b"\xff\xfe\x00garbage",
        b"{\"data\":{\"id\":\"5\",\"text\":\"\xc3\x28\"}}",
        b"<html><body>502 Bad Gateway</body></html>",
        b"[1,2]",
    ];
    let mut lines: Vec<&[u8]> = vec![&all[0].1];
    lines.extend(odd);
    lines.push(&all[1].1);
    let mut steps = chunked(&lines, 7);
    steps.push(Step::Hold);
    let server = Server::start(scripted(vec![Reply::Stream(steps)])).await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, S(10));
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 6).await;

    let sent: Vec<&[u8]> = got.iter().map(|r| r.data.as_slice()).collect();
    assert_eq!(sent, lines, "sent unchanged, in order");
    assert_eq!(got[0].partition_key, all[0].0);
    assert_eq!(got[5].partition_key, all[1].0);
    assert!(got[1..5].iter().all(|r| r.partition_key.len() == 16));
    assert_eq!((stats.messages, stats.malformed), (2, 4));
    assert_eq!(
        lines_with(&logs, "a line that is not a JSON object (sent on"),
        1,
        "{logs:?}"
    );
    assert_eq!(
        lines_with(&logs, "\u{fffd}\u{fffd}\\0garbage"),
        1,
        "{logs:?}"
    );
}

#[tokio::test]
async fn heartbeats_interleaved_with_data_are_counted_and_never_sent() {
    let all = messages();
    let line = |i: usize| all[i].1.as_slice();
    let server = Server::start(scripted(vec![Reply::Stream(vec![
        Step::Chunk(b"\r\n\r\n".to_vec()),
        Step::Chunk([crlf(line(0)), b"\r\n".to_vec(), line(1)[..10].to_vec()].concat()),
        Step::Chunk([&line(1)[10..], b"\r"].concat()),
        Step::Chunk(b"\n\r".to_vec()),
        Step::Chunk(b"\n\n  \r\n".to_vec()),
        Step::Chunk([crlf(line(2)), b"\r\n".to_vec()].concat()),
        Step::Hold,
    ])]))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let (stats, got) = stream_until(&server, &options(&sleeper, S(10)), 3).await;
    assert_eq!(datas(&got), texts(&[line(0), line(1), line(2)]));
    assert_eq!(stats.heartbeats, 7);
    assert_eq!(stats.messages, 3);
    assert_eq!(stats.reconnects.total(), 0);
    assert_eq!(stats.partial_lines + stats.malformed, 0);
}

#[tokio::test]
async fn a_stall_mid_line_drops_the_partial_line_and_reconnects() {
    let all = messages();
    let server = Server::start(scripted(vec![
        Reply::Stream(vec![
            Step::Chunk(crlf(&all[0].1)),
            Step::Chunk(all[1].1[..50].to_vec()),
            Step::Hold,
        ]),
        line_then_hold(&all[1].1),
    ]))
    .await;
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut options = options(&sleeper, MS(300));
    let logs = logging(&mut options);
    let (stats, got) = stream_until(&server, &options, 2).await;
    assert_eq!(datas(&got), texts(&[&all[0].1, &all[1].1]));
    assert_eq!(stats.reconnects.stalled, 1);
    assert_eq!(stats.partial_lines, 1);
    assert_eq!(stats.dropped_bytes, 50);
    assert_eq!(sleeper.delays(), [Duration::ZERO]);
    assert_eq!(
        lines_with(
            &logs,
            "dropped a partial line of 50 bytes (not sent), cut off when nothing, not even a heartbeat, for 300ms"
        ),
        1,
        "{logs:?}"
    );
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn status_with(status: &str, header: Option<String>) -> Reply {
    let extra = header.map(|h| format!("\r\n{h}")).unwrap_or_default();
    raw(
        &format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 2{extra}"),
        vec![Step::Chunk(b"{}".to_vec()), Step::End],
    )
}

#[tokio::test]
async fn rate_limit_reset_and_retry_after_lengthen_the_wait_never_shorten_it() {
    let now = epoch_now();
    let server = Server::start(scripted(vec![
        status_with(
            "429 Too Many Requests",
            Some(format!("x-rate-limit-reset: {}", now + 600)),
        ),
        status_with(
            "429 Too Many Requests",
            Some(format!("x-rate-limit-reset: {}", now - 600)),
        ),
        status_with("429 Too Many Requests", None),
        status_with("503 Service Unavailable", Some("retry-after: 30".into())),
        status_with("503 Service Unavailable", Some("retry-after: 2".into())),
        status_with("503 Service Unavailable", None),
        // A reset a day away: at most the 960 s cap.
        status_with(
            "429 Too Many Requests",
            Some(format!("x-rate-limit-reset: {}", now + 86_400)),
        ),
    ]))
    .await;
    let client = client(&server);
    let cancel = CancellationToken::new();
    let sleeper = Arc::new(RecordingSleeper::cancelling_after(7, &cancel));
    let mut options = options(&sleeper, S(10));
    let logs = logging(&mut options);
    let (tx, _rx) = mpsc::channel(1);
    let stats = within(client.stream(&tx, &cancel, &options)).await.unwrap();

    let delays = sleeper.delays();
    // Computed from the wall clock: a test slower than 10 s would see less.
    assert!(delays[0] <= S(600) && delays[0] > S(590), "{delays:?}");
    assert_eq!(
        delays[1..],
        [S(120), S(240), S(30), S(10), S(20), S(960)],
        "{delays:?}"
    );
    assert_eq!(stats.reconnects.rate_limited, 4);
    assert_eq!(stats.reconnects.http, 3);
    assert_eq!(lines_with(&logs, "(as the response asked)"), 3, "{logs:?}");
    assert_eq!(
        lines_with(&logs, "HTTP 429 Too Many Requests"),
        4,
        "{logs:?}"
    );
}

#[tokio::test]
async fn error_bodies_that_stall_do_not_hang_the_client() {
    let stalled = |status: &str| {
        raw(
            &format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 1000"),
            vec![Step::Chunk(b"{\"title\":\"Unauth".to_vec()), Step::Hold],
        )
    };
    let server = Server::start(scripted(vec![
        stalled("503 Service Unavailable"),
        stalled("401 Unauthorized"),
    ]))
    .await;
    let client = client(&server);
    let sleeper = Arc::new(RecordingSleeper::default());
    let (tx, _rx) = mpsc::channel(1);
    let err = within(client.stream(&tx, &CancellationToken::new(), &options(&sleeper, MS(300))))
        .await
        .unwrap_err();
    let XApiError::Api { status, detail, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 401);
    assert_eq!(
        detail, "{\"title\":\"Unauth",
        "what came of the body: {err}"
    );
    assert_eq!(sleeper.delays(), [S(5)], "the stalled 503 was retried");
}
