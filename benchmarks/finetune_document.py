"""Issue 26's fine-tuning target on a stand-in document the model never saw: CER on another page, forgetting, lines/s.

    .venv/bin/python benchmarks/finetune_document.py [--model models/ocr-crnn.pt] [--minutes 5] [--font PATH]
                                                     [--work /tmp/ftbench] [--json metrics/finetune-document.json]

We have no real scanned book to fine-tune on, so the script makes a stand-in, honestly a rendering, not a scan:

- one typeface that neither the training inventory (data/ocr-fonts.json) nor the reserved evaluation families
  (seqlab.tasks.ocr.reserved_families) hold; the script refuses a font in either. Default: Source Serif 4
  Regular, a book serif that ships with the Rust toolchain's documentation on this machine kind;
- book-like lines: consecutive passages of the TRAINING corpus (data/ocr-corpus/train.txt, Debian fortunes)
  wrapped at WRAP_CHARS characters, lines of LINE_CHARS characters kept, in pages of PAGE_LINES lines. The lines
  fine-tuned on are the first pages of one run of passages; the "other page" scored is a later run of passages
  (GAP_PASSAGES further on), so no passage is on both. The reserved text is for evaluation and is not used;
- drawn and degraded as a scanner and a line finder hand lines over, by the renderer of the reserved scan split
  (reserved_render.render_scan_split) with DOCUMENT_LOOK: one font, native heights 34-48 px, skew within
  +-0.5 degree, often a slight blur before a binarising threshold, broken strokes, specks, sometimes a fragment
  of the neighbouring line at the top or bottom edge. One `NAME.png` + `NAME.gt.txt` per line.

Then it fine-tunes as `seqlab finetune ocr --gt WORK/document --test-gt WORK/other-page --from MODEL --minutes M`
does (recognizer.finetune: prepare, the shared training loop, score; params.yaml's ocr.finetune otherwise, so the
default synthetic mix from DATA/ocr/train.npz), reads the other page with the starting model, the fine-tuned one
and Tesseract, reads the reserved synthetic splits (DATA/ocr-reserved: test_reserved, test_reserved_lines) with
both models as `seqlab evaluate` does (report.evaluate_recognizer) to see what fine-tuning forgot, prints a table
and writes every figure to --json. The fine-tune's own outputs (checkpoint, metrics/, MLflow store, resume file)
stay in --work. Same arguments, same document: everything is drawn from --seed.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFont

from seqlab.core.checkpoint import load_model
from seqlab.core.config import load_params, parse_params
from seqlab.core.errors import SeqlabError
from seqlab.core.seeding import derive_seed
from seqlab.tasks.ocr import data as ocr_data
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.documents.ground_truth import GT_SUFFIX
from seqlab.tasks.ocr.images import fit_split
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.ocr.recognizer.report import evaluate_recognizer
from seqlab.tasks.ocr.recognizer.task import OcrTask
from seqlab.tasks.ocr.reserved_families import reserved_family
from seqlab.tasks.ocr.synth.corpus import read_passages
from seqlab.tasks.ocr.synth.reserved_render import ScanLook, render_scan_split

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FONT = "~/.rustup/toolchains/*/share/doc/rust/html/static.files/SourceSerif4-Regular-*.woff2"
WRAP_CHARS = 65  # a book's measure, in characters: lines wrap at whole words before this
LINE_CHARS = (45, 65)  # lines kept (a paragraph's short last line is left out)
PAGE_LINES = 34  # lines per page, for the names only (page-01-line-07)
GAP_PASSAGES = 200  # passages between the fine-tuned pages and the other page
TEST_PAGE_AFTER = 5  # the other page's number, after the last fine-tuned page (names only)
# One scanner, one book: text size, skew, threshold and blur ranges narrower than the reserved scan split's, no
# curl (the text's size still varies ~1.5x between lines: heights and margins are drawn per line).
DOCUMENT_LOOK = ScanLook(line_height=(34, 48), margin=(0.1, 0.3), max_angle=0.5, fragment=0.15, curl=0.0, blur=0.6,
                         blur_radius=(0.3, 0.8), threshold=(0.4, 0.6), broken=0.2, broken_density=(0.005, 0.02),
                         speckle=0.4, speckle_density=(0.0002, 0.001))
FORGETTING_SPLITS = ("test_reserved", "test_reserved_lines")
HEADLINE = ("cer", "cer_nocase", "wer")


@dataclass(frozen=True)
class Document:
    """The stand-in document's lines as written: the pages fine-tuned on and the other page scored."""

    train: list[str]
    test: list[str]
    train_passages: tuple[int, int]  # [first, last) passage indexes of the corpus
    test_passages: tuple[int, int]


