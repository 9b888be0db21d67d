"""CTC recognizers for word and text-line images: a pixel-column BiLSTM ("bilstm") and a small CRNN ("crnn").

Both take ``images`` (B, 1, H, W) float, ink-normalized so that background and right padding are 0
(see :func:`seqlab.tasks.ocr.recognizer.batching.collate`), and ``widths`` (B,) the true width of each image, and return
``(log_probs (T, B, C), out_lengths (B,))`` ready for ``nn.CTCLoss`` (blank = class 0).

A sample's output does not depend on how much padding its batch adds (in eval mode): the BiLSTMs never let
padding reach a valid step (:class:`PaddedBiLSTM`) and the CRNN zeroes every feature column beyond a sample's width before each conv, so
its right edge sees the same zeros as a conv's own zero padding would give. In train mode BatchNorm batch
statistics still include padded columns, which is harmless.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from seqlab.core.config import section_from_dict
from seqlab.core.sections import Section
from seqlab.tasks.ocr.config import ColumnBiLSTMConfig, CRNNConfig


def _forget_gate_bias_one(lstm: nn.LSTM) -> nn.LSTM:
    # Forget-gate bias 1 (gate order i, f, g, o): a standard trick that speeds up early CTC training.
    with torch.no_grad():
        lstm.get_parameter("bias_ih_l0")[lstm.hidden_size:2 * lstm.hidden_size].fill_(1.0)
    return lstm


def reverse_within_lengths(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) index that reverses each sample's first lengths[b] steps and leaves its padding in place."""
    t = torch.arange(steps, device=lengths.device)[:, None]
    n = lengths.to(t.device)[None, :]
    return torch.where(t < n, n - 1 - t, t)


