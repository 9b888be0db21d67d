#!/usr/bin/env bash
# A new user's first hour, as README.md "Quick start" promises it: a fresh clone, `make pipeline`, then
# `make test`, in that order, on this machine with its own floats (the pipeline retrains every model, so
# metrics/ may differ in the last digits from the committed ones; the results-block check compares against HEAD).
#
#   scripts/first_hour.sh [--keep] [REPO]     (REPO: what to clone, default this checkout's HEAD)
#
# Prints each step's wall time and exits with the first failing step's status. The clone goes to a temp
# directory, removed at the end unless --keep. ../shared beside the repo is linked beside the clone, as CI has it.
set -euo pipefail
keep=0
if [ "${1:-}" = "--keep" ]; then keep=1; shift; fi
src="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/seqlab-first-hour.XXXXXX")"
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; else echo "first-hour: kept $work/seqlab"; fi; }
trap cleanup EXIT
[ -d "$src/../shared" ] && ln -s "$src/../shared" "$work/shared"
step() {
  local name="$1"; shift
  local start=$SECONDS
  echo "first-hour: $name ..."
  if "$@"; then
    echo "first-hour: $name passed in $((SECONDS - start)) s"
  else
    local rc=$?
    echo "first-hour: $name FAILED (exit $rc) after $((SECONDS - start)) s" >&2
    exit "$rc"
  fi
}
step "git clone" git clone -q "$src" "$work/seqlab"
cd "$work/seqlab"
step "make pipeline" make pipeline
step "make test" make test
echo "first-hour: a fresh clone ran make pipeline, then make test: green"
