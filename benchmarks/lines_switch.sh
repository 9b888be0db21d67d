#!/usr/bin/env bash
# The lines switch measured: the OCR stages of the CRNN with ocr.data.lines.share 0.2 and counts.train 32000,
# one after another in a scratch copy of this repository; writes metrics/lines-switch/ (README "Text lines").
#     bash benchmarks/lines_switch.sh          (~20 min on an idle 2-core machine)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/seqlab-lines-switch.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
git ls-files -co --exclude-standard | grep -v '^\(data\|models\|metrics\)/' | tar cf - -T - | tar xf - -C "$WORK"
mkdir -p "$WORK/data" && cp data/ocr-fonts.json "$WORK/data/"
cd "$WORK"
export PYTHONPATH="$WORK/src" MLFLOW_DISABLE_TELEMETRY=true PATH="$ROOT/.venv/bin:$PATH"
python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["ocr"]["data"]["lines"]["share"] = 0.2
p["ocr"]["data"]["counts"]["train"] = 32000
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
seqlab validate
: > times.txt
for step in "generate ocr" "render-reserved" "train ocr --variant crnn" "evaluate ocr --variant crnn" "tesseract"; do
  t0=$(date +%s)
  seqlab $step > /dev/null
  echo "$step $(( $(date +%s) - t0 ))s" | tee -a times.txt
done
out="$ROOT/metrics/lines-switch"
mkdir -p "$out"
cp metrics/ocr-crnn/{eval.json,train.json,history.csv,by_line_words.csv} "$out/"
cp metrics/ocr-tesseract/eval.json "$out/tesseract-eval.json"
python - "$out/run.json" <<'PY'
import json, sys
seconds = {" ".join(line.split()[:-1]): int(line.split()[-1].rstrip("s")) for line in open("times.txt")}
json.dump({"params": {"ocr.data.lines.share": 0.2, "ocr.data.counts.train": 32000}, "seconds": seconds},
          open(sys.argv[1], "w"), indent=1)
PY
