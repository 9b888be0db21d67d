"""ocr (unaligned seq2seq with CTC): read a word or text-line image, output its characters.

Two variants share the data and this task: `bilstm` (a BiLSTM over raw pixel columns) and `crnn`
(a conv stack whose feature columns feed a BiLSTM). Images keep their aspect ratio at a fixed
height; batches group similar widths and CTC gets each sample's true output length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Self, TextIO

import numpy as np
import torch
from torch import nn

from seqlab.core import paths
from seqlab.core.registry import entry
from seqlab.core.sections import RunSection, Section
from seqlab.core.task import Answer, Evaluation, Reading, Reference, Task
from seqlab.tasks.ocr import data as ocr_data
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import AugmentConfig, ColumnBiLSTMConfig, CRNNConfig, DecodeConfig, OcrRun
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.recognizer import rapidocr, tesseract
from seqlab.tasks.ocr.recognizer.batching import OcrBatch, iterate_batches
from seqlab.tasks.ocr.recognizer.char_lm import lm_path
from seqlab.tasks.ocr.recognizer.ctc import CtcReader, ctc_loss, greedy_decode
from seqlab.tasks.ocr.recognizer.decoding import Decoder, decoder_for, uses_lm
from seqlab.tasks.ocr.recognizer.metrics import summarize
from seqlab.tasks.ocr.recognizer.models import CRNN, MODEL_SECTIONS, ColumnBiLSTM, model_config
from seqlab.tasks.ocr.recognizer.report import HEADLINE_METRIC, HEADLINE_SPLITS, evaluate_recognizer

DECODE, LM = "decode", "lm"  # Reading's setting (ocr.decode's keys) and file (the language model)


class OcrTask(Task):
    name = "ocr"
    reads_with_params = True  # ocr.decode and the language model
    variants = entry("ocr").variants
    variant: str
    monitor = "val_cer"
    monitor_mode = "min"
    headline_metric, headline_mode, headline_splits = HEADLINE_METRIC, "min", HEADLINE_SPLITS
    predict_from_args = True  # image paths
    # Encoded image bytes (PNG, JPEG...) or an image file's path.
    input_columns = {"image": ("binary", False), "path": ("string", False)}

    def __init__(self, variant: str, charset: Charset, augment: AugmentConfig | None = None, height: int = 32) -> None:
        if variant not in self.variants:
            raise ValueError(f"unknown OCR variant {variant!r} (choose from {', '.join(self.variants)})")
        self.variant = variant
        self.charset = charset  # the labels' classes: the data's for training, the checkpoint's afterwards
        self.augment = augment  # training batches only; None: no augmentation (evaluation, predict)
        self.height = height  # the model's input height, likewise
        self.decode: Decoder = greedy_decode  # how evaluate and predict read; training's validation stays greedy

    @classmethod
    def for_training(cls, section: RunSection, variant: str | None) -> Self:
        if variant is None:
            raise ValueError(f"an OCR training run needs a variant ({', '.join(cls.variants)})")
        if not isinstance(section, OcrRun):
            raise TypeError(f"an OCR training run reads an OcrRun section (OcrConfig.run), not {type(section).__name__}")
        meta = ocr_data.read_meta(paths.data_dir(cls.name))  # read once: data_meta hands these on to the checkpoint
        return cls(variant, Charset.from_name(meta["charset"]), section.augment, int(meta["height"]))

    @classmethod
    def from_checkpoint(cls, config: Mapping[str, Any]) -> Self:
        variant, meta = config["variant"], config["meta"]
        return cls(variant, Charset.from_name(meta["charset"]), height=int(meta["height"]))

    def reading(self, params: Any) -> Reading:
        """params.yaml's `ocr.decode`, and models/ocr-lm.npz when that decoding reads the language model."""
        from seqlab.tasks.ocr.config import OcrConfig

        config = OcrConfig.of(params).decode
        return Reading({DECODE: config.model_dump()}, {LM: lm_path()} if uses_lm(config) else {})

    def use_reading(self, reading: Reading) -> None:
        """Decode as `reading` says (beam search: with its language model file); without a decoding, greedily, as
        a model logged before decodings travelled with it was read."""
        if DECODE not in reading.settings:
            self.decode = greedy_decode
            return
        config = DecodeConfig.model_validate(reading.settings[DECODE])
        self.decode = decoder_for(self.charset, config, reading.files.get(LM))

    # --- data -----------------------------------------------------------------------------
    def load_split(self, split: str) -> OcrSplit:
        return ocr_data.load_split(self.data_dir / f"{split}.npz", self.charset)

    def batches(self, data: OcrSplit, batch_size: int, generator: torch.Generator | None) -> Iterator[OcrBatch]:
        return iterate_batches(data, batch_size, generator, augment_config=self.augment)

    def rank_batches(self, data: OcrSplit, batch_size: int, generator: torch.Generator, rank: int,
                     world: int) -> Iterator[OcrBatch]:
        # Builds only this rank's batches: collating and augmenting one costs about as much as training on it.
        return iterate_batches(data, batch_size, generator, augment_config=self.augment, shard=(rank, world))

    def num_batches(self, data: OcrSplit, batch_size: int) -> int:
        return -(-len(data) // batch_size)

    # --- model ----------------------------------------------------------------------------
    def data_meta(self, data: OcrSplit) -> dict[str, Any]:
        return {"charset": self.charset.chars, "height": self.height}  # as meta.json has them

    def build_model(self, model: Section, meta: Mapping[str, Any]) -> nn.Module:
        num_classes, height = len(meta["charset"]) + 1, meta["height"]
        if self.variant == "crnn" and isinstance(model, CRNNConfig):
            return CRNN(model, num_classes, height)
        if self.variant == "bilstm" and isinstance(model, ColumnBiLSTMConfig):
            return ColumnBiLSTM(model, num_classes, height)
        raise TypeError(f"the {self.variant} model is built from {MODEL_SECTIONS[self.variant].__name__}, "
                        f"not {type(model).__name__}")

    def model_section(self, args: Mapping[str, Any]) -> ColumnBiLSTMConfig | CRNNConfig:
        """A checkpoint's model dict as its variant's section. A key the section gained after the checkpoint was
        written (CRNN's `collapse`, `input_height`) takes its value from before (models.DEFAULTS)."""
        return model_config(MODEL_SECTIONS[self.variant], **args)

    def loss(self, model: nn.Module, batch: OcrBatch) -> torch.Tensor:
        log_probs, out_lengths = model(batch.images, batch.widths)
        return ctc_loss(log_probs, out_lengths, batch)

    def validation_metrics(self, model: nn.Module, data: OcrSplit, device: torch.device) -> dict[str, float]:
        preds, loss = CtcReader(model, self.charset, device).read_with_loss(data)
        s = summarize(preds, data.texts)
        return {"val_loss": loss, "val_cer": s["cer"], "val_word_accuracy": s["word_accuracy"]}

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, model: nn.Module, device: torch.device) -> Evaluation:
        """Test metrics, the by_length table and the prediction grid, scored as Tesseract's are. Splits stored
        at native heights (the scans) reach the model as predict would bring them (images.fit_split)."""
        from seqlab.tasks.ocr.images import fit_split

        splits = {name: fit_split(split, self.height) for name, split in ocr_data.load_test_splits(self.charset).items()}
        return evaluate_recognizer(CtcReader(model, self.charset, device, self.decode), splits, self.model_id)

    def references(self) -> list[Reference]:
        """The reference engines (Tesseract, RapidOCR), from the files their stages wrote (none before they ran)."""
        return [found for found in (tesseract.reference(), rapidocr.reference()) if found is not None]

    # --- predict --------------------------------------------------------------------------
    def answers(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str]) -> Iterator[Answer]:
        """Image paths in, each a word or line image, read as one batch; an unreadable file is refused, the rest
        still read. The charset and height are this task's, built from the same checkpoint's `meta`
        (from_checkpoint). Pages: recognizer.page_reader.OcrPageReader, what `seqlab predict ocr` uses."""
        from seqlab.tasks.ocr.images import ImageReadError, load_word_image

        paths_in, images, errors = list(inputs), [], {}
        for i, path in enumerate(paths_in):
            try:
                images.append(load_word_image(path, self.height))
            except ImageReadError as exc:
                errors[i] = str(exc)
        texts = iter(self.recognizer(model)(images) if images else [])
        for i, path in enumerate(paths_in):
            yield Answer(path, None, errors[i]) if i in errors else Answer(path, next(texts), None)

    def recognizer(self, model: nn.Module) -> Callable[[Sequence[np.ndarray]], list[str]]:
        """Model-height uint8 images in, texts out, in width-sorted batches on the CPU (CtcReader)."""
        return CtcReader(model, self.charset, torch.device("cpu"), self.decode).read

    def input_example(self, meta: Mapping[str, Any]) -> dict[str, list[Any]]:
        """The first validation image as PNG (training has the validation split at hand; the test splits
        may not be generated yet)."""
        import io

        from PIL import Image

        png = io.BytesIO()
        Image.fromarray(self.load_split("val").images[0]).save(png, format="PNG")
        return {"image": [png.getvalue()]}

    def predict(self, model: nn.Module, meta: Mapping[str, Any], inputs: Iterable[str], out: TextIO,
                err: TextIO) -> int:
        failures = 0
        for answer in self.answers(model, meta, inputs):
            if answer.error is not None:
                print(f"{answer.input}: {answer.error}", file=err)
                failures += 1
            else:
                print(f"{answer.input}\t{answer.text}", file=out)
        return failures
