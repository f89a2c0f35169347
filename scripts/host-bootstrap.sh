#!/bin/bash
# Processor host bootstrap, run once as EC2 user data.
#
# The template prepends the configuration as STREAMSTACK_* variables (stack,
# region, stream, tables, bucket). This script writes them to an environment
# file and installs the processor as a systemd service that restarts on
# failure and logs to the journal. The service starts once the processor
# binary is at $PREFIX/usr/local/bin/streamstack (`streamstack up` ships it).
#
# PREFIX lets tests run the script against a temporary root.
set -euo pipefail

PREFIX="${PREFIX:-}"
config_dir="$PREFIX/etc/streamstack"
unit_dir="$PREFIX/etc/systemd/system"
bin="/usr/local/bin/streamstack"

mkdir -p "$config_dir" "$unit_dir"
umask 077
{
  echo "AWS_REGION=${STREAMSTACK_REGION:?}"
  echo "STREAMSTACK_STACK=${STREAMSTACK_STACK:?}"
  echo "STREAMSTACK_STREAM=${STREAMSTACK_STREAM:?}"
  echo "STREAMSTACK_TABLE=${STREAMSTACK_TABLE:?}"
  echo "STREAMSTACK_AGGREGATES_TABLE=${STREAMSTACK_AGGREGATES_TABLE:?}"
  echo "STREAMSTACK_LEASE_TABLE=${STREAMSTACK_LEASE_TABLE:?}"
  echo "STREAMSTACK_ARCHIVE_BUCKET=${STREAMSTACK_ARCHIVE_BUCKET:?}"
  echo "STREAMSTACK_DEAD_LETTER_PREFIX=${STREAMSTACK_DEAD_LETTER_PREFIX:?}"
} > "$config_dir/streamstack.env"

umask 022
cat > "$unit_dir/streamstack.service" <<UNIT
[Unit]
Description=streamstack ingestion processor (${STREAMSTACK_STACK})
Wants=network-online.target
After=network-online.target
ConditionPathExists=${bin}

[Service]
EnvironmentFile=/etc/streamstack/streamstack.env
ExecStart=${bin} consume
Restart=always
RestartSec=5
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
# Graceful shutdown hands leases over within seconds.
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
UNIT

if [ -z "$PREFIX" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable streamstack.service
  systemctl start streamstack.service || echo "streamstack: service not started yet (no binary at ${bin})"
fi
