"""Which CTC decoding a reader uses, from params.yaml's `ocr.decode`, and the language model it reads.

Every reader of a trained model (evaluate, predict on torch or onnxruntime, pages, scoring ground truth,
fine-tuning's scoring, the MLflow model: OcrTask.reading / use_reading) decodes through :func:`decoder_for`, so the figures and the answers come from the same search. Validation
during training stays greedy: it only ranks epochs, and a beam search per validation pass would cost more
than the epoch's gain in ranking.

The language model (`models/ocr-lm.npz`, stage `ocr-lm`) is counted from the training split's labels (the
words, numbers, codes, random strings and prose lines the model was trained to read, in their proportions)
and the training prose corpus (data/ocr-corpus/train.txt). Never from the validation, test or reserved
text: the reserved splits judge it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import DecodeConfig
from seqlab.tasks.ocr.recognizer.beam_search import BeamSearchDecoder, BeamSettings
from seqlab.tasks.ocr.recognizer.char_lm import CharLM
from seqlab.tasks.ocr.recognizer.ctc import greedy_decode

Decoder = Callable[[Tensor, Tensor], list[list[int]]]  # (T, B, C) scores, (B,) lengths -> class indices


def uses_lm(config: DecodeConfig) -> bool:
    """Whether decoding as `config` says reads the language model."""
    return config.method == "beam" and config.lm_weight > 0


def decoder_for(charset: Charset, config: DecodeConfig, lm_file: Path | None = None) -> Decoder:
    """Greedy decoding, or a beam search (with the language model at `lm_file` when `uses_lm(config)`: the
    caller names the file, models/ocr-lm.npz (char_lm.lm_path) or an MLflow model's artifact; a missing file is
    a CheckpointError naming the stage that builds it)."""
    if config.method == "greedy":
        return greedy_decode
    lm = None
    if uses_lm(config):
        if lm_file is None:
            raise ValueError("beam search with lm_weight > 0 needs the language model's file")
        lm = CharLM.load(lm_file)
    settings = BeamSettings(beam_width=config.beam_width, lm_weight=config.lm_weight,
                            length_bonus=config.length_bonus, min_prob=config.min_prob, lm_gate=config.lm_gate)
    return BeamSearchDecoder(charset, settings, lm)
