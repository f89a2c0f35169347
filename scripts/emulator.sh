#!/usr/bin/env bash
# Local AWS for streamstack: moto's server plus the streamstack extensions
# (scripts/emulator/), on 127.0.0.1. See scripts/emulator/README.md.
#
#   scripts/emulator.sh install   create .venv/emulator and install scripts/requirements-emulator.txt
#   scripts/emulator.sh start     start in the background (idempotent), wait until it answers
#   scripts/emulator.sh stop      stop it (TERM, then KILL), quiet if not running
#   scripts/emulator.sh status    exit 0 if running and answering, 1 otherwise
#   scripts/emulator.sh env       print the AWS_* settings that point a client at it
#   scripts/emulator.sh test [ARGS]  run the extension's pytest suite (own server, free port)
#
# Environment:
#   STREAMSTACK_EMULATOR_PORT           port for `start` (default 4566)
#   STREAMSTACK_EMULATOR_STATE          directory of pid, port and log (default .state/emulator)
#   STREAMSTACK_EMULATOR_PYTHON         interpreter for the venv (default python3)
#   STREAMSTACK_EMULATOR_START_TIMEOUT  seconds `start` waits for HTTP (default 30)
#   STREAMSTACK_EMULATOR_FIREHOSE_TICK  seconds between Firehose delivery passes (default 0.5)

set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
EMULATOR_DIR="$REPO/scripts/emulator"
REQUIREMENTS="$REPO/scripts/requirements-emulator.txt"
VENV="$REPO/.venv/emulator"
STAMP="$VENV/.requirements.sha256"
STATE="${STREAMSTACK_EMULATOR_STATE:-$REPO/.state/emulator}"
PID_FILE="$STATE/emulator.pid"
PORT_FILE="$STATE/emulator.port"
LOG_FILE="$STATE/emulator.log"
HOST=127.0.0.1
PYTHON="${STREAMSTACK_EMULATOR_PYTHON:-python3}"
EMULATOR_PYTHONPATH="$EMULATOR_DIR${PYTHONPATH:+:$PYTHONPATH}"

say() { printf 'emulator: %s\n' "$*"; }
die() { printf 'emulator: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"
}

requirements_hash() {
    sha256sum "$REQUIREMENTS" | cut -d' ' -f1
}

# --- install -----------------------------------------------------------------

cmd_install() {
    [[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set STREAMSTACK_EMULATOR_PYTHON)"
        say "creating virtualenv $VENV"
        rm -rf "$VENV"
        # --system-site-packages: packages already installed on the machine at
        # the pinned versions (moto is, on CI images) satisfy the pins offline.
        "$PYTHON" -m venv --system-site-packages "$VENV"
    fi
    local want
    want="$(requirements_hash)"
    if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]]; then
        say "installing $(basename "$REQUIREMENTS") into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
            || die "pip install failed"
        printf '%s\n' "$want" >"$STAMP"
    fi
}

# --- process helpers -------------------------------------------------------------

# The pid recorded by `start`, if that process is still our emulator.
running_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against pid reuse: the process must be our server.
    local args
    if [[ -r "/proc/$pid/cmdline" ]]; then
        args="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    else
        args="$(ps -o args= -p "$pid" 2>/dev/null || true)"
    fi
    [[ "$args" == *streamstack_emulator* ]] || return 1
    printf '%s\n' "$pid"
}

recorded_port() {
    local port
    port="$(cat "$PORT_FILE" 2>/dev/null || true)"
    if [[ "$port" =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$port"
    else
        printf '%s\n' "${STREAMSTACK_EMULATOR_PORT:-4566}"
    fi
}

# True if something answers HTTP on the port (moto's management API).
answers() {
    local url="http://$HOST:$1/moto-api/"
    if command -v curl >/dev/null; then
        curl --silent --fail --max-time 2 --output /dev/null "$url"
    else
        "$VENV/bin/python" - "$url" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
    fi
}

# --- start / stop / status ---------------------------------------------------

cmd_start() {
    local port="${STREAMSTACK_EMULATOR_PORT:-4566}"
    local timeout="${STREAMSTACK_EMULATOR_START_TIMEOUT:-30}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "STREAMSTACK_EMULATOR_PORT must be a number, got '$port'"
    local pid
    if pid="$(running_pid)"; then
        local running_port
        running_port="$(recorded_port)"
        if answers "$running_port"; then
            say "already running (pid $pid) on http://$HOST:$running_port"
            return 0
        fi
        say "pid $pid is not answering yet, waiting"
        port="$running_port"
    else
        rm -f "$PID_FILE" "$PORT_FILE"
        cmd_install
        if answers "$port"; then
            die "something else already answers on $HOST:$port (set STREAMSTACK_EMULATOR_PORT)"
        fi
        mkdir -p "$STATE"
        # set -m: own process group, so a Ctrl-C meant for the caller does not reach it.
        set -m
        (
            cd "$REPO"
            PYTHONPATH="$EMULATOR_PYTHONPATH" exec nohup "$VENV/bin/python" -m streamstack_emulator --host "$HOST" --port "$port" \
                >"$LOG_FILE" 2>&1 </dev/null
        ) &
        pid=$!
        set +m
        printf '%s\n' "$pid" >"$PID_FILE"
        printf '%s\n' "$port" >"$PORT_FILE"
    fi
    local deadline=$((SECONDS + timeout))
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE" "$PORT_FILE"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "the emulator exited during start-up (log: $LOG_FILE)"
        fi
        if ((SECONDS >= deadline)); then
            die "no HTTP answer on $HOST:$port after ${timeout}s (pid $pid, log: $LOG_FILE)"
        fi
        sleep 0.2
    done
    say "started (pid $pid) on http://$HOST:$port, log: ${LOG_FILE#"$REPO"/}"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE" "$PORT_FILE"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid ignored TERM for 10s, killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE" "$PORT_FILE"
    say "stopped (pid $pid)"
}

cmd_status() {
    local pid port
    port="$(recorded_port)"
    if pid="$(running_pid)" && answers "$port"; then
        say "running (pid $pid) on http://$HOST:$port"
        return 0
    fi
    say "not running"
    return 1
}

cmd_env() {
    cat <<EOF
export AWS_ENDPOINT_URL=http://$HOST:$(recorded_port)
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
EOF
}

cmd_test() {
    cmd_install
    cd "$EMULATOR_DIR"
    local rc=0
    PYTHONPATH="$EMULATOR_PYTHONPATH" "$VENV/bin/python" -m pytest -p no:cacheprovider -q tests "$@" || rc=$?
    return "$rc"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) cmd_env ;;
        test) cmd_test "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
