#!/usr/bin/env python3
"""A fault-injecting HTTP proxy between an AWS SDK client and an AWS endpoint.

The emulator never throttles, never times out and never drops a connection;
real AWS does all three. Put this proxy in front of it (AWS_ENDPOINT_URL=the
proxy) and a set share of calls fails the way AWS fails, chosen by a seeded
random generator so a run can be repeated:

  throttle    the service's throttling error, nothing done
              (Kinesis ProvisionedThroughputExceededException, or
              LimitExceededException for its control calls; DynamoDB
              ProvisionedThroughputExceededException / ThrottlingException;
              S3 503 SlowDown; CloudWatch and the other query services
              Throttling)
  partial     PutRecords: some entries fail with
              ProvisionedThroughputExceededException and are not stored;
              BatchWriteItem: some items come back as UnprocessedItems and
              are not written (only for those two calls)
  error       HTTP 500 or 503 with the service's error body, nothing done
  lost-reply  the call is done upstream, then the reply is an HTTP 500:
              the client cannot know it worked and retries it
  slow        the call is done upstream, the reply comes --slow-seconds
              later (set it past the client's timeout)
  reset       the request is read, then the connection is reset (TCP RST),
              nothing done
  expired     GetRecords: ExpiredIteratorException, as Kinesis answers an
              iterator used more than five minutes after it was made
              (only for that call)

Only the standard library is used, so it runs with any python3. It prints
`fault-proxy: listening on http://HOST:PORT` once ready, and on SIGTERM or
SIGINT writes its counts (calls and faults per service call and kind) to
--stats-file as JSON. GET /__fault_proxy/stats returns the same counts;
POST /__fault_proxy/rate with a number as the body sets the fault rate from
then on (a test holds a call back, then lets it through).

--calls limits the faults to named calls (service.Operation, as the counts
name them: dynamodb.BatchWriteItem), --services to whole services.

  python3 scripts/fault_proxy.py --upstream http://127.0.0.1:4566 --rate 0.05 --seed 7
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("throttle", "partial", "error", "lost-reply", "slow", "reset", "expired")
# Calls that may have only some of their entries fail.
PARTIAL_CALLS = {"kinesis.PutRecords", "dynamodb.BatchWriteItem"}
# Calls that take a shard iterator, which expires five minutes after it was made.
ITERATOR_CALLS = {"kinesis.GetRecords"}
# Kinesis control-plane calls throttle with LimitExceededException.
KINESIS_LIMIT_CALLS = {
    "ListShards",
    "DescribeStream",
    "DescribeStreamSummary",
    "ListStreams",
    "DescribeStreamConsumer",
}
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


class Faults:
    """Decides the fate of each call (seeded) and counts what it did."""

    def __init__(
        self,
        rate: float,
        seed: int,
        kinds: tuple[str, ...],
        only: set[str] | None,
        only_calls: set[str] | None = None,
    ):
        self.rate = rate
        self.kinds = kinds
        self.only = only
        self.only_calls = only_calls
        self.seed = seed
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.faults: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def decide(self, call: str) -> tuple[str | None, random.Random]:
        """The fault for this call (None: none), and the generator for its details.

        The n-th request of each call (`dynamodb.PutItem`) gets a generator of
        its own, seeded from the seed, the call and n: what happens to it does
        not depend on how concurrent requests, of this call or others,
        interleave, so the same seed gives each call the same faults however
        many calls of other kinds come between. (Seeded by the n-th request
        of any kind, a call made 63 times at a 5% rate went without a fault
        about one run in 25, 0.95^63: whether it met one depended on timing.)
        """
        with self.lock:
            n = self.calls[call]
            self.calls[call] += 1
        rng = random.Random(f"{self.seed}:{call}:{n}")
        if self.only is not None and call.split(".", 1)[0] not in self.only:
            return None, rng
        if self.only_calls is not None and call not in self.only_calls:
            return None, rng
        if rng.random() >= self.rate:
            return None, rng
        kinds = [
            k
            for k in self.kinds
            if (k != "partial" or call in PARTIAL_CALLS) and (k != "expired" or call in ITERATOR_CALLS)
        ]
        kind = rng.choice(kinds) if kinds else None
        if kind is not None:
            with self.lock:
                self.faults[call][kind] += 1
        return kind, rng

    @staticmethod
    def share(rng: random.Random, n: int) -> list[int]:
        """Indices of the entries of a partial failure: at least one, not all when n > 1."""
        failed = [i for i in range(n) if rng.random() < 0.3]
        if not failed:
            failed = [rng.randrange(n)]
        if len(failed) == n and n > 1:
            failed.pop(rng.randrange(len(failed)))
        return failed

    def stats(self) -> dict:
        with self.lock:
            by_kind: Counter[str] = Counter()
            for kinds in self.faults.values():
                by_kind.update(kinds)
            return {
                "rate": self.rate,
                "calls": dict(sorted(self.calls.items())),
                "total_calls": sum(self.calls.values()),
                "faults": {c: dict(sorted(k.items())) for c, k in sorted(self.faults.items())},
                "faults_by_kind": dict(sorted(by_kind.items())),
                "total_faults": sum(by_kind.values()),
            }


def call_name(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[str, str, str]:
    """(service, operation, protocol) of a request, from its SigV4 scope and target."""
    target = handler.headers.get("X-Amz-Target", "")
    match = SCOPE.search(handler.headers.get("Authorization", ""))
    service = match.group(1) if match else "unknown"
    if target:
        return service, target.rsplit(".", 1)[-1], "json"
    if service == "s3":
        return service, handler.command, "rest-xml"
    ctype = handler.headers.get("Content-Type", "")
    if "x-www-form-urlencoded" in ctype:
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        return service, action, "query"
    return service, handler.command, "rest-xml"


def error_body(protocol: str, service: str, code: str, message: str) -> tuple[str, bytes]:
    if protocol == "json":
        ctype = "application/x-amz-json-1.0" if service == "dynamodb" else "application/x-amz-json-1.1"
        return ctype, json.dumps({"__type": code, "message": message}).encode()
    if protocol == "query":
        kind = "Receiver" if code in ("InternalFailure", "ServiceUnavailable") else "Sender"
        xml = (
            "<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>"
            "<RequestId>fault-proxy</RequestId></ErrorResponse>" % (kind, code, message)
        )
        return "text/xml", xml.encode()
    xml = "<Error><Code>%s</Code><Message>%s</Message><RequestId>fault-proxy</RequestId></Error>" % (
        code,
        message,
    )
    return "application/xml", xml.encode()


def throttle_error(service: str, operation: str, protocol: str, rng_pick: int) -> tuple[int, str, str]:
    if service == "kinesis":
        if operation in KINESIS_LIMIT_CALLS:
            return 400, "LimitExceededException", "Rate exceeded for stream"
        return 400, "ProvisionedThroughputExceededException", "Rate exceeded for shard"
    if service == "dynamodb":
        if rng_pick % 2:
            return 400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."
        return 400, "ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded."
    if service == "s3":
        return 503, "SlowDown", "Please reduce your request rate."
    return 400, "Throttling", "Rate exceeded"


def server_error(service: str, protocol: str, rng_pick: int) -> tuple[int, str, str]:
    if rng_pick % 2:
        return 503, "ServiceUnavailable", "Service is unavailable"
    if service == "dynamodb":
        return 500, "InternalServerError", "Internal server error"
    if service == "s3":
        return 500, "InternalError", "We encountered an internal error. Please try again."
    return 500, "InternalFailure", "Internal failure"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Proxy"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def upstream(self) -> http.client.HTTPConnection:
        conn = getattr(self, "_upstream", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=300)
            self._upstream = conn
        return conn

    def forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in (1, 2):
            conn = self.upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        length_sent = False
        for k, v in headers:
            lk = k.lower()
            if lk == "content-length" and self.command == "HEAD":
                self.send_header(k, v)
                length_sent = True
            elif lk not in HOP_BY_HOP and lk not in ("date", "server"):
                self.send_header(k, v)
        if not length_sent:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def reply_error(self, status: int, protocol: str, service: str, code: str, message: str) -> None:
        ctype, data = error_body(protocol, service, code, message)
        headers = [("Content-Type", ctype), ("x-amzn-RequestId", "fault-proxy")]
        if protocol == "json":
            headers.append(("x-amzn-ErrorType", code))
        self.reply(status, headers, data)

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass  # the connection was reset on purpose, or the client gave up

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, ValueError):
            self.close_connection = True

    def reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def handle_any(self) -> None:
        body = self.read_body()
        if self.path == "/__fault_proxy/stats":
            self.reply(200, [("Content-Type", "application/json")], json.dumps(self.server.faults.stats()).encode())
            return
        if self.path == "/__fault_proxy/rate" and self.command == "POST":
            try:
                rate = float(body.decode().strip())
            except ValueError:
                self.reply(400, [("Content-Type", "text/plain")], b"the body must be a number from 0 to 1")
                return
            with self.server.faults.lock:
                self.server.faults.rate = rate
            self.reply(200, [("Content-Type", "application/json")], b"{}")
            return
        service, operation, protocol = call_name(self, body)
        call = f"{service}.{operation}"
        faults = self.server.faults
        kind, rng = faults.decide(call)
        pick = rng.randrange(1 << 30)
        if kind is None:
            self.reply(*self.forward(body))
        elif kind == "throttle":
            status, code, message = throttle_error(service, operation, protocol, pick)
            self.reply_error(status, protocol, service, code, message)
        elif kind == "error":
            status, code, message = server_error(service, protocol, pick)
            self.reply_error(status, protocol, service, code, message)
        elif kind == "lost-reply":
            self.forward(body)
            self.reply_error(500, protocol, service, *server_error(service, protocol, 0)[1:])
        elif kind == "slow":
            answer = self.forward(body)
            time.sleep(self.server.slow_seconds)
            try:
                self.reply(*answer)
            except OSError:
                self.close_connection = True  # the client gave up, as it should
        elif kind == "reset":
            self.reset()
        elif kind == "expired":
            self.reply_error(400, protocol, service, "ExpiredIteratorException",
                             "Iterator expired. The iterator was created at time Thu Dec 03 10:00:00 UTC 2026 "
                             "while right now it is Thu Dec 03 10:05:01 UTC 2026 which is further in the future "
                             "than the tolerated delay of 300000 milliseconds.")
        elif call == "kinesis.PutRecords":
            self.partial_put_records(body, rng)
        else:
            self.partial_batch_write(body, rng)

    def partial_put_records(self, body: bytes, rng: random.Random) -> None:
        request = json.loads(body)
        records = request["Records"]
        failed = set(Faults.share(rng, len(records)))
        request["Records"] = [r for i, r in enumerate(records) if i not in failed]
        status, headers, data = self.forward(json.dumps(request).encode())
        if status != 200:
            self.reply(status, headers, data)
            return
        stored = iter(json.loads(data)["Records"])
        out = []
        for i in range(len(records)):
            if i in failed:
                out.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard (fault-proxy)",
                    }
                )
            else:
                out.append(next(stored))
        answer = {"FailedRecordCount": sum(1 for r in out if "ErrorCode" in r), "Records": out}
        self.reply(200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode())

    def partial_batch_write(self, body: bytes, rng: random.Random) -> None:
        request = json.loads(body)
        flat = [(table, w) for table, writes in request["RequestItems"].items() for w in writes]
        held = set(Faults.share(rng, len(flat)))
        kept: dict[str, list] = {}
        unprocessed: dict[str, list] = {}
        for i, (table, write) in enumerate(flat):
            (unprocessed if i in held else kept).setdefault(table, []).append(write)
        request["RequestItems"] = kept
        status, headers, data = self.forward(json.dumps(request).encode())
        if status != 200:
            self.reply(status, headers, data)
            return
        answer = json.loads(data)
        for table, writes in (answer.get("UnprocessedItems") or {}).items():
            unprocessed.setdefault(table, []).extend(writes)
        answer["UnprocessedItems"] = unprocessed
        self.reply(200, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(answer).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


class Proxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], upstream: str, faults: Faults, slow_seconds: float):
        super().__init__(listen, Handler)
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.faults = faults
        self.slow_seconds = slow_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="the endpoint to forward to, e.g. http://127.0.0.1:4566")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free port)")
    parser.add_argument("--rate", type=float, default=0.05, help="share of calls that fail (0 to 1)")
    parser.add_argument("--seed", type=int, default=1)
    # "expired" only when named: the SDK does not retry it (the reader makes a new iterator).
    parser.add_argument("--kinds", default=",".join(k for k in KINDS if k != "expired"),
                        help="comma-separated fault kinds (default: all but expired)")
    parser.add_argument("--services", help="comma-separated SigV4 service names to fault (default: all)")
    parser.add_argument("--calls", help="comma-separated calls to fault, e.g. dynamodb.BatchWriteItem (default: all)")
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--stats-file", help="where to write the counts on SIGTERM/SIGINT")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
    host, _, port = args.listen.rpartition(":")
    only = set(args.services.split(",")) if args.services else None
    only_calls = set(args.calls.split(",")) if args.calls else None
    faults = Faults(args.rate, args.seed, kinds, only, only_calls)
    server = Proxy((host or "127.0.0.1", int(port)), args.upstream, faults, args.slow_seconds)

    def stop(_signum, _frame):
        if args.stats_file:
            with open(args.stats_file, "w") as f:
                json.dump(faults.stats(), f, indent=2)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"fault-proxy: listening on http://{server.server_address[0]}:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
