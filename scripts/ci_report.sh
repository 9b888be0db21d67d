#!/usr/bin/env bash
# Rerun the DVC pipeline and report what changed against a base ref, as Markdown.
#
#   scripts/ci_report.sh [--base REF] [--out FILE] [--] [TARGET...]
#
# 1. If a DVC remote is configured, pull the cache (missing objects are tolerated): outputs whose
#    inputs did not change are then restored instead of rerun. No remote is fine: stages whose
#    outputs are missing simply rerun.
# 2. `dvc repro [TARGET...]`: only stages whose deps, params or outputs changed run.
# 3. Write a report (stages that ran / came from the run-cache / were unchanged, `dvc params diff`
#    and `dvc metrics diff` against REF) to FILE and, when set, to $GITHUB_STEP_SUMMARY.
#
# REF defaults to origin/$GITHUB_BASE_REF in a GitHub pull request, else main. Exits with dvc
# repro's status (the report is written either way). Used by .github/workflows/pipeline.yml and
# by tests/e2e/test_ci_report.py.
set -euo pipefail

base="${GITHUB_BASE_REF:+origin/$GITHUB_BASE_REF}"
base="${base:-main}"
out="dvc-report.md"
targets=()
while (($#)); do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; targets+=("$@"); break ;;
    -*) echo "ci_report: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
cd "$(git rev-parse --show-toplevel)"
if ! base_sha="$(git rev-parse --verify --quiet "$base^{commit}")"; then
  echo "ci_report: base ref '$base' not found (fetch it first, e.g. git fetch origin main)" >&2
  exit 2
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

if [ -n "$(dvc remote list 2>/dev/null)" ]; then
  echo "ci_report: pulling the DVC cache from the configured remote" >&2
  # --allow-missing: a remote that lacks some objects (e.g. never pushed) must not fail the run.
  with_deps=()
  ((${#targets[@]})) && with_deps=(--with-deps)
  dvc pull --allow-missing "${with_deps[@]}" "${targets[@]}" \
    || echo "ci_report: warning: dvc pull failed; stages whose outputs are missing will rerun" >&2
  pulled="pulled from the configured remote"
else
  echo "ci_report: no DVC remote configured; stages without local outputs will rerun" >&2
  pulled="no remote configured"
fi

set +e
dvc repro "${targets[@]}" 2>&1 | tee "$log"
repro_status=${PIPESTATUS[0]}
set -e

# dvc repro prints one line per stage: "Running stage 'x':", "Stage 'x' is cached - skipping run,
# checking out outputs" (run-cache) or "Stage 'x' didn't change, skipping".
stage_list() { grep -E "$1" "$log" | sed -E "s/^[^']*'([^']+)'.*/\`\1\`/" | sort -u | paste -sd ' ' - || true; }
ran="$(stage_list "^Running stage '")"
cached="$(stage_list "^Stage '.*' is cached")"
unchanged="$(stage_list "^Stage '.*' didn't change")"

# stdout only: warnings (e.g. a metrics file the base does not have yet) stay in the job log.
params_md="$(dvc params diff "$base" --md || true)"
metrics_md="$(dvc metrics diff "$base" --md || true)"
# With nothing changed, dvc prints an empty table (header and separator rows only).
has_rows() { [ "$(printf '%s\n' "$1" | grep -c '^|')" -gt 2 ]; }

{
  echo "## DVC pipeline: \`$(git rev-parse --short HEAD)\` vs \`$base\` (\`${base_sha:0:7}\`)"
  echo
  if [ "$repro_status" -ne 0 ]; then
    echo "**\`dvc repro\` failed (exit $repro_status).** Last lines:"
    echo
    echo '```'
    tail -n 25 "$log"
    echo '```'
    echo
  fi
  echo "| stages | |"
  echo "|---|---|"
  echo "| ran | ${ran:-none} |"
  echo "| restored from the run-cache | ${cached:-none} |"
  echo "| unchanged | ${unchanged:-none} |"
  echo
  echo "DVC remote: $pulled. Targets: ${targets[*]:-all stages}."
  echo
  echo "### Params changed vs \`$base\`"
  echo
  if has_rows "$params_md"; then echo "$params_md"; else echo "No param changes."; fi
  echo
  echo "### Metrics vs \`$base\`"
  echo
  if has_rows "$metrics_md"; then echo "$metrics_md"; else echo "No metric changes."; fi
} >"$out"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$out" >>"$GITHUB_STEP_SUMMARY"
fi
echo "ci_report: wrote $out" >&2
exit "$repro_status"
