#!/usr/bin/env bash
# cargo-deny over the dependency tree (rules in deny.toml): licences, bans
# and sources always; then the RustSec advisories (vulnerabilities, yanked
# versions), which need the advisory database from github.com.
#
# A pinned cargo-deny is installed into .tools/ (ignored by git) when it is
# missing, so a fresh machine needs only the Rust toolchain; the install
# compiles it once (about 3 minutes on two cores).
#
# When the advisory database cannot be fetched (no route to github.com), the
# advisories are NOT checked: the script says so in one loud line and does
# not fail. When it can, an advisory finding fails the run like any other.
set -euo pipefail

cd "$(dirname "$0")/.."
version="0.20.2"
root=".tools"
deny="$root/bin/cargo-deny"

if [[ "$("$deny" --version 2>/dev/null)" != "cargo-deny $version" ]]; then
  echo "==> installing cargo-deny $version into $root/ (once; it compiles for a few minutes)"
  started=$SECONDS
  cargo install --locked --quiet --root "$root" "cargo-deny@$version"
  echo "==> cargo-deny $version installed in $((SECONDS - started)) s"
fi

echo "==> cargo deny: licences, bans, sources"
"$deny" --locked check --hide-inclusion-graph licenses bans sources

echo "==> cargo deny: advisories"
if fetched="$(timeout 300 "$deny" fetch db 2>&1)"; then
  "$deny" --locked check --hide-inclusion-graph advisories
else
  reason="$(grep -m 1 -E 'fatal:|error' <<<"$fetched" || true)"
  reason="${reason:-$(tail -n 1 <<<"$fetched")}"
  reason="${reason#*] }"
  echo "!!! cargo deny: ADVISORIES NOT CHECKED (vulnerabilities, yanked crates): the RustSec database could not be fetched from github.com: ${reason}" >&2
fi
