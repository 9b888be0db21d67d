"""ocr (unaligned seq2seq with CTC): read a word image, output its characters.

Two variants share the data and this task: `rnn` (a BiLSTM over raw pixel columns) and `crnn`
(a conv stack whose feature columns feed a BiLSTM). Images keep their aspect ratio at a fixed
height; batches group similar widths and CTC gets each sample's true output length.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqlab import paths
from seqlab.errors import DataError
from seqlab.storage import load_arrays, write_json
from seqlab.tasks.base import Task
from seqlab.tasks.ocr.batching import WidthBucketSampler, collate
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.ctc import greedy_decode
from seqlab.tasks.ocr.metrics import summarize
from seqlab.tasks.ocr.models import build_model

TEST_SPLITS = ("test", "test_heldout_fonts")
PARAM_TO_ARG = {"hidden_size": "hidden", "num_layers": "layers", "projection": "proj"}
EVAL_BATCH = 128


@dataclass
class OcrSplit:
    images: list[np.ndarray]  # uint8 (H, W_i), dark text on light background
    texts: list[str]
    labels: list[list[int]]
    widths: np.ndarray
    fonts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def read_meta(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "meta.json"
    if not path.is_file():
        raise DataError(f"{path} is missing (run the generate stage first: dvc repro)")
    try:
        meta = json.loads(path.read_text())
        Charset.from_name(meta["charset"])
        int(meta["height"])
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path} is corrupt ({type(exc).__name__}: {exc}); regenerate it with dvc repro -f ocr-generate") from None
    return meta


def load_ocr_split(path: Path, charset: Charset) -> OcrSplit:
    a = load_arrays(path)
    widths, height = a["widths"].astype(np.int64), int(a["height"])
    ends = np.cumsum(widths * height)
    if len(ends) == 0 or ends[-1] != a["pixels"].size or len(a["texts"]) != len(widths):
        raise DataError(f"{path}: pixel count does not match the recorded widths; regenerate it with dvc repro -f")
    flat = np.split(a["pixels"], ends[:-1])
    images = [f.reshape(height, w) for f, w in zip(flat, widths)]
    texts = [str(t) for t in a["texts"]]
    bad = next((t for t in texts if not charset.accepts(t)), None)
    if bad is not None:
        raise DataError(f"{path}: label {bad!r} has characters outside the charset; regenerate the data")
    return OcrSplit(images, texts, [charset.encode(t) for t in texts], widths, [str(f) for f in a["fonts"]])


class OcrTask(Task):
    name = "ocr"
    variants = ("rnn", "crnn")
    monitor = "val_cer"
    monitor_mode = "min"

    def __init__(self, variant: str = "crnn") -> None:
        if variant not in self.variants:
            raise ValueError(f"unknown OCR variant {variant!r} (choose from {', '.join(self.variants)})")
        self.variant = variant
        self._charset: Charset | None = None

    # --- data -----------------------------------------------------------------------------
    def generate(self, params: dict[str, Any]) -> dict[str, Any]:
        from seqlab.tasks.ocr.render import generate

        d = params["ocr"]["data"]
        stats = generate(d, params["seed"], self.data_dir, d["workers"])
        write_json(self.data_dir / "meta.json", {"charset": Charset.from_name(d["charset"]).chars, "height": d["height"]})
        return stats

    @property
    def charset(self) -> Charset:
        if self._charset is None:
            self._charset = Charset.from_name(read_meta(self.data_dir)["charset"])
        return self._charset

    def load_split(self, split: str) -> OcrSplit:
        return load_ocr_split(self.data_dir / f"{split}.npz", self.charset)

    def batches(self, data: OcrSplit, batch_size: int, generator: torch.Generator | None) -> Iterator[dict]:
        sampler = WidthBucketSampler(data.widths, batch_size, generator, shuffle=generator is not None)
        for idx in sampler:
            batch = collate([data.images[i] for i in idx], [data.labels[i] for i in idx], pad_multiple=8)
            batch["index"] = torch.tensor(idx)
            batch["size"] = len(idx)
            yield batch

    def num_batches(self, data: OcrSplit, batch_size: int) -> int:
        return -(-len(data) // batch_size)

    # --- model ----------------------------------------------------------------------------
    def train_section(self, params: dict[str, Any]) -> dict[str, Any]:
        return params["ocr"][self.variant]

    def data_meta(self, data: OcrSplit) -> dict[str, Any]:
        meta = read_meta(self.data_dir)
        return {"charset": meta["charset"], "height": meta["height"]}

    def build_model(self, model_params: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        # params.yaml names -> constructor args; keys a checkpoint predates take the constructor default.
        sizes = {PARAM_TO_ARG.get(k, k): v for k, v in model_params.items()}
        self._charset = Charset.from_name(meta["charset"])
        return build_model(self.variant, len(meta["charset"]) + 1, meta["height"], **sizes)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        log_probs, out_lengths = model(batch["images"], batch["widths"])
        return F.ctc_loss(log_probs, batch["targets"], out_lengths, batch["target_lengths"], blank=0,
                          reduction="mean", zero_infinity=True)

    def read(self, model: nn.Module, data: OcrSplit, device: torch.device) -> tuple[list[str], float]:
        """Greedy-decode every image of a split (in input order); also return the mean CTC loss."""
        preds: list[str] = [""] * len(data)
        loss_sum = 0.0
        for batch in self.batches(data, EVAL_BATCH, None):
            log_probs, out_lengths = model(batch["images"].to(device), batch["widths"].to(device))
            loss = F.ctc_loss(log_probs, batch["targets"].to(device), out_lengths, batch["target_lengths"].to(device),
                              blank=0, reduction="sum", zero_infinity=True)
            loss_sum += loss.item()
            for i, seq in zip(batch["index"].tolist(), greedy_decode(log_probs.cpu(), out_lengths.cpu())):
                preds[i] = self.charset.decode(seq)
        return preds, loss_sum / max(1, sum(len(label) for label in data.labels))

    def validate(self, model: nn.Module, data: OcrSplit, device: torch.device) -> dict[str, float]:
        preds, loss = self.read(model, data, device)
        s = summarize(preds, data.texts)
        return {"val_loss": loss, "val_cer": s["cer"], "val_word_accuracy": s["word_accuracy"]}

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, model: nn.Module, device: torch.device):
        from seqlab.tasks.ocr.report import prediction_grid

        metrics: dict[str, Any] = {}
        rows: list[dict] = []
        for split in TEST_SPLITS:
            data = self.load_split(split)
            t0 = time.perf_counter()
            preds, _ = self.read(model, data, device)
            seconds = time.perf_counter() - t0
            s = summarize(preds, data.texts)
            by_len = s.pop("by_length")
            metrics[split] = {**s, "words_per_s": len(data) / seconds, "threads": torch.get_num_threads()}
            rows += [{"length": int(k), "split": split, **v} for k, v in by_len.items()]
            if split == "test":
                prediction_grid(paths.metrics_dir(self.model_id) / "predictions.png", data.images, preds, data.texts,
                                title=f"{self.model_id} on test: errors first")
        return metrics, {"by_length": rows}

    # --- predict --------------------------------------------------------------------------
    def predict(self, model: nn.Module, meta: dict[str, Any], inputs: Iterable[str], out: TextIO, err: TextIO) -> int:
        from seqlab.tasks.ocr.images import ImageReadError, load_word_image

        self._charset = Charset.from_name(meta["charset"])
        images, names, failures = [], [], 0
        for path in inputs:
            try:
                images.append(load_word_image(path, meta["height"]))
                names.append(path)
            except ImageReadError as exc:
                print(f"{path}: {exc}", file=err)
                failures += 1
        if images:
            data = OcrSplit(images, [""] * len(images), [[]] * len(images),
                            np.array([im.shape[1] for im in images]), [""] * len(images))
            with torch.no_grad():
                preds, _ = self.read(model, data, torch.device("cpu"))
            for name, text in zip(names, preds):
                print(f"{name}\t{text}", file=out)
        return failures
