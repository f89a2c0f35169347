#!/usr/bin/env bash
# Installs the checkers (cfn-lint, checkov, shellcheck) into a venv of the
# project, pinned, and runs them on synthesized templates and on the scripts.
#
#   scripts/checkers.sh install        create/refresh .venv/checkers when the pins changed
#   scripts/checkers.sh run DIR        cfn-lint and checkov on every *.json in DIR
#   scripts/checkers.sh shell          shellcheck on scripts/*.sh (the host bootstrap among them)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv/checkers"
requirements="$repo/scripts/requirements-checkers.txt"
stamp="$venv/.requirements.sha256"

install() {
  local want
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/checkov" ] && [ -x "$venv/bin/shellcheck" ] \
    && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "checkers: installing cfn-lint, checkov and shellcheck into .venv/checkers (first run takes a minute or two)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
}

run() {
  local dir="$1"
  install
  shopt -s nullglob
  local templates=("$dir"/*.json)
  if [ ${#templates[@]} -eq 0 ]; then
    echo "checkers: no templates in $dir" >&2
    exit 1
  fi
  echo "checkers: cfn-lint on ${#templates[@]} template(s)"
  # Warnings count as failures too (exit codes 4 and 8 are warnings and informational).
  "$venv/bin/cfn-lint" --non-zero-exit-code informational -- "${templates[@]}"
  echo "checkers: checkov on ${#templates[@]} template(s)"
  # Offline: no Bridgecrew platform, no downloads.
  BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --quiet --compact --skip-download --framework cloudformation \
    --output cli -d "$dir"
}

shell() {
  install
  echo "checkers: shellcheck on scripts/*.sh"
  "$venv/bin/shellcheck" "$repo"/scripts/*.sh
}

case "${1:-}" in
  install) install ;;
  run) run "${2:?usage: checkers.sh run DIR}" ;;
  shell) shell ;;
  *) echo "usage: $0 install | run DIR | shell" >&2; exit 2 ;;
esac