def wrap_passages(passages: Sequence[str], start: int, count: int, charset: Charset,
                  wrap: int = WRAP_CHARS, chars: tuple[int, int] = LINE_CHARS) -> tuple[list[str], int]:
    """`count` book lines from the passages from `start` on, each wrapped at `wrap` characters; lines outside
    `chars` characters or with characters the charset refuses are left out. Returns the lines and the index
    of the first passage not used."""
    lines: list[str] = []
    index = start
    while len(lines) < count:
        if index >= len(passages):
            raise SeqlabError(f"the corpus ran out of passages after {len(lines)} of {count} lines; "
                              "ask for fewer lines or another --seed")
        for line in textwrap.wrap(passages[index], wrap, break_long_words=False, break_on_hyphens=False):
            if chars[0] <= len(line) <= chars[1] and charset.accepts(line) and len(lines) < count:
                lines.append(line)
        index += 1
    return lines, index


def make_document(passages: Sequence[str], charset: Charset, n_train: int, n_test: int, seed: int) -> Document:
    """Fine-tuning pages from a seeded run of passages, the other page GAP_PASSAGES passages after it; a line
    of the other page that is also on a fine-tuning page (fortunes repeat a few sayings) is left out."""
    room = len(passages) - GAP_PASSAGES - 4 * (n_train + n_test)
    start = int(np.random.default_rng(derive_seed(seed, "document", "start")).integers(max(1, room)))
    train, end = wrap_passages(passages, start, n_train, charset)
    seen = set(train)
    test_start = end + GAP_PASSAGES
    test, test_end = wrap_passages(passages, test_start, n_test + n_train, charset)
    test = [line for line in test if line not in seen][:n_test]
    return Document(train, test, (start, end), (test_start, test_end))


def write_lines(folder: Path, lines: Sequence[str], font: Path, seed: int, first_page: int = 1,
                look: ScanLook = DOCUMENT_LOOK) -> list[tuple[int, int]]:
    """Each line as `page-PP-line-LL.png` (scan-like, 0 ink / 255 paper) beside its `.gt.txt`; the image sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = render_scan_split(lines, [font], seed, look=look, font_names=[font.name])
    sizes = []
    for i, (image, text) in enumerate(zip(images, lines)):
        name = f"page-{first_page + i // PAGE_LINES:02d}-line-{i % PAGE_LINES + 1:02d}"
        Image.fromarray(image).save(folder / f"{name}.png", optimize=True)
        (folder / f"{name}{GT_SUFFIX}").write_text(text + "\n", encoding="utf-8")
        sizes.append((image.shape[1], image.shape[0]))
    return sizes


def check_font(font: Path, inventory: Path) -> str:
    """The font's family name, once it is known to be neither a training font nor a reserved one."""
    family = ImageFont.truetype(str(font), 24).getname()[0] or font.stem
    fonts = json.loads(inventory.read_text(encoding="utf-8"))
    trained = {f["family"] for f in fonts["fonts"]} | {Path(f["path"]).name for f in fonts["fonts"]}
    for name in (family, font.name):
        if name in trained:
            raise SeqlabError(f"{font}: {name!r} is in the training inventory {inventory}; pick an unseen font")
        if group := reserved_family(name):
            raise SeqlabError(f"{font}: {name!r} is in the reserved evaluation family {group}; pick another font")
    return family


def default_font() -> Path:
    found = sorted(glob.glob(os.path.expanduser(DEFAULT_FONT)))
    if not found:
        raise SeqlabError(f"no font at {DEFAULT_FONT}; pass --font PATH (a .ttf/.otf that is neither in "
                          "data/ocr-fonts.json nor a reserved family)")
    return Path(found[-1])