class PaddedBiLSTM(nn.Module):
    """A bidirectional LSTM over right-padded (T, B, F) batches whose outputs at a sample's valid steps do
    not depend on the padding, at the speed of an unpacked LSTM.

    The forward direction runs on the batch as it is (padding comes after every valid step); the backward
    direction runs forward over each sample reversed within its own length, so its padding comes last
    too, and its outputs are reversed back. Layers are stacked as nn.LSTM(bidirectional=True) stacks them
    (each layer reads both directions of the one below). The same results as packed sequences, which
    cost 38x more here: a 1-layer 128-unit BiLSTM on (30, 64, 64) took 905 ms per forward+backward
    packed and 24 ms this way (2 CPU threads); the whole CRNN training step went from ~90 to ~47 ms.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(_forget_gate_bias_one(nn.LSTM(n, hidden_size)) for n in sizes)
        self.backward_layers = nn.ModuleList(_forget_gate_bias_one(nn.LSTM(n, hidden_size)) for n in sizes)
        self.dropout = nn.Dropout(dropout if num_layers > 1 else 0.0)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        index = reverse_within_lengths(lengths.clamp(min=1), x.shape[0])
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers, strict=True)):
            if i:
                x = self.dropout(x)
            ahead, _ = fwd(x)
            rev = index[:, :, None].expand(-1, -1, x.shape[2])
            back, _ = bwd(x.gather(0, rev))
            x = torch.cat([ahead, back.gather(0, index[:, :, None].expand(-1, -1, back.shape[2]))], dim=2)
        return x


def _ctc_frames(logits: Tensor, lengths: Tensor, frames: int) -> tuple[Tensor, Tensor]:
    """(T, B, frames * C) scores -> log-probs (T * frames, B, C): each LSTM step emits `frames` CTC frames.

    CTC needs a blank between repeated characters ("ll" -> l, blank, l), so a word needs up to
    2 * len - 1 frames; at 4 pixel columns per step a narrow "ll" gets too few. Emitting 2 frames
    per step doubles the resolution for the cost of a wider linear layer, not a longer LSTM.
    """
    t, b, _ = logits.shape
    out = logits.view(t, b, frames, -1).permute(0, 2, 1, 3).reshape(t * frames, b, -1)
    return out.log_softmax(dim=2), lengths * frames


def _check_input(images: Tensor, widths: Tensor, height: int) -> None:
    if images.dim() != 4 or images.shape[1] != 1 or images.shape[2] != height:
        raise ValueError(f"images must be (B, 1, {height}, W), got {tuple(images.shape)}")
    if widths.shape != (images.shape[0],):
        raise ValueError(f"widths must be ({images.shape[0]},), got {tuple(widths.shape)}")


class ColumnBiLSTM(nn.Module):
    """Raw pixel columns (in frames of ``stride``) are the time steps: projection -> BiLSTM -> linear.

    Built from ``cfg`` (params.yaml's ``ocr.bilstm.model``, whose keys are these), the number of output classes
    including the CTC blank (len(charset) + 1) and the image height in pixels (features per column).

    Keys:
        projection: size of a Linear+ReLU projection of each time step before the LSTM; 0 feeds raw pixels.
        hidden_size: LSTM hidden size per direction.
        num_layers: stacked BiLSTM layers.
        stride: pixel columns per time step (concatenated, stride * height features). 1 is the pure
            one-column-per-step model. The LSTM walks the sequence step by step, so its cost and the
            length of CTC's initial blank-only plateau grow with T: in 3 CPU minutes (1 layer, lr 5e-3,
            batch 32) stride 4 reached 1.3% val CER, stride 2 7.6%, and stride 1 never left the plateau.
            4 also matches the CRNN's time resolution, so the two variants differ only in features.
        dropout: dropout between LSTM layers (ignored with one layer).
        frames_per_step: CTC frames emitted per LSTM step (see :func:`_ctc_frames`).
    """

    def __init__(self, cfg: ColumnBiLSTMConfig, num_classes: int, height: int) -> None:
        super().__init__()
        self.height = height
        self.downsample = cfg.stride  # pixel columns per LSTM step; batching pads to a multiple of it
        self.frames = cfg.frames_per_step
        features = height * cfg.stride
        projection = cfg.projection
        self.proj = nn.Sequential(nn.Linear(features, projection), nn.ReLU()) if projection else nn.Identity()
        self.lstm = PaddedBiLSTM(projection or features, cfg.hidden_size, cfg.num_layers, cfg.dropout)
        self.fc = nn.Linear(2 * cfg.hidden_size, num_classes * cfg.frames_per_step)

    def output_lengths(self, widths: Tensor) -> Tensor:
        """Number of valid CTC frames for images of the given true widths (a partial step counts)."""
        return -(-widths.to(torch.long) // self.downsample) * self.frames

    def forward(self, images: Tensor, widths: Tensor) -> tuple[Tensor, Tensor]:
        _check_input(images, widths, self.height)
        lengths = -(-widths.to(device=images.device, dtype=torch.long) // self.downsample)  # LSTM steps
        x = images[:, 0]  # (B, H, W)
        s = self.downsample
        if s > 1:
            # A sample's last frame may reach past its width: zero those columns (as a lone image would
            # be zero-padded) and pad the batch to whole frames.
            cols = torch.arange(x.shape[2], device=x.device)
            x = x * (cols < widths.to(x.device)[:, None]).to(x.dtype)[:, None, :]
            x = nn.functional.pad(x, (0, -x.shape[2] % s))
            b, h, w = x.shape
            x = x.reshape(b, h, w // s, s).permute(0, 2, 3, 1).reshape(b, w // s, s * h)  # frames of s columns
            x = x.transpose(0, 1)  # (T, B, s*H)
        else:
            x = x.permute(2, 0, 1)  # (W, B, H)
        out = self.lstm(self.proj(x), lengths)
        return _ctc_frames(self.fc(out), lengths, self.frames)


class CRNN(nn.Module):
    """Conv stack (conv3x3-BN-ReLU per stage) -> height collapse -> BiLSTM over columns -> linear.

    Each stage halves the height (while it is >= 2); the first log2(downsample) stages also halve the
    width. With ``pool="stride"`` (default) the conv itself strides, which computes 4x fewer outputs
    than conv + max-pool and measured ~2.5x faster for the conv stack on CPU; ``pool="max"`` is the
    classic conv + max-pool. A final conv whose kernel spans the remaining rows (+BN+ReLU) collapses
    the height to 1, giving ``channels[-1]`` features per column; that keeps the LSTM input small (the
    LSTM input projection dominates the cost when C*h features are fed directly).

    Built from ``cfg`` (params.yaml's ``ocr.crnn.model``, whose keys are these), the number of output classes
    including the CTC blank (len(charset) + 1) and the data's image height in pixels.

    Keys:
        channels: output channels of each conv stage.
        hidden_size: LSTM hidden size per direction.
        num_layers: stacked BiLSTM layers. One layer reached 1.1% val CER in a 4-minute CPU run where two
            reached 3.9% (slower steps and a longer initial blank-only plateau).
        downsample: width reduction factor (a power of 2, at most 2 ** len(channels)); one output step
            per ``downsample`` pixel columns, so labels need about that many columns per character.
        pool: "stride" (strided convs) or "max" (stride-1 convs followed by 2x2 / 2x1 max-pooling).
        dropout: dropout between LSTM layers (ignored with one layer).
        frames_per_step: CTC frames emitted per LSTM step (see :func:`_ctc_frames`).
        collapse: how the remaining rows become one feature column: "conv" (a conv spanning them, C
            features) or "flatten" (C * rows features, as Calamari and OCRopus feed their LSTMs).
        input_height: rows the conv stack reads (0: the data's ``height``); other heights are rescaled
            to it, aspect kept, inside the model, so one data set can feed models of several heights.
    """

    def __init__(self, cfg: CRNNConfig, num_classes: int, height: int) -> None:
        super().__init__()
        # cfg's own rules (CRNNConfig) hold: downsample a power of 2 up to 2 ** len(channels), input_height 0 or >= 8.
        channels, downsample, pool = cfg.channels, cfg.downsample, cfg.pool
        self.frames = cfg.frames_per_step
        self.data_height = height
        height = cfg.input_height or height
        width_steps = int(math.log2(downsample))
        self.height = height
        self.downsample = downsample
        self.pool = pool
        self.stages = nn.ModuleList()
        self.steps: list[tuple[int, int]] = []  # (height, width) reduction of each stage
        prev, h = 1, height
        for i, ch in enumerate(channels):
            step = (2 if h >= 2 else 1, 2 if i < width_steps else 1)
            stride = step if pool == "stride" else (1, 1)
            self.stages.append(nn.Sequential(
                nn.Conv2d(prev, ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True)))
            self.steps.append(step)
            prev, h = ch, -(-h // step[0]) if pool == "stride" else h // step[0]
        features = prev
        if cfg.collapse == "flatten":
            self.collapse: nn.Module = nn.Flatten(1, 2)  # (B, C, h, T) -> (B, C*h, T)
            features = prev * h
        elif h > 1:
            self.collapse = nn.Sequential(nn.Conv2d(prev, prev, (h, 1), bias=False), nn.BatchNorm2d(prev),
                                          nn.ReLU(inplace=True), nn.Flatten(1, 2))
        else:
            self.collapse = nn.Flatten(1, 2)
        self.lstm = PaddedBiLSTM(features, cfg.hidden_size, cfg.num_layers, cfg.dropout)
        self.fc = nn.Linear(2 * cfg.hidden_size, num_classes * cfg.frames_per_step)

    def _shrink(self, lengths: Tensor, sw: int) -> Tensor:
        # Strided conv (k=3, p=1): ceil(L / s); max-pool (k=s, no padding): floor(L / s).
        return -(-lengths // sw) if self.pool == "stride" else lengths // sw

    def _rescaled_widths(self, widths: Tensor) -> Tensor:
        if self.height == self.data_height:
            return widths.to(torch.long)
        return (widths.to(torch.float64) * self.height / self.data_height).round().clamp(min=1).to(torch.long)

    def _rescale(self, images: Tensor, widths: Tensor) -> tuple[Tensor, Tensor]:
        """Images of the data's height -> the conv stack's (``input_height``), aspect kept."""
        if self.height == self.data_height:
            return images, widths.to(torch.long)
        new_widths = self._rescaled_widths(widths)
        scale = self.height / self.data_height
        # Zero columns on the right first, so that the filter reads zeros past a sample's edge whether the
        # batch pads it or not (interpolate clamps at the tensor's edge): the output stays padding-independent.
        extra = math.ceil(2 / min(scale, 1.0)) + 1
        cols = torch.arange(images.shape[3], device=images.device)
        padded = nn.functional.pad(images * (cols < widths[:, None]).to(images.dtype)[:, None, None, :], (0, extra))
        width = round(padded.shape[3] * scale)
        out = nn.functional.interpolate(padded, size=(self.height, width), mode="bilinear",
                                        align_corners=False, antialias=scale < 1)
        return out[..., : max(1, int(new_widths.max()))], new_widths.to(images.device)

    def output_lengths(self, widths: Tensor) -> Tensor:
        """Exact number of CTC frames for images of the given true widths."""
        lengths = self._rescaled_widths(widths)
        for _, sw in self.steps:
            lengths = self._shrink(lengths, sw)
        return lengths * self.frames

    def forward(self, images: Tensor, widths: Tensor) -> tuple[Tensor, Tensor]:
        _check_input(images, widths, self.data_height)
        x, lengths = self._rescale(images, widths.to(images.device))
        for stage, (sh, sw) in zip(self.stages, self.steps, strict=True):
            # Zero columns beyond each width so a sample's edge sees the same input at any batch width.
            cols = torch.arange(x.shape[3], device=x.device)
            x = stage(x * (cols < lengths[:, None]).to(x.dtype)[:, None, None, :])
            if self.pool == "max" and (sh > 1 or sw > 1):
                x = nn.functional.max_pool2d(x, (sh, sw))
            lengths = self._shrink(lengths, sw)
        x = self.collapse(x).permute(2, 0, 1)  # (B, F, T) -> (T, B, F)
        out = self.lstm(x, lengths)
        return _ctc_frames(self.fc(out), lengths, self.frames)


# OCR variant -> model class and its params section ocr.<variant>.model: <class>(section, num_classes, height),
# num_classes and height coming from the data.
MODELS: dict[str, type[nn.Module]] = {"bilstm": ColumnBiLSTM, "crnn": CRNN}
MODEL_SECTIONS: dict[str, type[ColumnBiLSTMConfig | CRNNConfig]] = {"bilstm": ColumnBiLSTMConfig, "crnn": CRNNConfig}
# Each model key's value before params.yaml set it (the constructors' keyword defaults, kept): a checkpoint written
# before a key existed (CRNN's `collapse`, `input_height`) reads back as the model it holds (OcrTask.model_section);
# tests and benchmarks build small models from them (model_config).
DEFAULTS: dict[type[Section], dict[str, Any]] = {
    ColumnBiLSTMConfig: {"projection": 64, "hidden_size": 128, "num_layers": 1, "stride": 4, "dropout": 0.0,
                         "frames_per_step": 1},
    CRNNConfig: {"channels": [32, 64, 128], "hidden_size": 128, "num_layers": 1, "downsample": 4, "pool": "stride",
                 "dropout": 0.0, "frames_per_step": 1, "collapse": "conv", "input_height": 0},
}
ModelSectionT = TypeVar("ModelSectionT", bound=Section)


def model_config(kind: type[ModelSectionT], **keys: Any) -> ModelSectionT:
    """`kind` (ColumnBiLSTMConfig or CRNNConfig) with `keys`, DEFAULTS for the others, checked as params.yaml is
    (ValueError naming the key)."""
    return section_from_dict(kind, {**DEFAULTS[kind], **keys})


def extend_classes(model: nn.Module, added: int) -> None:
    """Give `model`'s classifier (`fc`, the last layer of ColumnBiLSTM and CRNN) `added` more output classes,
    appended after the old ones in each CTC frame's block of rows (see :func:`_ctc_frames`).

    Every old weight is kept, so the old classes' logits stay what they were for any input; the new rows are
    initialised as a fresh nn.Linear's (from torch's global RNG): small, so the new classes start out rarely
    winning and the model reads as before until training teaches them. Fine-tuning uses this to extend a
    trained model's charset (seqlab.tasks.ocr.recognizer.finetune).
    """
    fc, frames = model.fc, model.frames
    if not isinstance(fc, nn.Linear) or not isinstance(frames, int) or added < 0:
        raise ValueError(f"cannot add {added} classes to {type(model).__name__}")
    if not added:
        return
    old = fc.out_features // frames
    grown = nn.Linear(fc.in_features, (old + added) * frames, device=fc.weight.device, dtype=fc.weight.dtype)
    with torch.no_grad():
        grown.weight.view(frames, old + added, -1)[:, :old] = fc.weight.view(frames, old, -1)
        grown.bias.view(frames, old + added)[:, :old] = fc.bias.view(frames, old)
    model.fc = grown
