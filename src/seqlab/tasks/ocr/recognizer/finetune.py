"""Fine-tuning a trained OCR model on a user's ground-truth lines (`seqlab finetune ocr`, the ocr-finetune stage).

The run is an ordinary training run of the shared loop (seqlab.training.loop: resume after kill -9, best
validation epoch, MLflow run) on a :class:`FinetuneTask`, an OCR task whose

- model starts from a checkpoint's weights; when the ground truth needs characters the model lacks (accented
  letters, other symbols), the charset is extended: the new characters are appended, so every old class keeps
  its index, and the classifier gets fresh rows for them, every other weight kept (models.extend_classes);
- training data are the ground-truth lines, brought to the model's height as predict brings any image
  (images.fit_image), plus, in each epoch, a fresh draw of synthetic training samples (data/ocr/train.npz, a
  `synthetic_share` of the epoch's samples) so that the model keeps reading what it read before;
- validation data are a seeded share of the lines held back, by line.

Afterwards :func:`score` reads the scored lines (the held-back ones, or a separate test folder) with the
starting model and the fine-tuned one, decoding as predict does (params.yaml's ocr.decode), and with Tesseract,
and writes metrics/<id>/ (see docs/finetuning.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from seqlab.core.checkpoint import file_digest, load_model
from seqlab.core.errors import DataError, SeqlabError
from seqlab.core.results import SPLITS_FILE, split_records
from seqlab.core.sections import Section, TrainConfig
from seqlab.core.seeding import derive_seed
from seqlab.core.storage import write_json
from seqlab.core.task import NO_READING, Reading, Reference
from seqlab.tasks.ocr import data as ocr_data
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import AugmentConfig, ColumnBiLSTMConfig, CRNNConfig, FinetuneConfig
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.documents.ground_truth import GtLine, gt_split, read_ground_truth
from seqlab.tasks.ocr.images import fit_split
from seqlab.tasks.ocr.recognizer.batching import OcrBatch, iterate_batches
from seqlab.tasks.ocr.recognizer.ctc import CtcReader
from seqlab.tasks.ocr.recognizer.metrics import summarize
from seqlab.tasks.ocr.recognizer.models import extend_classes
from seqlab.tasks.ocr.recognizer.report import LINE_GRID_CELLS, Recognizer, prediction_grid
from seqlab.tasks.ocr.recognizer.task import OcrTask

UNBOUNDED_EPOCHS = 10_000  # `epochs: null`: the CPU budget decides
GRAD_CLIP = 5.0  # as the pipeline's OCR training clips
# eval.json: these figures of each reader on the scored lines (every figure is in splits.json).
HEADLINE_KEYS = ("cer", "cer_nocase", "wer")
SUMMARY_FILE = "finetune.json"  # what the run was: lines, added characters, epochs, CPU time, throughput


@dataclass(frozen=True)
class Start:
    """The trained model fine-tuning starts from, as its checkpoint describes it."""

    name: str  # how the user named it: a path or a models:/ URI
    digest: str  # sha256 of the checkpoint file
    variant: str
    architecture: ColumnBiLSTMConfig | CRNNConfig  # its model section (the checkpoint's, read back typed)
    charset: Charset
    height: int
    state: dict[str, torch.Tensor]

    @classmethod
    def load(cls, path: Path, name: str | None = None) -> Start:
        """The OCR checkpoint at `path` (errors call it `name`, e.g. the models:/ URI it was downloaded from)."""
        task, model, ckpt = load_model(path, "ocr", name=name)
        assert isinstance(task, OcrTask)
        return cls(name or str(path), file_digest(path), task.variant, task.model_section(ckpt["config"]["model"]),
                   task.charset, task.height, {k: v.clone() for k, v in model.state_dict().items()})

    def task(self) -> OcrTask:
        """The OCR task that reads with the starting model (its charset and height)."""
        return OcrTask(self.variant, self.charset, height=self.height)

    def model(self) -> nn.Module:
        """The starting model itself, in eval mode."""
        model = self.task().build_model(self.architecture, {"charset": self.charset.chars, "height": self.height})
        model.load_state_dict(self.state)
        return model.eval()


class FinetuneRun(Section):
    """What one fine-tuning run reads (a RunSection for the training loop): the starting model's architecture,
    the training settings made from `finetune`, the augmentation; all of it is logged with the MLflow run and,
    with the starting model's and synthetic data's digests, keys the resume file."""

    model: ColumnBiLSTMConfig | CRNNConfig
    train: TrainConfig
    augment: AugmentConfig | None
    finetune: FinetuneConfig
    start: str
    start_sha256: str
    synthetic_sha256: str | None


@dataclass(frozen=True)
class MixedTrain:
    """One epoch's training data: every ground-truth line, plus `synthetic_count` synthetic samples drawn afresh
    each epoch (by the epoch's generator, so a resumed run draws the same)."""

    gt: OcrSplit
    synthetic: OcrSplit | None
    synthetic_count: int

    def __len__(self) -> int:
        return len(self.gt) + self.synthetic_count

    def epoch(self, generator: torch.Generator) -> OcrSplit:
        if self.synthetic is None or not self.synthetic_count:
            return self.gt
        pick = torch.randperm(len(self.synthetic), generator=generator)[:self.synthetic_count].tolist()
        return concat(self.gt, subset(self.synthetic, pick))


def subset(split: OcrSplit, index: Sequence[int]) -> OcrSplit:
    return OcrSplit([split.images[i] for i in index], [split.texts[i] for i in index],
                    [split.labels[i] for i in index], split.widths[list(index)], [split.fonts[i] for i in index],
                    [split.kinds[i] for i in index] if split.kinds else [])


def concat(a: OcrSplit, b: OcrSplit) -> OcrSplit:
    kinds = a.kinds + b.kinds if a.kinds and b.kinds else []
    return OcrSplit(a.images + b.images, a.texts + b.texts, a.labels + b.labels, np.concatenate([a.widths, b.widths]),
                    a.fonts + b.fonts, kinds)


class FinetuneTask(OcrTask):
    """The OCR task of a fine-tuning run: data from its work folder (the ground-truth lines it was prepared
    with) and the synthetic mix, the model from `start`, outputs at `model_file` and metrics/<model_id>/.
    Its checkpoint is an ordinary OCR checkpoint (task `ocr`, its variant, the extended charset in its meta)."""

    headline_metric, headline_mode = "after.cer", "min"  # the fine-tuned model's CER on the scored lines
    headline_splits: ClassVar[tuple[str, ...]] = ("before", "after", "tesseract")  # type: ignore[assignment]

    def __init__(self, start: Start, charset: Charset, work_dir: Path, model_id: str, model_file: Path,
                 augment: AugmentConfig | None, synthetic: Path | None, synthetic_count: int) -> None:
        super().__init__(start.variant, charset, augment, start.height)
        self.start = start
        self.work_dir, self._model_id, self._model_file = work_dir, model_id, model_file
        self.synthetic, self.synthetic_count = synthetic, synthetic_count

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def data_dir(self) -> Path:
        return self.work_dir  # the loop fingerprints its .npz files: other lines, another resume file

    @property
    def model_file(self) -> Path:
        return self._model_file

    def load_split(self, split: str) -> OcrSplit | MixedTrain:  # type: ignore[override]
        lines = ocr_data.load_split(self.work_dir / f"{split}.npz", self.charset)
        if split != "train":
            return lines
        synthetic = ocr_data.load_split(self.synthetic, self.charset) if self.synthetic else None
        return MixedTrain(lines, synthetic, self.synthetic_count if synthetic else 0)

    def batches(self, data: OcrSplit | MixedTrain, batch_size: int,
                generator: torch.Generator | None) -> Iterator[OcrBatch]:
        return self.rank_batches(data, batch_size, generator, 0, 1)

    def rank_batches(self, data: OcrSplit | MixedTrain, batch_size: int,
                     generator: torch.Generator | None, rank: int, world: int) -> Iterator[OcrBatch]:
        if isinstance(data, MixedTrain):
            data = data.epoch(generator) if generator is not None else data.gt
        return iterate_batches(data, batch_size, generator, augment_config=self.augment, shard=(rank, world))

    def num_batches(self, data: OcrSplit | MixedTrain, batch_size: int) -> int:
        return -(-len(data) // batch_size)

    def data_meta(self, data: Any) -> dict[str, Any]:
        return {"charset": self.charset.chars, "height": self.height}

    def build_model(self, model: Section, meta: Mapping[str, Any]) -> nn.Module:
        """The starting model with its classifier grown to the extended charset (new rows drawn from torch's
        RNG, which the loop has seeded)."""
        net = self.start.model().train()
        extend_classes(net, len(self.charset) - len(self.start.charset))
        return net

    def references(self) -> list[Reference]:
        return []  # the Tesseract figures of a fine-tuning run are in its own eval.json


@dataclass(frozen=True)
class FineTuning:
    """A prepared run: the task and section for the training loop, and the lines it is scored on."""

    task: FinetuneTask
    section: FinetuneRun
    scored: OcrSplit  # native-height lines, texts normalized to the charset
    added: str  # characters the charset gained
    counts: dict[str, int]  # lines trained on, validated on, scored; synthetic samples per epoch

    @property
    def cpu_budget_s(self) -> float | None:
        minutes = self.section.finetune.minutes
        return None if minutes is None else minutes * 60.0


def hold_out(lines: Sequence[GtLine], share: float, seed: int) -> tuple[list[GtLine], list[GtLine]]:
    """(train, validation): a seeded `share` of the lines (at least one) held back, each line whole."""
    if len(lines) < 2:
        raise SeqlabError(f"fine-tuning needs at least 2 ground-truth lines (one to train on, one to validate); "
                          f"got {len(lines)}")
    n_val = min(len(lines) - 1, max(1, round(share * len(lines))))
    order = np.random.default_rng(derive_seed(seed, "finetune-validation")).permutation(len(lines))
    val = set(order[:n_val].tolist())
    return [ln for i, ln in enumerate(lines) if i not in val], [ln for i, ln in enumerate(lines) if i in val]


def prepare(config: FinetuneConfig, start: Start, model_id: str, model_file: Path, work_dir: Path,
            augment: AugmentConfig, synthetic: Path | None, echo: Callable[[str], None]) -> FineTuning:
    """Read the ground truth, extend the charset if asked and needed, hold validation lines back, write the
    work folder's train/val splits and return the run. `synthetic`: the synthetic training split to mix in
    (None or a share of 0: none)."""
    lines = read_ground_truth(config.gt, None if config.extend_charset else start.charset, drop_bad=config.drop_bad,
                              echo=echo)
    charset = start.charset.extended(start.charset.missing(ln.text for ln in lines)) if config.extend_charset \
        else start.charset
    added = charset.chars[len(start.charset.chars):]
    if added:
        echo(f"charset extended by {len(added)} characters the ground truth needs: {added}")
    train_lines, val_lines = hold_out(lines, config.val_share, config.seed)
    for split, part in (("train", train_lines), ("val", val_lines)):
        fitted = fit_split(gt_split(part), start.height)
        ocr_data.save_split(work_dir / f"{split}.npz", fitted.images, [charset.normalize(t) for t in fitted.texts],
                            fitted.fonts, start.height, ["gt"] * len(part))
    scored_lines = read_ground_truth(config.test_gt, None, drop_bad=config.drop_bad, echo=echo) if config.test_gt \
        else val_lines
    scored = gt_split(scored_lines)
    scored.texts[:] = [charset.normalize(t) for t in scored.texts]

    use_synthetic = synthetic if config.synthetic_share > 0 else None
    synthetic_count = 0
    if use_synthetic is not None:
        _check_synthetic(use_synthetic, charset, start.height)
        # share s of an epoch's samples: n_syn / (n_gt + n_syn) = s
        synthetic_count = math.ceil(len(train_lines) * config.synthetic_share / (1 - config.synthetic_share))
    task = FinetuneTask(start, charset, work_dir, model_id, model_file, augment if config.augment else None,
                        use_synthetic, synthetic_count)
    epochs = config.epochs or UNBOUNDED_EPOCHS
    train = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr, weight_decay=0.0,
                        grad_clip=GRAD_CLIP, scheduler="constant", patience=epochs, device="auto", precision="fp32",
                        nproc=1)
    section = FinetuneRun(model=start.architecture, train=train,
                          augment=task.augment, finetune=config, start=start.name, start_sha256=start.digest,
                          synthetic_sha256=file_digest(use_synthetic) if use_synthetic else None)
    counts = {"train_lines": len(train_lines), "val_lines": len(val_lines), "scored_lines": len(scored),
              "synthetic_per_epoch": synthetic_count}
    return FineTuning(task, section, scored, added, counts)


def _check_synthetic(path: Path, charset: Charset, height: int) -> None:
    """The synthetic split must be one the fine-tuned model reads: labels within its charset, at its height."""
    if not path.is_file():
        raise DataError(f"{path} is missing: the synthetic training data to mix in (run `dvc repro ocr-generate`, "
                        "or set ocr.finetune.synthetic_share to 0)")
    meta = ocr_data.read_meta(path.parent)
    if charset.missing([Charset.from_name(meta["charset"]).chars]) or int(meta["height"]) != height:
        raise DataError(f"{path.parent} was rendered for another model (its charset or height is not the starting "
                        "model's); set ocr.finetune.synthetic_share to 0, or start from a model trained on it")


def _tesseract(charset: Charset) -> tuple[Recognizer | None, str]:
    from seqlab.tasks.ocr.recognizer.tesseract import Tesseract, is_available

    ok, reason = is_available()
    return (Tesseract(charset, psm=7, threads=torch.get_num_threads()), "") if ok else (None, reason)


def score(run: FineTuning, summary: Mapping[str, Any], out: Path, echo: Callable[[str], None],
          reading: Reading = NO_READING) -> tuple[list[Path], dict[str, dict[str, Any]]]:
    """Read the scored lines with the starting model (`before`), the fine-tuned one as predict loads it
    (`after`), both decoding as `reading` says (OcrTask.reading: params.yaml's ocr.decode, as predict reads), and
    Tesseract (PSM 7, as the pipeline reads lines; skipped with a note when it is not installed), and write
    `out`: eval.json (CER, case-insensitive CER and WER of each), splits.json (every figure), predictions.png and
    predictions_before.png (errors first) and finetune.json. Returns the files (eval.json first) and the figures."""
    task, before = run.task, run.task.start.task()
    task.use_reading(reading)
    before.use_reading(reading)
    _, tuned, _ = load_model(task.model_file, "ocr")
    fitted = fit_split(run.scored, task.height)  # as predict reads a line
    cpu = torch.device("cpu")
    readers: dict[str, tuple[Recognizer, OcrSplit]] = {
        "before": (CtcReader(task.start.model(), before.charset, cpu, before.decode), fitted),
        "after": (CtcReader(tuned, task.charset, cpu, task.decode), fitted)}
    tesseract, why_not = _tesseract(task.charset)
    if tesseract is not None:
        readers["tesseract"] = (tesseract, run.scored)  # at native height: it finds the x-height itself
    else:
        echo(f"note: Tesseract skipped ({why_not})")
    metrics: dict[str, dict[str, Any]] = {}
    files = [out / "eval.json", out / SPLITS_FILE]
    for name, (reader, split) in readers.items():
        t0 = time.perf_counter()
        with torch.no_grad():
            preds = reader.read(split.images)
        seconds = time.perf_counter() - t0
        figures = summarize(preds, split.texts)
        figures.pop("by_length")
        metrics[name] = {**figures, "lines_per_s": len(split) / seconds}
        if name != "tesseract":
            grid = out / ("predictions.png" if name == "after" else f"predictions_{name}.png")
            prediction_grid(grid, fitted.images, preds, fitted.texts, f"{task.model_id}: {name} fine-tuning",
                            limit=LINE_GRID_CELLS, columns=1, cell_width=960)
            files.append(grid)
    write_json(files[0], {name: {k: m[k] for k in HEADLINE_KEYS} for name, m in metrics.items()})
    write_json(files[1], split_records(metrics))
    samples = summary["epochs_run"] * (run.counts["train_lines"] + run.counts["synthetic_per_epoch"])
    write_json(out / SUMMARY_FILE, {
        "start": task.start.name, "added_chars": run.added, **run.counts,
        "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
        "train_seconds": summary["train_seconds"], "cpu_seconds": summary["cpu_seconds"],
        "train_lines_per_s": round(samples / summary["train_seconds"], 2) if summary["train_seconds"] else None,
        "tesseract": "scored" if tesseract is not None else f"skipped: {why_not}"})
    files.append(out / SUMMARY_FILE)
    return files, metrics


def summary_line(model_id: str, metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per reader: CER, case-insensitive CER and WER on the scored lines."""
    lines = [f"[{model_id}] on the scored lines (all figures: metrics/{model_id}/{SPLITS_FILE})"]
    lines += [f"  {name:<9}  cer {m['cer']:.4f}  cer_nocase {m['cer_nocase']:.4f}  wer {m['wer']:.4f}"
              for name, m in metrics.items()]
    return "\n".join(lines)
