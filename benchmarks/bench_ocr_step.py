"""Where a CRNN training step's time goes, and the BiLSTM before and after PaddedBiLSTM, in one run.

    .venv/bin/python benchmarks/bench_ocr_step.py [--steps 20] [--batch 64]

Batches are real training batches (data/ocr/train.npz, width-bucketed as in training; run `dvc repro
ocr-generate` first), with and without the pipeline's augmentation (params.yaml `ocr.augment`). The model
is params.yaml's `ocr.crnn.model`. For "packed" the same weights run through one
`nn.LSTM(bidirectional=True)` on packed sequences (what the CRNN did before PaddedBiLSTM); both give the
same outputs. Prints median milliseconds per step and samples/s; compare variants only within one run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.bench.compute import median_seconds
from seqlab.core.config import load_params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import load_split, read_meta
from seqlab.tasks.ocr.recognizer import models
from seqlab.tasks.ocr.recognizer.batching import OcrBatch, iterate_batches
from seqlab.tasks.ocr.recognizer.ctc import ctc_loss


class PackedBiLSTM(nn.Module):
    """The previous implementation: one bidirectional nn.LSTM over packed sequences."""

    def __init__(self, padded: models.PaddedBiLSTM) -> None:
        super().__init__()
        self.lstm = nn.LSTM(padded.forward_layers[0].input_size, padded.hidden_size, padded.num_layers,
                            bidirectional=True)
        for i in range(padded.num_layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.lstm, f"{kind}_l{i}").data.copy_(getattr(padded.forward_layers[i], f"{kind}_l0"))
                getattr(self.lstm, f"{kind}_l{i}_reverse").data.copy_(getattr(padded.backward_layers[i], f"{kind}_l0"))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, total_length=x.shape[0])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params()
    data_dir = Path("data/ocr")
    meta = read_meta(data_dir)
    charset = Charset.from_name(meta["charset"])
    train = load_split(data_dir / "train.npz", charset)

    def batches(augment: bool) -> list[OcrBatch]:
        it = iterate_batches(train, args.batch, torch.Generator().manual_seed(1),
                             augment_config=params.ocr.augment if augment else None)
        return [next(it) for _ in range(args.steps + 1)]

    data_ms = {}
    for augment in (False, True):
        it = iterate_batches(train, args.batch, torch.Generator().manual_seed(1),
                             augment_config=params.ocr.augment if augment else None)
        data_ms[augment] = median_seconds(lambda it=it: next(it), args.steps) * 1e3
    plain, augmented = batches(False), batches(True)

    torch.manual_seed(0)
    model = models.CRNN(params.ocr.crnn.model, charset.num_classes, meta["height"])
    variants = {"PaddedBiLSTM": model.lstm, "packed nn.LSTM": PackedBiLSTM(model.lstm)}
    print(f"CRNN {params.ocr.crnn.model.model_dump()}, batch {args.batch}, {args.threads} threads, "
          f"median of {args.steps} steps")
    print(f"data: collate + normalise {data_ms[False]:.1f} ms/batch; with augmentation {data_ms[True]:.1f} ms/batch")
    for name, lstm in variants.items():
        model.lstm = lstm
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for label, source in (("rendered", plain), ("augmented", augmented)):
            queue = iter(source)

            def step(queue=queue, optimizer=optimizer) -> None:
                batch = next(queue)
                log_probs, lengths = model(batch.images, batch.widths)
                loss = ctc_loss(log_probs, lengths, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            seconds = median_seconds(step, args.steps)
            print(f"  {name:15s} {label:9s} batches: model step {seconds * 1e3:6.1f} ms "
                  f"-> {args.batch / seconds:6.0f} samples/s (without data time)")


if __name__ == "__main__":
    main()
