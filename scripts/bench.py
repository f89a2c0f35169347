#!/usr/bin/env python3
"""`make bench`: the performance table, measured side by side in one run.

Ratios are taken within this run (absolute times on shared machines drift).
Writes bench/results.md with the machine, date and commit. Needs the binary
built (`make build`) and starts an emulator of its own (port 4598).

Sections:
  transform   streamstack transform vs bench/transform.py (plain Python),
              on X API v2 pages and on large v1.1 statuses; on the v2 pages
              also the same extraction as a jq transform (bench/tweets-jq.yaml):
              three ways, runs taken in turn, in one run
  units       on the emulator: DynamoDB write units per 1,000 records of the
              bundled sample tweets, split into items, aggregates, checkpoints
  latency     on the emulator: end-to-end latency (stream arrival -> stored)
              p50/p95/p99 at a steady 500 records/s on 2 shards, and at a rate
              under the emulator's write ceiling, with the reader's poll; the
              consumer's CPU seconds per 1,000 records and peak RSS
  pipeline    on the emulator: PutRecords calls per 1,000 records and
              item write calls per 1,000 items against the minimum,
              replay -> DynamoDB records/s beside the emulator's raw
              PutRecords rate, the consumer's peak RSS, the SIGTERM handover
  memory      the consumer's peak RSS at a steady rate
  scale       tweets/s and drain time with 1, 2, 4, 8 shards and 1, 2 consumers,
              beside the emulator's own ceilings measured in the same run
              (raw conditional PutItem, BatchWriteItem and GetRecords rates), with the
              limit that binds each row
  lifecycle   `up` on an unchanged stack vs `aws cloudformation deploy` of
              the same template on the same emulator
  offline     validate / synth whole-process times
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = str(REPO / os.environ.get("BIN", "target/debug/streamstack"))
PORT = int(os.environ.get("STREAMSTACK_BENCH_PORT", "4598"))
ENDPOINT = f"http://127.0.0.1:{PORT}"
AWS_ENV = {
    **os.environ,
    "AWS_ENDPOINT_URL": ENDPOINT,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CI": "1",
    "NO_COLOR": "1",
}
EMU_ENV = {**os.environ, "STREAMSTACK_EMULATOR_PORT": str(PORT), "STREAMSTACK_EMULATOR_STATE": str(REPO / ".state/emulator-bench")}
rows: list[tuple[str, str, str]] = []  # (section, measure, figure)


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(args: list[str], env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env or AWS_ENV, cwd=REPO, check=True, **kw)


def timed(args: list[str], runs: int, env=None, stdout=subprocess.DEVNULL) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, env=env or AWS_ENV, cwd=REPO, check=True, stdout=stdout, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def row(section: str, measure: str, figure: str) -> None:
    rows.append((section, measure, figure))
    print(f"  {section:<10} {measure:<62} {figure}", flush=True)


JQ_STACK = "bench/tweets-jq.yaml"


def interleaved(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median seconds of each command, their runs taken in turn (A B C A B C
    ...) so that a change in the machine's load falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            times[name].extend(timed(args, 1))
    return {name: statistics.median(t) for name, t in times.items()}


def output_digest(args: list[str]) -> tuple[int, str]:
    """The items a dry run gives (summary count) and a digest of its stdout."""
    import hashlib

    out = run(args, capture_output=True).stdout
    summary = json.loads(run([BIN, "--output", "json", *args[1:], "--summary"], capture_output=True).stdout)["summary"]
    return summary["items"], hashlib.sha256(out).hexdigest()


def bench_transform(tmp: Path) -> None:
    say("transform: making inputs from the shared v2 data")
    for kind, label in (("v2", "X API v2 pages"), ("v1", "large v1.1 statuses")):
        path = tmp / f"{kind}.jsonl"
        run([sys.executable, "bench/make_data.py", kind, "30", str(path)])
        size = path.stat().st_size
        commands = {
            "builtin": [BIN, "transform", str(path)],
            "python": [sys.executable, "bench/transform.py", str(path)],
        }
        if kind == "v2":
            # The same extraction written in jq (issue 14): v2 records only.
            commands["jq"] = [BIN, "transform", str(path), "--stack", JQ_STACK]
        count, builtin_digest = output_digest(commands["builtin"])
        t = interleaved(commands, 5)
        rust, py = t["builtin"], t["python"]
        row("transform", f"{label}: streamstack vs Python, same file ({size / 1e6:.0f} MB, {count} tweets)", f"{py / rust:.1f}x faster")
        row("transform", f"{label}: streamstack, one core", f"{count / rust:,.0f} tweets/s, {size / rust / 1e6:,.0f} MB/s")
        row("transform", f"{label}: Python (bench/transform.py)", f"{count / py:,.0f} tweets/s, {size / py / 1e6:,.0f} MB/s")
        if "jq" in t:
            jq_count, jq_digest = output_digest(commands["jq"])
            if jq_count != count:
                raise SystemExit(f"bench: the jq transform gave {jq_count} items, the built-in {count}")
            same = "the same items byte for byte" if jq_digest == builtin_digest else "the same number of items"
            jq = t["jq"]
            three = f"{label}, three ways ({size / 1e6:.0f} MB, {count} tweets)"
            row("transform", f"{three}: jq transform ({JQ_STACK}), one core", f"{count / jq:,.0f} tweets/s, {size / jq / 1e6:,.0f} MB/s")
            row("transform", f"{three}: built-in fast path, one core", f"{count / rust:,.0f} tweets/s, {size / rust / 1e6:,.0f} MB/s")
            row("transform", f"{three}: Python baseline", f"{count / py:,.0f} tweets/s, {size / py / 1e6:,.0f} MB/s")
            row("transform", f"{three}: speed ratios jq/Python, built-in/Python, built-in/jq ({same})",
                f"{py / jq:.1f}x, {py / rust:.1f}x, {jq / rust:.1f}x")


def emulator(cmd: str) -> None:
    subprocess.run(["scripts/emulator.sh", cmd], env=EMU_ENV, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def stack_copy(tmp: Path, name: str, shards: int) -> str:
    text = (REPO / "stacks/tweets.yaml").read_text().replace("name: tweets", f"name: {name}", 1)
    text = text.replace("shards: 2", f"shards: {shards}", 1)
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def raw_put_rate(stream: str, n: int = 10_000) -> float:
    """The emulator's own ceiling: boto3 PutRecords of 500, one call at a time."""
    import boto3  # the emulator's venv has it; this script runs under it

    client = boto3.client("kinesis", endpoint_url=ENDPOINT, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    payload = b"x" * 1000
    start = time.perf_counter()
    for i in range(0, n, 500):
        client.put_records(StreamName=stream, Records=[{"Data": payload, "PartitionKey": str(j)} for j in range(i, i + 500)])
    return n / (time.perf_counter() - start)


def boto(service: str):
    import boto3  # the emulator's venv has it; this script runs under it

    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def raw_write_rates(n: int = 1000) -> tuple[float, float]:
    """The emulator's own DynamoDB ceilings: items/s by conditional PutItem
    (8 threads, as a shard reader writes) and by BatchWriteItem of 25, one
    call at a time."""
    import concurrent.futures

    ddb = boto("dynamodb")
    ddb.create_table(TableName="bench-ceiling", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    text = {"S": "x" * 600}

    def update(i: int) -> None:
        # The sink's write: the item whole, claiming its position.
        ddb.put_item(TableName="bench-ceiling", Item={"id": {"S": f"u{i}"}, "text": text, "counted": {"S": "0:1::0"}},
                     ConditionExpression="attribute_not_exists(#c) OR #c = :p",
                     ExpressionAttributeNames={"#c": "counted"}, ExpressionAttributeValues={":p": {"S": "0:1::0"}},
                     ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD")

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(update, range(n)))
    updates = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, n, 25):
        ddb.batch_write_item(RequestItems={"bench-ceiling": [
            {"PutRequest": {"Item": {"id": {"S": f"b{j}"}, "text": text}}} for j in range(i, i + 25)]})
    batches = n / (time.perf_counter() - start)
    ddb.delete_table(TableName="bench-ceiling")
    return updates, batches


def raw_get_rate(stream: str) -> float:
    """The emulator's own GetRecords ceiling: records/s reading a shard of the stream from its start."""
    kinesis = boto("kinesis")
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records, start = 0, time.perf_counter()
    while it:
        out = kinesis.get_records(ShardIterator=it, Limit=10000)
        records += len(out["Records"])
        if not out["Records"]:
            break
        it = out.get("NextShardIterator")
    return records / (time.perf_counter() - start)


def peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def bench_pipeline(tmp: Path) -> None:
    n = 20_000
    stack = stack_copy(tmp, "benchpipe", 2)
    run([BIN, "up", stack, "-e", "local", "--no-processor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    say(f"pipeline: producing {n} synthetic tweets")
    start = time.perf_counter()
    out = run([BIN, "--output", "json", "produce", stack, "-e", "local", "--synthetic", "--count", str(n)], capture_output=True)
    produce_s = time.perf_counter() - start
    p = json.loads(out.stdout.decode().splitlines()[-1])["producer"]
    row("pipeline", f"PutRecords calls per 1,000 records ({p['sent']} sent, {p['failed']} failed)", f"{p['calls'] * 1000 / p['sent']:.2f} (minimum 2)")
    row("pipeline", "producer: records/s into the emulator", f"{p['sent'] / produce_s:,.0f}")

    say("pipeline: consuming until idle")
    consumer = subprocess.Popen(
        [BIN, "--output", "json", "consume", stack, "-e", "local", "--exit-when-idle", "2", "--lease-seconds", "2",
         "--lease-interval-ms", "300", "--idle-poll-ms", "200", "--no-metrics"],
        env=AWS_ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start, peak, first_write = time.perf_counter(), 0, None
    while consumer.poll() is None:
        peak = max(peak, peak_rss_kb(consumer.pid))
        time.sleep(0.05)
    out, err = consumer.communicate()
    if consumer.returncode != 0:
        raise SystemExit(f"consume failed: {err.decode()[-2000:]}")
    m = json.loads(out.decode().splitlines()[-1])["metrics"]
    # The consumer waits out lease expiry plus 2 s of idleness before it stops: not part of the work.
    busy = time.perf_counter() - start - 2 - 2.6
    row("pipeline", f"item write calls per 1,000 items ({m['items_written']} items)", f"{m['write_calls'] * 1000 / max(m['items_written'], 1):.1f} (one PutItem a new key: 1,000)")
    row("pipeline", "consumer: stream -> DynamoDB records/s (incl. aggregates, dead letters)", f"{m['records_in'] / max(busy, 0.001):,.0f}")
    row("pipeline", "consumer: peak RSS", f"{peak / 1024:.0f} MB")
    units_row("pipeline", f"synthetic tweets ({m['records_in']} records)", m)
    rate = raw_put_rate(f"benchpipe-local-stream")
    row("pipeline", "emulator ceiling: raw PutRecords records/s (boto3, 500 a call)", f"{rate:,.0f}")
    row("pipeline", "producer vs the emulator's ceiling", f"{p['sent'] / produce_s / rate:.0%}")

    say("pipeline: SIGTERM handover")
    producer = subprocess.Popen([BIN, "produce", stack, "-e", "local", "--synthetic", "--count", "5000", "--rate", "2000",
                                 "--first-id", "2900000000000000000"], env=AWS_ENV, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    consumer = subprocess.Popen([BIN, "consume", stack, "-e", "local", "--no-metrics", "--lease-interval-ms", "300"],
                                env=AWS_ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(3)
    start = time.perf_counter()
    consumer.terminate()
    _, err = consumer.communicate()
    handover = time.perf_counter() - start
    producer.wait()
    said = [l for l in err.decode().splitlines() if "shut down in" in l]
    row("pipeline", "SIGTERM to exit: batch stored, checkpointed, leases released", f"{handover * 1000:.0f} ms ({said[-1].split('shut down in ')[1].split(' ')[0] if said else '?'} ms by the consumer)")
    run([BIN, "down", stack, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def units_row(section: str, what: str, m: dict) -> None:
    """DynamoDB write units per 1,000 records, split by what was written
    (the processor computes them from item sizes by DynamoDB's rules)."""
    per = lambda k: m[f"write_units_{k}"] * 1000 / max(m["records_in"], 1)
    total = per("items") + per("aggregates") + per("checkpoints")
    row(section, f"write units per 1,000 records, {what}: items, aggregates, checkpoints (total)",
        f"{per('items'):,.0f}, {per('aggregates'):,.0f}, {per('checkpoints'):,.1f} ({total:,.0f}); "
        f"aggregates/items {per('aggregates') / max(per('items'), 1e-9):.1f}x")


def bench_units(tmp: Path) -> None:
    """Write units on the bundled sample tweets (data/tweets-v2.jsonl), one shard."""
    stack = stack_copy(tmp, "benchunits", 1)
    run([BIN, "up", stack, "-e", "local", "--no-processor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run([BIN, "produce", stack, "-e", "local", "--replay", "data/tweets-v2.jsonl"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = run([BIN, "--output", "json", "consume", stack, "-e", "local", "--exit-when-idle", "2", "--lease-seconds", "2",
                   "--lease-interval-ms", "300", "--idle-poll-ms", "200", "--no-metrics"], capture_output=True)
        m = json.loads(out.stdout.decode().splitlines()[-1])["metrics"]
        units_row("units", f"the sample tweets ({m['records_in']} records, {m['tweets_stored']} tweets)", m)
    finally:
        run([BIN, "down", stack, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_latency(tmp: Path) -> None:
    """End-to-end latency at a steady rate on 2 shards for about 60 s: from
    each record's arrival in the stream (Kinesis stamps it when it accepts
    the record, just before the PutRecords reply) to its items stored, as
    the consumer measures it; with its CPU time and peak RSS. At the issue's
    500 records/s, and at 100 records/s, under the emulator's PutItem
    ceiling, with a shorter poll."""
    # BENCH_LATENCY_RATES=100 runs only the second (each run is a minute of records).
    wanted = {int(r) for r in os.environ.get("BENCH_LATENCY_RATES", "500,100").split(",")}
    for rate, poll_ms in ((500, 1000), (100, 500)):
        if rate not in wanted:
            continue
        stack = stack_copy(tmp, f"benchlat{rate}", 2)
        run([BIN, "up", stack, "-e", "local", "--no-processor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            consumer = subprocess.Popen(
                # Idle for 10 s, not 3: the consumer counts idleness from its start, and
                # the producer's first record may come later than the 3 s slept below.
                [BIN, "--output", "json", "consume", stack, "-e", "local", "--exit-when-idle", "10", "--lease-seconds", "2",
                 "--lease-interval-ms", "300", "--idle-poll-ms", str(poll_ms), "--no-metrics"],
                env=AWS_ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(3)  # the consumer holds its leases before the first record
            count = rate * 60
            say(f"latency: {count:,} synthetic tweets at {rate} records/s")
            run([BIN, "produce", stack, "-e", "local", "--synthetic", "--count", str(count), "--rate", str(rate),
                 "--first-id", str(3100000000000000000 + rate * 1_000_000)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out = consumer.stdout.read()
            _, status, usage = os.wait4(consumer.pid, 0)
            if status != 0:
                raise SystemExit("bench: the latency consumer failed")
            if not json.loads(out.decode().splitlines()[-1])["metrics"]["records_in"]:
                raise SystemExit("bench: the latency consumer read nothing (it went idle before the producer began)")
            m = json.loads(out.decode().splitlines()[-1])["metrics"]
            row("latency", f"end to end, {rate} records/s on 2 shards, reader poll {poll_ms} ms ({m['records_in']} records): p50, p95, p99, max",
                f"{m['latency_ms_p50']:,} ms, {m['latency_ms_p95']:,} ms, {m['latency_ms_p99']:,} ms, {m['latency_ms_max']:,} ms")
            cpu = usage.ru_utime + usage.ru_stime
            row("latency", f"consumer at {rate} records/s: CPU seconds per 1,000 records, peak RSS",
                f"{cpu * 1000 / max(m['records_in'], 1):.3f} s, {usage.ru_maxrss / 1024:.0f} MB")
            units_row("latency", f"synthetic tweets at {rate} records/s", m)
        finally:
            run([BIN, "down", stack, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drain(stack: str, workers: int) -> tuple[float, int, int]:
    """Starts `workers` consumers on a stream holding unread tweets and waits
    until they stop, idle. Returns the seconds spent reading (their run
    minus the 2 s of idleness they wait out before stopping), the records
    read and the tweets stored."""
    procs = [subprocess.Popen(
        [BIN, "--output", "json", "consume", stack, "-e", "local", "--exit-when-idle", "2", "--lease-seconds", "2",
         "--lease-interval-ms", "300", "--idle-poll-ms", "200", "--no-metrics"],
        env=AWS_ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(workers)]
    start = time.perf_counter()
    records = stored = 0
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"consume failed: {err.decode()[-2000:]}")
        m = json.loads(out.decode().splitlines()[-1])["metrics"]
        records += m["records_in"]
        stored += m["tweets_stored"]
    return max(time.perf_counter() - start - 2.0, 0.001), records, stored


def bench_scale(tmp: Path) -> None:
    n = 6000
    updates, batches = raw_write_rates()
    row("scale", "emulator ceiling: DynamoDB items/s by conditional PutItem (8 in flight) and by BatchWriteItem of 25",
        f"{updates:,.0f} and {batches:,.0f}")
    for shards in (1, 2, 4, 8):
        stack = stack_copy(tmp, f"benchscale{shards}", shards)
        run([BIN, "up", stack, "-e", "local", "--no-processor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for workers in (1, 2):
            first = 3_000_000_000_000_000_000 + shards * 100_000_000 + workers * 1_000_000
            run([BIN, "produce", stack, "-e", "local", "--synthetic", "--count", str(n), "--first-id", str(first)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if workers == 1:
                gets = raw_get_rate(f"benchscale{shards}-local-stream")
                row("scale", f"emulator ceiling: GetRecords records/s ({shards} shard(s), one shard read from its start)", f"{gets:,.0f}")
            say(f"scale: {shards} shard(s), {workers} consumer(s)")
            seconds, records, stored = drain(stack, workers)
            rate = records / seconds
            # Every record is one item write; the binding limit is the
            # emulator's slowest call on the path, as a share of its ceiling.
            binds = ("the emulator's PutItem rate" if rate >= 0.6 * updates
                     else "the emulator's one core, shared by the puts with reads, commits and lease renewals")
            # The emulator reports no MillisBehindLatest: the time to drain a standing backlog is the lag measure.
            row("scale", f"{shards} shard(s), {workers} consumer process(es): a backlog of {n:,} tweets",
                f"{rate:,.0f} records/s ({rate / updates:.0%} of the PutItem ceiling; binds: {binds}), drained in {seconds:.1f} s ({stored:,} stored)")
        run([BIN, "down", stack, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_steady_memory(tmp: Path) -> None:
    """Peak RSS of a consumer keeping up with a steady rate (the emulator's
    DynamoDB, about 5,600 items/s, caps what it can sustain below 5,000 tweets/s)."""
    rate, seconds = 1000, 20
    stack = stack_copy(tmp, "benchsteady", 2)
    run([BIN, "up", stack, "-e", "local", "--no-processor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    consumer = subprocess.Popen([BIN, "consume", stack, "-e", "local", "--no-metrics", "--lease-interval-ms", "300"],
                                env=AWS_ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    producer = subprocess.Popen([BIN, "produce", stack, "-e", "local", "--synthetic", "--count", str(rate * seconds),
                                 "--rate", str(rate), "--first-id", "4000000000000000000"],
                                env=AWS_ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while producer.poll() is None:
        peak = max(peak, peak_rss_kb(consumer.pid))
        time.sleep(0.1)
    time.sleep(3)
    peak = max(peak, peak_rss_kb(consumer.pid))
    consumer.terminate()
    consumer.wait()
    row("memory", f"consumer peak RSS at a steady {rate:,} records/s for {seconds} s", f"{peak / 1024:.0f} MB")
    run([BIN, "down", stack, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_lifecycle(tmp: Path) -> None:
    aws = shutil.which("aws") or str(REPO / ".venv/emulator/bin/aws")
    if not Path(aws).exists():
        say("installing awscli into .venv/emulator (for the comparison)")
        subprocess.run([str(REPO / ".venv/emulator/bin/python"), "-m", "pip", "install", "--quiet", "awscli==1.45.11"], check=True)
    stack = stack_copy(tmp, "benchup", 2)
    run([BIN, "up", stack, "-e", "local", "--no-processor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours = timed([BIN, "up", stack, "-e", "local", "--no-processor"], 5)
    # The same template for a stack of another name (resource names derive
    # from it, so the two stacks do not collide), deployed by the AWS CLI.
    twin = stack_copy(tmp, "benchcli", 2)
    template = tmp / "benchcli.json"
    run([BIN, "synth", twin, "-e", "local", "-o", str(template)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Compact, as `up` sends it: the indented file passes the 51,200 bytes
    # the CLI takes inline (since issue 15's alarms), the body does not.
    template.write_text(json.dumps(json.loads(template.read_text()), separators=(",", ":")))
    deploy = [aws, "cloudformation", "deploy", "--stack-name", "benchcli-local", "--template-file", str(template),
              "--capabilities", "CAPABILITY_NAMED_IAM", "--no-fail-on-empty-changeset"]
    run(deploy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs = timed(deploy, 5)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    row("lifecycle", "`up` on an unchanged stack (median of 5)", f"{mo * 1000:.0f} ms")
    row("lifecycle", "`aws cloudformation deploy`, same template, no changes", f"{mt * 1000:.0f} ms")
    row("lifecycle", "streamstack minus the AWS CLI (budget: one 2 s poll)", f"{(mo - mt) * 1000:+.0f} ms")
    run([BIN, "down", stack, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run([BIN, "down", twin, "-e", "local", "--delete-data"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_offline() -> None:
    for args in (["validate", "stacks/tweets.yaml"], ["synth", "stacks/tweets.yaml", "--env", "prod"]):
        times = sorted(timed([BIN, *args], 30))
        row("offline", f"`{' '.join(args)}` whole process (median / p95 of 30)",
            f"{statistics.median(times) * 1000:.0f} / {times[int(len(times) * 0.95) - 1] * 1000:.0f} ms")


def main() -> None:
    sections = sys.argv[1:] or ["transform", "units", "latency", "pipeline", "memory", "scale", "lifecycle", "offline"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    print(f"streamstack bench: {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, commit {commit}, {Path(BIN).name} build")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "transform" in sections:
            bench_transform(tmp)
        if {"units", "latency", "pipeline", "memory", "scale", "lifecycle"} & set(sections):
            emulator("start")
            try:
                if "units" in sections:
                    bench_units(tmp)
                if "latency" in sections:
                    bench_latency(tmp)
                if "pipeline" in sections:
                    bench_pipeline(tmp)
                if "memory" in sections:
                    bench_steady_memory(tmp)
                if "scale" in sections:
                    bench_scale(tmp)
                if "lifecycle" in sections:
                    bench_lifecycle(tmp)
            finally:
                emulator("stop")
        if "offline" in sections:
            bench_offline()
    out = REPO / "bench/results.md"
    lines = [
        "# streamstack benchmark results",
        "",
        f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}.  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Commit: {commit}. Build: the dev profile "
        "(streamstack and serde_json optimized, see Cargo.toml). Produced by `make bench`.",
        "",
        "| section | measure | figure |",
        "|---|---|---|",
        *[f"| {s} | {m} | {f} |" for s, m, f in rows],
        "",
    ]
    out.write_text("\n".join(lines))
    say(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
