"""CTC decodings side by side on one trained model: greedy, a beam without the language model, and the
beam with the character language model at several weights and gates, on every test split and word kind.

The model reads each split once (its CTC scores are kept); each decoding then decodes the same scores, so
the figures differ only by the decoding. Per split: case-sensitive and case-folded CER, extra doubled
letters (adjacent repeats a prediction has beyond its truth: the `TThe`, `,,` errors), and the decoding's
CPU milliseconds per image (process time, the model's forward pass not included). Per word kind: CER.

It also records why greedy decoding doubles letters: for every doubled letter greedy emits, the number of
CTC frames between the two emissions of the letter. With `frames_per_step: 2` (two CTC frames per LSTM
step) the gaps are even: the letter is emitted from the same sub-frame of two successive LSTM steps.

Writes ``metrics/ocr-decoding/results.json``; docs/results.md prints it (`make results`), and the default
in params.yaml's ``ocr.decode`` is chosen from it. Needs the pipeline's outputs (`dvc repro ocr-evaluate`).

    python benchmarks/decoding.py                      # models/ocr-crnn.pt, models/ocr-lm.npz, params.yaml
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlab.core.checkpoint import load_model
from seqlab.core.config import load_params
from seqlab.core.storage import write_json
from seqlab.tasks.ocr import data as ocr_data
from seqlab.tasks.ocr.config import DecodeConfig, OcrConfig
from seqlab.tasks.ocr.images import fit_split
from seqlab.tasks.ocr.recognizer.batching import iterate_batches
from seqlab.tasks.ocr.recognizer.char_lm import lm_path
from seqlab.tasks.ocr.recognizer.ctc import READ_BATCH, greedy_decode
from seqlab.tasks.ocr.recognizer.decoding import decoder_for
from seqlab.tasks.ocr.recognizer.metrics import cer

OUT = Path("metrics/ocr-decoding/results.json")
LM_WEIGHTS = (0.1, 0.15, 0.3)  # beside 0 (no language model) and the default's
LM_GATES = (-6.5, -5.0)  # beside the default's: greedy reading's mean LM log-prob per character below which it stays


def extra_doubles(pred: str, truth: str) -> int:
    def repeats(text: str) -> int:
        return sum(a == b for a, b in zip(text, text[1:]))
    return max(0, repeats(pred) - repeats(truth))


def scores(model: torch.nn.Module, split: ocr_data.OcrSplit) -> list[np.ndarray]:
    """Each image's (T, C) log-probabilities, in the split's order."""
    out: list[np.ndarray] = [np.empty(0)] * len(split)
    with torch.no_grad():
        for batch in iterate_batches(split, READ_BATCH, None):
            log_probs, lengths = model(batch.images, batch.widths)
            for j, i in enumerate(batch.index.tolist()):
                out[i] = torch.log_softmax(log_probs[: lengths[j], j].float(), dim=1).numpy()
    return out


def doubled_gaps(frames: list[np.ndarray], texts: list[str], charset: Any) -> dict[int, int]:
    """Frames between the two emissions of each letter greedy doubles (against its truth)."""
    gaps: Counter[int] = Counter()
    for x, truth in zip(frames, texts, strict=True):
        path = x.argmax(axis=1)
        pred = charset.decode(greedy_decode(torch.from_numpy(x[:, None]), torch.tensor([len(x)]))[0])
        if not extra_doubles(pred, truth):
            continue
        emitted = [(t, c) for t, c in enumerate(path.tolist()) if c and (t == 0 or path[t - 1] != c)]
        gaps.update(b - a for (a, c), (b, d) in zip(emitted, emitted[1:]) if c == d and b - a > 1)
    return dict(sorted(gaps.items()))


def _head(split: ocr_data.OcrSplit, n: int) -> ocr_data.OcrSplit:
    return ocr_data.OcrSplit(split.images[:n], split.texts[:n], split.labels[:n], split.widths[:n], split.fonts[:n],
                             split.kinds[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/ocr-crnn.pt"))
    parser.add_argument("--lm", type=Path, default=None, help="default: models/ocr-lm.npz")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--limit", type=int, default=None, help="the first N images of each split (a quick check)")
    args = parser.parse_args()

    default = OcrConfig.of(load_params("params.yaml", "ocr")).decode
    beam = default.model_copy(update={"method": "beam"})
    candidates: dict[str, DecodeConfig] = {"greedy": default.model_copy(update={"method": "greedy"}),
                                           "beam, no LM": beam.model_copy(update={"lm_weight": 0.0, "length_bonus": 0.0})}
    ungated = beam.model_copy(update={"lm_gate": None})
    for weight in sorted({*LM_WEIGHTS, beam.lm_weight}):
        candidates[f"beam, LM {weight:g}"] = ungated.model_copy(update={"lm_weight": weight})
    for gate in sorted({*LM_GATES, *([] if beam.lm_gate is None else [beam.lm_gate])}):
        candidates[f"beam, LM {beam.lm_weight:g}, gate {gate:g}"] = beam.model_copy(update={"lm_gate": gate})
    wider = 2 * beam.beam_width
    candidates[f"beam {wider}, LM {beam.lm_weight:g}"] = ungated.model_copy(update={"beam_width": wider})
    default_name = "greedy" if default.method == "greedy" else f"beam, LM {default.lm_weight:g}" + (
        "" if default.lm_gate is None else f", gate {default.lm_gate:g}")

    task, model, _ = load_model(args.model, "ocr")
    model.eval()
    splits = {name: fit_split(s, task.height) for name, s in ocr_data.load_test_splits(task.charset).items()}
    if args.limit:
        splits = {name: _head(s, args.limit) for name, s in splits.items()}
    frames = {name: scores(model, s) for name, s in splits.items()}
    lm_file = args.lm or lm_path()

    results: dict[str, Any] = {}
    for name, config in candidates.items():
        decode = decoder_for(task.charset, config, lm_file)
        per_split, per_kind = {}, {}
        for split, data in splits.items():
            start = time.process_time()
            preds = [task.charset.normalize(task.charset.decode(decode(torch.from_numpy(x[:, None]),
                                                                       torch.tensor([len(x)]))[0]))
                     for x in frames[split]]
            seconds = time.process_time() - start
            per_split[split] = {
                "cer": cer(preds, data.texts),
                "cer_nocase": cer([p.lower() for p in preds], [t.lower() for t in data.texts]),
                "extra_doubles": sum(extra_doubles(p, t) for p, t in zip(preds, data.texts, strict=True)),
                "decode_ms_per_image": 1000 * seconds / len(data), "count": len(data)}
            if data.kinds:
                per_kind[split] = {kind: cer([p for p, k in zip(preds, data.kinds, strict=True) if k == kind],
                                             [t for t, k in zip(data.texts, data.kinds, strict=True) if k == kind])
                                   for kind in sorted(set(data.kinds))}
        results[name] = {"settings": config.model_dump(), "splits": per_split, "kinds": per_kind}
        print(name, {s: f"{100 * v['cer']:.2f}%" for s, v in per_split.items()}, flush=True)

    gaps = {split: doubled_gaps(frames[split], splits[split].texts, task.charset) for split in splits}
    write_json(args.out, {"model": str(args.model), "threads": torch.get_num_threads(), "default": default_name,
                          "candidates": results, "greedy_doubled_gaps": gaps})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
