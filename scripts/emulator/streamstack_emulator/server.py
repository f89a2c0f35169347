"""Run moto's server with the streamstack extensions applied.

The same WSGI application ``moto_server`` and ``ThreadedMotoServer`` use
(``DomainDispatcherApplication(create_backend_app)``), served by werkzeug's
threaded server in the foreground, plus the Firehose delivery thread.

    python -m streamstack_emulator [--host 127.0.0.1] [--port 4566] [--port-file F] [--quiet]

``--port 0`` binds a free port; ``--port-file`` receives the bound port once
the server accepts connections (used by the tests). SIGTERM/SIGINT stop it.
On a moto other than the one the extensions were written for it refuses to
start (exit 1, the reason on stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from . import MOTO_VERSION, UnsupportedMotoVersion, apply_all

log = logging.getLogger("streamstack_emulator")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="streamstack_emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("STREAMSTACK_EMULATOR_PORT", "4566")),
        help="port (default $STREAMSTACK_EMULATOR_PORT or 4566; 0 = any free port)",
    )
    parser.add_argument("--port-file", help="write the bound port to this file when ready")
    parser.add_argument(
        "--tick",
        type=float,
        default=float(os.environ.get("STREAMSTACK_EMULATOR_FIREHOSE_TICK", "0.5")),
        help="seconds between Firehose delivery passes (default 0.5)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log every request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    try:
        delivery = apply_all(start_delivery=True, tick=args.tick)
    except UnsupportedMotoVersion as exc:
        sys.exit(f"streamstack emulator: refusing to start: {exc}")
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(args.host, args.port, app, threaded=True)
    port = server.server_port
    # moto builds some URLs (SQS queue URLs, presigned S3 URLs) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    def shutdown(signum: int, frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        # serve_forever() runs in this thread: shut it down from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)

    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    log.info("streamstack emulator (moto %s + extensions) listening on http://%s:%d", MOTO_VERSION, args.host, port)
    try:
        server.serve_forever()
    finally:
        if delivery is not None:
            delivery.stop()  # type: ignore[attr-defined]
        server.server_close()
        log.info("stopped")


if __name__ == "__main__":
    main()
