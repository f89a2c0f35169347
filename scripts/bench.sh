#!/usr/bin/env bash
# `make bench`: runs scripts/bench.py under the emulator's virtualenv (it
# needs boto3 for the emulator's raw PutRecords ceiling). Sections can be
# named: scripts/bench.sh transform pipeline lifecycle offline
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/emulator.sh install >/dev/null
exec .venv/emulator/bin/python scripts/bench.py "$@"
