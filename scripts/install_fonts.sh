#!/usr/bin/env bash
# Install the Debian packages the OCR data is drawn from: the font inventory's training packages and
# the reserved evaluation families' packages, the word list and the text corpus. The lists live in
# src/seqlab/tasks/ocr/synth/fonts.py (TRAINING_PACKAGES, RESERVED_PACKAGES, EVALUATION_PACKAGES: the word list)
# and src/seqlab/tasks/ocr/synth/corpus.py (CORPUS_PACKAGES: fortunes), read here with the standard library only,
# so this runs before the venv exists and under sudo. Idempotent: does nothing when all are installed.
#   sudo scripts/install_fonts.sh        (`make fonts` runs it; `make install` runs `make fonts`)
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(python3 - <<'EOF'
import ast
import pathlib

LISTS = {"fonts.py": {"TRAINING_PACKAGES", "RESERVED_PACKAGES", "EVALUATION_PACKAGES"},
         "corpus.py": {"CORPUS_PACKAGES"}}
for module, wanted in LISTS.items():
    found = set()
    for node in ast.parse(pathlib.Path("src/seqlab/tasks/ocr/synth", module).read_text()).body:
        names = wanted & {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
        if names:
            found |= names
            print("\n".join(ast.literal_eval(node.value)))
    if found != wanted:
        raise SystemExit(f"install_fonts: src/seqlab/tasks/ocr/synth/{module} has no {', '.join(sorted(wanted - found))}")
EOF
)
[ "${#packages[@]}" -gt 0 ] || { echo "install_fonts: no package list found in fonts.py and corpus.py" >&2; exit 1; }

# One dpkg-query for all: it prints the installed ones (and complains about unknown ones on stderr).
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null | awk '$2 == "ii" {print $1}' || true)
missing=()
for package in "${packages[@]}"; do
  grep -qx "$package" <<<"$installed" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_fonts: ${#missing[@]} packages missing (${missing[*]}); run \`sudo scripts/install_fonts.sh\` on a Debian/Ubuntu machine" >&2
  exit 0  # not fatal here: the ocr-fonts and ocr-corpus stages name them again when they need them
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "install_fonts: apt-get update failed" >&2
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  failed=0
  for package in "${missing[@]}"; do  # one at a time, to name each package that fails
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1 \
      || { echo "install_fonts: could not install $package" >&2; failed=1; }
  done
  exit "$failed"
fi
