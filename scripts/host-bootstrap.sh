#!/bin/bash
# Processor host bootstrap: run as EC2 user data at first boot, and again by
# `streamstack up` through SSM Run Command whenever it ships a new binary or
# stack file (no instance replacement, no SSH).
#
# The template prepends the configuration as STREAMSTACK_* variables (stack,
# region, artifacts bucket). `streamstack up` uploads the processor binary
# under its content hash and writes a pointer, `processor/current`, to the
# artifacts bucket:
#
#   key=processor/<sha256>/streamstack
#   sha256=<sha256 of the binary>
#   stack_key=processor/stacks/<sha256 of the stack file>.yaml
#   env=<environment, may be empty>
#
# This script reads the pointer, downloads the binary and the stack file,
# checks the binary's hash (a mismatch or a missing object stops it, loudly,
# before anything is replaced), runs the new binary's `--version` (one that
# does not run on this host is not installed, and the script fails), installs
# both, and installs the processor as a systemd service that restarts on
# failure and logs to the journal. Before the first `up` has shipped a binary
# there is no pointer: the script says so and exits 0 (`up` runs it again
# once it has shipped). The host role may read objects but not list the
# bucket, and without s3:ListBucket S3 answers a missing key with 403, not
# 404: at first boot a 403 on the pointer is that same "not shipped yet".
# (`up` then checks what each host runs, so a 403 for any other reason does
# not pass unnoticed.)
#
# PREFIX installs under a temporary root (tests); without systemctl the unit
# is written but not started.
set -euo pipefail

PREFIX="${PREFIX:-}"
: "${STREAMSTACK_STACK:?}" "${STREAMSTACK_REGION:?}" "${STREAMSTACK_ARTIFACT_BUCKET:?}"
config_dir="$PREFIX/etc/streamstack"
unit_dir="$PREFIX/etc/systemd/system"
bin_dir="$PREFIX/usr/local/bin"
bin="/usr/local/bin/streamstack"
export AWS_REGION="$STREAMSTACK_REGION" AWS_DEFAULT_REGION="$STREAMSTACK_REGION"

say() { echo "streamstack-bootstrap: $*"; }
die() { echo "streamstack-bootstrap: error: $*" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pointer="s3://$STREAMSTACK_ARTIFACT_BUCKET/processor/current"
if ! aws s3 cp --only-show-errors "$pointer" "$work/current" 2>"$work/err"; then
  if grep -qE '404|Not Found|NoSuchKey|does not exist' "$work/err"; then
    say "no processor shipped yet ($pointer is missing); the next 'streamstack up' ships it"
    exit 0
  fi
  if grep -qE '\(403\)|Forbidden|AccessDenied' "$work/err"; then
    say "no processor shipped yet ($pointer is not readable: 403, which is how S3 answers a missing key to a role without s3:ListBucket); the next 'streamstack up' ships it"
    exit 0
  fi
  die "reading $pointer: $(cat "$work/err")"
fi
field() { sed -n "s/^$1=//p" "$work/current" | head -n 1; }
key="$(field key)"
sha="$(field sha256)"
stack_key="$(field stack_key)"
env="$(field env)"
[[ -n "$key" && "$sha" =~ ^[0-9a-f]{64}$ && -n "$stack_key" ]] || die "malformed pointer $pointer"

aws s3 cp --only-show-errors "s3://$STREAMSTACK_ARTIFACT_BUCKET/$key" "$work/streamstack" \
  || die "downloading s3://$STREAMSTACK_ARTIFACT_BUCKET/$key failed"
got="$(sha256sum "$work/streamstack" | cut -d' ' -f1)"
[[ "$got" == "$sha" ]] || die "s3://$STREAMSTACK_ARTIFACT_BUCKET/$key has sha256 $got, the pointer says $sha: not installed"
aws s3 cp --only-show-errors "s3://$STREAMSTACK_ARTIFACT_BUCKET/$stack_key" "$work/stack.yaml" \
  || die "downloading s3://$STREAMSTACK_ARTIFACT_BUCKET/$stack_key failed"

# The new binary must run here (architecture, libc) before it replaces the
# one that does: a binary that cannot start would leave the service
# crash-looping. The running service is left as it is.
chmod 0755 "$work/streamstack"
if ! version="$(timeout 30 "$work/streamstack" --version 2>&1)"; then
  die "the new binary ${sha:0:12} does not run on this host ($(uname -m), $(ldd --version 2>/dev/null | head -n 1)): ${version:-no output}: not installed"
fi
say "new binary runs: $version"

mkdir -p "$config_dir" "$unit_dir" "$bin_dir"
# Replace atomically: a running service keeps its old binary until restarted.
install -m 0755 "$work/streamstack" "$bin_dir/streamstack.new"
mv -f "$bin_dir/streamstack.new" "$bin_dir/streamstack"
install -m 0644 "$work/stack.yaml" "$config_dir/stack.yaml"
{
  echo "AWS_REGION=$STREAMSTACK_REGION"
  echo "STREAMSTACK_STACK=$STREAMSTACK_STACK"
} > "$config_dir/streamstack.env"
chmod 0644 "$config_dir/streamstack.env"

env_args=""
[[ -n "$env" ]] && env_args=" --env $env"
cat > "$unit_dir/streamstack.service" <<UNIT
[Unit]
Description=streamstack ingestion processor (${STREAMSTACK_STACK})
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile=/etc/streamstack/streamstack.env
ExecStart=${bin} consume /etc/streamstack/stack.yaml${env_args}
Restart=always
RestartSec=5
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
# SIGTERM: the processor stores its slice, checkpoints and releases its leases within seconds.
KillSignal=SIGTERM
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
UNIT
say "installed streamstack ${sha:0:12} for stack $STREAMSTACK_STACK${env:+ (environment $env)}"

if [ -z "$PREFIX" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable streamstack.service
  systemctl restart streamstack.service
  say "streamstack.service restarted"
fi