def finetune(args: argparse.Namespace, gt: Path, test_gt: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """`seqlab finetune ocr --gt gt --test-gt test_gt --from MODEL --out WORK/document.pt --minutes M` through
    its Python API, run inside `work` (its metrics/, .seqlab/ and MLflow store land there). The checkpoint and
    {"eval": before/after/tesseract figures, "run": finetune.json, "settings": the ocr.finetune used}."""
    from seqlab.tasks.ocr.recognizer.finetune import Start, prepare, score
    from seqlab.training.loop import train

    params = load_params(args.params, "ocr")
    raw = params.model_dump()
    overrides = {"gt": str(gt), "test_gt": str(test_gt), "minutes": args.minutes, "seed": args.seed}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    raw["ocr"]["finetune"].update(overrides)
    params = parse_params(raw, "ocr")
    config = params.ocr.finetune
    start = Start.load(args.model.resolve())
    out = work / "document.pt"
    synthetic = (args.data / "ocr" / "train.npz").resolve()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    os.chdir(work)  # the loop writes metrics/<id>/ and .seqlab/ under the working directory's root

    def echo(line: str) -> None:
        print(f"[finetune] {line}", file=sys.stderr)

    run = prepare(config, start, out.stem, out, work / ".seqlab" / "finetune" / out.stem, params.ocr.augment,
                  synthetic, echo)
    echo(f"from {start.name}: {run.counts}")
    summary = train(run.task, config.seed, run.section, run.cpu_budget_s)
    _, metrics = score(run, summary, work / "metrics" / out.stem, echo)
    finetune_json = json.loads((work / "metrics" / out.stem / "finetune.json").read_text())
    figures = {name: {k: m[k] for k in (*HEADLINE, "lines_per_s")} for name, m in metrics.items()}
    return out, {"eval": figures, "run": finetune_json, "settings": config.model_dump(mode="json")}


def forgetting(before: Path, after: Path, reserved: Path) -> dict[str, dict[str, float]]:
    """CER of both models on the reserved synthetic splits, scored as OcrTask.evaluate scores them."""
    scores: dict[str, dict[str, float]] = {split: {} for split in FORGETTING_SPLITS}
    for name, path in (("before", before), ("after", after)):
        task, model, _ = load_model(path, "ocr")
        assert isinstance(task, OcrTask)
        splits = {s: fit_split(ocr_data.load_split(reserved / f"{s}.npz", task.charset), task.height)
                  for s in FORGETTING_SPLITS}
        with torch.no_grad():
            metrics = evaluate_recognizer(CtcReader(model, task.charset, torch.device("cpu")), splits, name).metrics
        for split in FORGETTING_SPLITS:
            scores[split][name] = metrics[split]["cer"]
            scores[split]["count"] = len(splits[split])
    for s in scores.values():
        s["moved_points"] = round(100 * (s["after"] - s["before"]), 3)
    return scores


def table(result: dict[str, Any]) -> str:
    page, rows = result["other_page"], []
    rows.append(f"other page ({result['document']['test_lines']} lines): CER / case-insensitive CER / WER")
    for name in ("before", "after", "tesseract"):
        if name in page:
            m = page[name]
            rows.append(f"  {name:<10} {100 * m['cer']:6.2f}%  {100 * m['cer_nocase']:6.2f}%  {100 * m['wer']:6.2f}%")
    rows.append(f"  CER cut by fine-tuning: {100 * result['cer_cut']:.1f}% (target >= 60%)")
    rows.append("reserved synthetic splits, CER before -> after (target: moved <= 0.5 points)")
    for split, s in result["forgetting"].items():
        rows.append(f"  {split:<20} {100 * s['before']:6.2f}% -> {100 * s['after']:6.2f}%  "
                    f"({s['moved_points']:+.2f} points, {s['count']} images)")
    run = result["finetune"]
    rows.append(f"fine-tuning: {run['epochs_run']} epochs, best {run['best_epoch']}, {run['cpu_minutes']:.2f} CPU-min "
                f"({run['wall_minutes']:.2f} wall), {run['train_lines_per_s']:.1f} training lines/s wall "
                f"({run['lines_per_cpu_s']:.1f} per CPU-second; document lines and the synthetic mix alike), "
                f"threads {result['machine']['threads']}, load average {result['machine']['loadavg_start'][0]:.2f}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "ocr-crnn.pt", help="the starting model")
    parser.add_argument("--data", type=Path, default=ROOT / "data",
                        help="the pipeline's data/ (ocr-fonts.json, ocr-corpus/, ocr/train.npz, ocr-reserved/)")
    parser.add_argument("--reserved", type=Path, default=None,
                        help="the reserved synthetic splits (default DATA/ocr-reserved, the ocr-reserved stage's)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="ocr.finetune's other settings")
    parser.add_argument("--font", type=Path, default=None, help=f"the document's typeface (default {DEFAULT_FONT})")
    parser.add_argument("--train-lines", type=int, default=200, help="lines of the pages fine-tuned on")
    parser.add_argument("--test-lines", type=int, default=60, help="lines of the other page scored")
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning CPU-minute budget")
    parser.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default params.yaml's)")
    parser.add_argument("--seed", type=int, default=26, help="the document (text, rendering) and the fine-tune")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ftbench"), help="scratch folder (emptied first)")
    parser.add_argument("--json", type=Path, default=ROOT / "metrics" / "finetune-document.json")
    args = parser.parse_args()
    args.reserved = args.reserved or args.data / "ocr-reserved"
    for name in ("model", "data", "reserved", "params", "json"):
        setattr(args, name, getattr(args, name).resolve())
    missing = [s for s in FORGETTING_SPLITS if not (args.reserved / f"{s}.npz").is_file()]
    if missing:
        raise SystemExit(f"{args.reserved} lacks {', '.join(missing)} (dvc repro ocr-reserved, or pass --reserved)")
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: no such model (train it, or pass --model)")
    font = (args.font or default_font()).resolve()
    family = check_font(font, args.data / "ocr-fonts.json")
    work = args.work.resolve()
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True)
    load_start = [round(x, 2) for x in os.getloadavg()]

    task, _, _ = load_model(args.model, "ocr")
    assert isinstance(task, OcrTask)
    passages = read_passages("train", args.data / "ocr-corpus")
    doc = make_document(passages, task.charset, args.train_lines, args.test_lines, args.seed)
    gt, test_gt = work / "document", work / "other-page"
    sizes = write_lines(gt, doc.train, font, derive_seed(args.seed, "document", "render"))
    later_page = (len(doc.train) - 1) // PAGE_LINES + 1 + TEST_PAGE_AFTER  # its name only
    sizes += write_lines(test_gt, doc.test, font, derive_seed(args.seed, "other-page", "render"), later_page)
    heights = [h for _, h in sizes]
    print(f"document: {len(doc.train)} + {len(doc.test)} lines in {family} ({font.name}), heights "
          f"{min(heights)}-{max(heights)} px, in {work}", file=sys.stderr)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    tuned, ft = finetune(args, gt, test_gt, work)
    run = ft["run"]
    forgot = forgetting(args.model, tuned, args.reserved)
    page = ft["eval"]
    samples = run["epochs_run"] * (run["train_lines"] + run["synthetic_per_epoch"])
    result: dict[str, Any] = {
        "what": "issue 26 fine-tuning target on a rendered stand-in document (benchmarks/finetune_document.py)",
        "model": str(args.model), "reserved": str(args.reserved), "model_sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
        "document": {
            "font": family, "font_file": str(font), "font_sha256": hashlib.sha256(font.read_bytes()).hexdigest(),
            "text": str(args.data / "ocr-corpus" / "train.txt"), "seed": args.seed,
            "train_passages": list(doc.train_passages), "test_passages": list(doc.test_passages),
            "train_lines": len(doc.train), "test_lines": len(doc.test),
            "chars_per_line": round(float(np.mean([len(t) for t in doc.train + doc.test])), 1),
            "height_px": [min(heights), max(heights)], "look": asdict(DOCUMENT_LOOK),
        },
        "other_page": page,
        "cer_cut": round(1 - page["after"]["cer"] / page["before"]["cer"], 4) if page["before"]["cer"] else None,
        "forgetting": forgot,
        "finetune": {
            **run, "cpu_minutes": round(run["cpu_seconds"] / 60, 3), "wall_minutes": round(run["train_seconds"] / 60, 3),
            "lines_per_cpu_s": round(samples / run["cpu_seconds"], 2) if run["cpu_seconds"] else None,
            "settings": ft["settings"],
        },
        "machine": {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "loadavg_start": load_start,
                    **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()], "benchmark_cpu_minutes": round((time.process_time() - cpu0) / 60, 2),
                    "benchmark_wall_minutes": round((time.perf_counter() - wall0) / 60, 2)},
    }
    tess = page.get("tesseract")
    result["targets"] = {
        "cer_cut_at_least_60pct": result["cer_cut"] is not None and result["cer_cut"] >= 0.6,
        "below_tesseract": tess is not None and page["after"]["cer"] < tess["cer"],
        "at_most_5_cpu_minutes": run["cpu_seconds"] <= 5 * 60,  # the budget is checked after each epoch
        "reserved_moved_at_most_half_a_point": all(abs(s["moved_points"]) <= 0.5 for s in forgot.values()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
