"""On-the-fly augmentation of word and line images: every epoch shows each text under fresh degradations.

The model otherwise only sees tight, dark-on-light trdg crops; users feed photos with margins, light
text on dark ground, colour, blur and JPEG artefacts. :func:`augment` turns a padded batch into new
images of the same words (labels never change), vectorised over the batch: one homography per sample
applied with ``grid_sample``, pooling for stroke weight, grouped convolutions for blur, an 8x8 block DCT
for JPEG. Its output goes through :func:`seqlab.tasks.ocr.normalize.normalize` like every other image.

Data flow: a sample's uniforms (:func:`sample_params`, one named column each, :class:`Uniforms`) become
its :class:`Plan` (which effects apply, how strongly) before any pixel is touched; then named steps apply
the plan: find the ink box, lay the text out (letter spacing, one transform, the fit), resample, reweigh
strokes, scan effects, tone and the generator-drawn ground.

Determinism (exact resume after a kill): a sample's parameters are uniforms from a counter-based hash
of (seed, sample index) (:func:`sample_params`), so they do not depend on the batch a sample lands in;
the training loop seeds each epoch's generator afresh and that seed is the one passed here, so every
epoch draws new parameters. Per-pixel noise comes from a generator the caller seeds per (seed, batch).
The same inputs give bit-identical outputs.

Label preservation: the geometric transform is built around the text's ink box, then scaled down
until the transformed box fits the height (1 px to spare) and the canvas is made as wide as the box
plus margins, so zoom, rotation, shear and perspective never cut ink off. The total horizontal scale
stays >= ``min_x_scale``, and ``min_widths`` lets the caller keep enough columns for each label's CTC
path. Letter spacing is approximated by stretching or shrinking the ink-free columns (gaps between
letters) in a separate horizontal resampling pass; a font whose letters overlap in every column keeps
its spacing. Words shrunk below their size are low-passed first, or thin strokes alias away. A long
line's rotation is scaled down with its length (as the reserved Pillow lines are): 4 degrees across a
1,000 px line would drift 70 px, and fitting that into the height shrank the text to a third.

Scans (what a scanner hands over): a sample can be binarised, black on white, at a threshold drawn
between ground and ink (a low one makes strokes bolder, a high one thinner), optionally after a blur (a
low-resolution scan), with ink dropped in small blobs (broken strokes); specks (1-2 px dots of ink on
the ground and of ground in the ink) and baseline curl (a smooth vertical displacement of the columns,
room for it reserved by the fit) apply to any sample. Their per-pixel fields come from a generator
seeded by the sample's own parameters and drawn at its own width, so they do not depend on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from seqlab.tasks.ocr.config import AugmentConfig
from seqlab.tasks.ocr.normalize import normalize, valid_columns

Range = Sequence[float]  # [low, high]

VERTICAL_ROOM = 1.0  # px kept between the transformed ink box and the top/bottom edges
MIN_MARGIN = 1.0  # px kept left and right of the ink box
INK_THRESHOLD = 0.2  # normalised ink, after a 3x3 mean, that belongs to the text's box
BOX_GROWTH = 1  # px added on each side of the detected text box
ROTATION_ASPECT = 6.0  # an ink box wider than this many heights is rotated proportionally less (reserved_render's)


class Uniforms(NamedTuple):
    """The columns of :func:`sample_params`' table, each a (B,) uniform in [0, 1), in column order.

    ``*_on`` columns decide whether an effect applies (below its probability), the others its strength
    (where in its range). The order is part of the draws: a new column goes at the end.
    """

    identity: Tensor  # below p_identity: the sample is copied unchanged
    zoom_on: Tensor
    zoom: Tensor
    y_position: Tensor  # a zoomed box's place in the free height
    x_scale_on: Tensor
    x_scale: Tensor
    margins_on: Tensor
    margin_left: Tensor
    margin_right: Tensor
    spacing_on: Tensor
    spacing: Tensor
    shear_on: Tensor
    shear: Tensor
    rotate_on: Tensor
    rotate: Tensor
    perspective_on: Tensor
    perspective_0: Tensor  # the 8 perspective columns: the ink box's corners' (x, y) shifts
    perspective_1: Tensor
    perspective_2: Tensor
    perspective_3: Tensor
    perspective_4: Tensor
    perspective_5: Tensor
    perspective_6: Tensor
    perspective_7: Tensor
    stroke_on: Tensor
    stroke: Tensor
    tone_on: Tensor
    contrast: Tensor
    brightness: Tensor
    invert: Tensor  # below p_invert: light text on dark ground
    texture_on: Tensor
    texture: Tensor
    gradient: Tensor
    gradient_side: Tensor  # below 0.5: the shading darkens towards the right
    blur_on: Tensor
    blur: Tensor
    noise_on: Tensor
    noise: Tensor
    jpeg_on: Tensor
    jpeg_quality: Tensor
    scan_on: Tensor
    scan_threshold: Tensor
    scan_blur_on: Tensor
    scan_blur: Tensor
    broken: Tensor
    speckle_on: Tensor
    speckle: Tensor
    curl_on: Tensor
    curl: Tensor
    curl_period: Tensor
    curl_phase: Tensor
    pixel_key: Tensor  # seeds the sample's per-pixel fields (specks, broken strokes)


PARAM_NAMES: tuple[str, ...] = Uniforms._fields
NUM_PARAMS = len(PARAM_NAMES)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT = np.uint64(0x5EC1AB0C2A06E7A1)  # keeps these streams apart from other uses of the same seed


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic): a counter-based RNG."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_params(seed: int, indices: Sequence[int] | Tensor | np.ndarray) -> Tensor:
    """Uniforms in [0, 1), float64 (B, NUM_PARAMS), for the samples ``indices`` of a split.

    Row ``i`` depends only on ``(seed, indices[i])``: the same on every run, in any batch. A new epoch
    is a new seed (the training loop derives one per epoch).
    """
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64).reshape(-1)
    key = _splitmix64(np.array([seed % 2**64], dtype=np.uint64) ^ _SALT)
    # A second round: it once mixed in an epoch number that was always 0 (the epoch is in the seed); kept, so
    # the draws stay what they were.
    key = _splitmix64(key ^ np.array([0], dtype=np.uint64))
    base = _splitmix64(key ^ idx)
    counters = base[:, None] + np.arange(1, NUM_PARAMS + 1, dtype=np.uint64)[None, :] * _GOLDEN
    return torch.from_numpy((_splitmix64(counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53)


@dataclass(frozen=True)
class InkBox:
    """Each sample's text box, float64 (B,) pixel edges, and its (B, W) ink-free columns."""

    x0: Tensor
    x1: Tensor
    y0: Tensor
    y1: Tensor
    gaps: Tensor


def _ink_box(ink: Tensor, widths: Tensor) -> InkBox:
    """The text box of normalised ink (B, 1, H, W) and its ink-free columns.

    The box is grown by BOX_GROWTH px: the faint anti-aliased edge of a thin stroke stays under the
    threshold, and a zoomed-in word lost that edge at the border. An image without detectable ink gets
    its whole canvas as box.
    """
    b, _, h, w = ink.shape
    text = F.avg_pool2d(ink, 3, stride=1, padding=1, count_include_pad=False)[:, 0] > INK_THRESHOLD
    rows, cols = text.any(dim=2), text.any(dim=1)
    found = rows.any(dim=1)
    y0 = torch.where(found, rows.int().argmax(dim=1), 0)
    y1 = torch.where(found, h - rows.flip(1).int().argmax(dim=1), h)
    x0 = torch.where(found, cols.int().argmax(dim=1), 0)
    x1 = torch.where(found, w - cols.flip(1).int().argmax(dim=1), widths)
    gaps = ~cols & valid_columns(widths, w)
    g = BOX_GROWTH
    return InkBox((x0 - g).clamp(min=0).double(), torch.minimum(x1 + g, widths).double(),
                  (y0 - g).clamp(min=0).double(), (y1 + g).clamp(max=h).double(), gaps)


def _matrices(n: int, **entries: Tensor | float) -> Tensor:
    """(n, 3, 3) float64 identity matrices with the named entries (``m01`` = row 0, column 1) set."""
    m = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    for name, value in entries.items():
        m[:, int(name[1]), int(name[2])] = value
    return m


def _homography(src: Tensor, dst: Tensor) -> Tensor:
    """(B, 3, 3) homographies taking the 4 points ``src`` (B, 4, 2) to ``dst`` (B, 4, 2)."""
    x, y = src.unbind(-1)
    u, v = dst.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # (B, 8, 8)
    h = torch.linalg.solve(a, torch.cat([u, v], dim=1))
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def _apply(m: Tensor, points: Tensor) -> Tensor:
    """Points (B, N, 2) through homographies (B, 3, 3)."""
    p = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ m.transpose(1, 2)
    return p[..., :2] / p[..., 2:]


def _gaussian_blur(x: Tensor, sigma_x: Tensor, sigma_y: Tensor | None = None) -> Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with sigmas per sample (0 = unchanged), edges replicated."""
    b = x.shape[0]
    y = x.transpose(0, 1)  # (1, B, H, W): one group per sample
    for sigma, horizontal in ((sigma_x, True), (sigma_x if sigma_y is None else sigma_y, False)):
        radius = max(1, math.ceil(3.0 * float(sigma.max())))
        t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-0.5 * (t[None, :] / sigma.to(x.dtype).clamp(min=1e-3)[:, None]) ** 2)
        k = k / k.sum(dim=1, keepdim=True)  # sigma ~0 gives a delta
        pad = (radius, radius, 0, 0) if horizontal else (0, 0, radius, radius)
        shape = (b, 1, 1, -1) if horizontal else (b, 1, -1, 1)
        y = F.conv2d(F.pad(y, pad, mode="replicate"), k.view(shape), groups=b)
    return y.transpose(0, 1)


def _dilate(x: Tensor) -> Tensor:
    """3x3 max filter as two 1-D passes (half the comparisons of a 3x3 window)."""
    return F.max_pool2d(F.max_pool2d(x, (1, 3), 1, (0, 1)), (3, 1), 1, (1, 0))


def _pixel_uniforms(keys: Tensor, widths: Tensor, channels: int, h: int, out_w: int) -> Tensor:
    """(n, channels, h, out_w) uniforms, sample i's from a generator seeded by ``keys[i]`` and drawn at its
    own width (1 beyond it): the field depends on the sample alone, not on the batch it lands in."""
    fields = torch.ones(len(keys), channels, h, out_w)
    for i, (key, width) in enumerate(zip(keys.tolist(), widths.tolist())):
        gen = torch.Generator().manual_seed(int(key))
        fields[i, :, :, :width] = torch.rand(channels, h, width, generator=gen)
    return fields


def _blobs(seeds: Tensor) -> Tensor:
    """Seed pixels (B, 1, H, W bool) grown into 2x2 blobs."""
    return F.max_pool2d(F.pad(seeds.float(), (0, 1, 0, 1)), 2, stride=1) > 0


def _on_subset(x: Tensor, mask: Tensor, fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``x`` with the samples where ``mask`` holds replaced by ``fn(x[those], their indices)``."""
    idx = mask.nonzero()[:, 0]
    return x.index_copy(0, idx, fn(x[idx], idx)) if len(idx) else x


_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)  # ITU-T T.81 Annex K luminance table, as libjpeg scales it by quality


def _dct_matrix() -> Tensor:
    k, n = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    d = torch.cos(math.pi * (2 * n + 1) * k / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d  # orthonormal DCT-II: JPEG's 8x8 transform


def jpeg(gray: Tensor, quality: Tensor) -> Tensor:
    """A grayscale baseline-JPEG round trip of (B, 1, H, W) in [0, 1] at libjpeg ``quality`` (B,).

    8x8 block DCT, quantisation by the standard luminance table scaled as libjpeg does, inverse DCT,
    8-bit rounding; edges padded by replication as encoders do. On word images it differs from Pillow's
    JPEG by 0.1-0.3 grey levels on average, where the artefacts themselves average 4-11 levels.
    """
    b, _, h, w = gray.shape
    q = quality.to(torch.float32).clamp(1, 100)[:, None, None]
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)
    table = ((_JPEG_LUMA.to(gray.device) * scale + 50) / 100).floor().clamp(1, 255)  # (B, 8, 8)
    x = F.pad(gray * 255.0 - 128.0, (0, -w % 8, 0, -h % 8), mode="replicate")
    hb, wb = x.shape[2] // 8, x.shape[3] // 8
    blocks = x.view(b, hb, 8, wb, 8).permute(0, 1, 3, 2, 4)  # (B, hb, wb, 8, 8)
    d = _dct_matrix().to(gray)
    t = table[:, None, None]
    coef = torch.round(d @ blocks @ d.T / t) * t
    out = (d.T @ coef @ d).permute(0, 1, 3, 2, 4).reshape(b, 1, hb * 8, wb * 8)[:, :, :h, :w]
    return (out + 128.0).round().clamp(0, 255) / 255.0


# --- the plan: what happens to each sample, drawn before any pixel is touched ------------------------------

@dataclass(frozen=True)
class Plan:
    """Each sample's augmentation, (B,) tensors: flags (bool) say whether an effect applies, strengths
    (float64) how much; an effect that is off holds its neutral strength (zoom 1, shear 0...)."""

    identity: Tensor  # copied unchanged: no other effect applies
    # --- geometry ---
    spacing: Tensor  # relative width change of the ink-free columns
    zoomed: Tensor  # zoom applies, and the box goes to `y_position` of the free height instead of staying centred
    zoom: Tensor
    y_position: Tensor
    stretch: Tensor  # horizontal scale on top of zoom, floored so that zoom * stretch >= min_x_scale
    perspective: Tensor
    corner_shift: Tensor  # (B, 4, 2) in [-1, 1): each corner's shift, in units of the perspective amount
    shear: Tensor
    degrees: Tensor  # rotation before a long line's reduction
    curl: Tensor  # baseline curl amplitude in text heights
    curl_period: Tensor  # in text heights
    curl_phase: Tensor  # in periods
    margins: Tensor  # new margins (else the source's, scaled)
    margin_left: Tensor  # in text heights
    margin_right: Tensor
    # --- appearance ---
    stroke: Tensor  # < 0 thinner, > 0 bolder
    scan: Tensor  # binarised black on white: the tone, texture, blur, noise and JPEG flags are off
    scan_blur: Tensor  # sigma before the threshold
    scan_threshold: Tensor
    broken: Tensor  # share of the ink dropped in blobs
    speckle: Tensor  # share of pixels made specks
    pixel_key: Tensor  # seeds the per-pixel fields of specks and broken strokes
    contrast: Tensor
    brightness: Tensor
    invert: Tensor
    textured: Tensor
    texture: Tensor  # std of the ground's field, x contrast
    gradient: Tensor  # shading across the word, x contrast
    gradient_right: Tensor  # the shading darkens towards the right
    blurred: Tensor
    blur: Tensor
    noisy: Tensor
    noise: Tensor  # std, x contrast
    jpeg: Tensor
    jpeg_quality: Tensor


def _lerp(bounds: Range, u: Tensor) -> Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * u


def draw_plan(params: Tensor, cfg: AugmentConfig) -> Plan:
    """The plan of each sample from its uniforms (B, NUM_PARAMS) and the knobs."""
    u = Uniforms(*params.unbind(dim=1))
    identity = u.identity < cfg.p_identity

    def on(flag: Tensor, p: float) -> Tensor:
        return (flag < p) & ~identity

    scan = on(u.scan_on, cfg.p_scan)

    def look(flag: Tensor, p: float) -> Tensor:
        return on(flag, p) & ~scan  # a scan stays black on white paper, without grey levels

    zoomed = on(u.zoom_on, cfg.p_zoom)
    zoom = torch.where(zoomed, _lerp(cfg.zoom, u.zoom), 1.0)
    stretch = torch.where(on(u.x_scale_on, cfg.p_x_scale), _lerp(cfg.x_scale, u.x_scale), 1.0)
    corners = torch.stack([getattr(u, f"perspective_{i}") for i in range(8)], dim=1)
    return Plan(
        identity=identity,
        spacing=torch.where(on(u.spacing_on, cfg.p_spacing), _lerp(cfg.spacing, u.spacing), 0.0),
        zoomed=zoomed, zoom=zoom, y_position=u.y_position,
        stretch=torch.maximum(stretch, cfg.min_x_scale / zoom),
        perspective=on(u.perspective_on, cfg.p_perspective), corner_shift=(corners * 2 - 1).view(-1, 4, 2),
        shear=torch.where(on(u.shear_on, cfg.p_shear), _lerp(cfg.shear, u.shear), 0.0),
        degrees=torch.where(on(u.rotate_on, cfg.p_rotate), _lerp(cfg.rotate, u.rotate), 0.0),
        curl=torch.where(on(u.curl_on, cfg.p_curl), _lerp(cfg.curl, u.curl), 0.0),
        curl_period=_lerp(cfg.curl_period, u.curl_period), curl_phase=u.curl_phase,
        margins=on(u.margins_on, cfg.p_margins),
        margin_left=_lerp(cfg.margins, u.margin_left), margin_right=_lerp(cfg.margins, u.margin_right),
        stroke=torch.where(on(u.stroke_on, cfg.p_stroke), _lerp(cfg.stroke, u.stroke), 0.0),
        scan=scan,
        scan_blur=torch.where(scan & on(u.scan_blur_on, cfg.p_scan_blur), _lerp(cfg.scan_blur, u.scan_blur), 0.0),
        scan_threshold=_lerp(cfg.scan_threshold, u.scan_threshold),
        broken=torch.where(scan, _lerp(cfg.broken, u.broken), 0.0),
        speckle=torch.where(on(u.speckle_on, cfg.p_speckle), _lerp(cfg.speckle, u.speckle), 0.0),
        pixel_key=u.pixel_key,
        contrast=torch.where(look(u.tone_on, cfg.p_tone), _lerp(cfg.contrast, u.contrast), 1.0),
        brightness=u.brightness,
        invert=(u.invert < cfg.p_invert) & ~identity & ~scan,
        textured=look(u.texture_on, cfg.p_texture), texture=_lerp(cfg.texture, u.texture),
        gradient=_lerp(cfg.gradient, u.gradient), gradient_right=u.gradient_side < 0.5,
        blurred=look(u.blur_on, cfg.p_blur), blur=_lerp(cfg.blur, u.blur),
        noisy=look(u.noise_on, cfg.p_noise), noise=_lerp(cfg.noise, u.noise),
        jpeg=look(u.jpeg_on, cfg.p_jpeg), jpeg_quality=_lerp(cfg.jpeg_quality, u.jpeg_quality).round(),
    )


# --- geometry: where each sample's text goes ---------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Each sample's geometry: letter spacing, the map from (spaced) source to output pixels, the new widths."""

    density: Tensor  # (B, W) width of each source column after letter spacing
    spaced: Tensor  # (B, W + 1) source x -> spaced x
    matrix: Tensor  # (B, 3, 3) spaced source pixels -> output pixels
    x_factor: Tensor  # total horizontal scale
    y_factor: Tensor  # total vertical scale
    text_h: Tensor  # the placed ink box's height
    widths: Tensor  # int64 (B,) new widths
    out_w: int  # the batch's new width


def _transform(plan: Plan, sx0: Tensor, sx1: Tensor, box: InkBox, perspective: float) -> Tensor:
    """(B, 3, 3): zoom and stretch, perspective, shear and rotation around the (spaced) ink box's centre."""
    b = len(sx0)
    box_w, box_h = sx1 - sx0, box.y1 - box.y0
    zoom, stretch = plan.zoom, plan.stretch
    a = _matrices(b, m02=-(sx0 + sx1) / 2, m12=-(box.y0 + box.y1) / 2)
    a = _matrices(b, m00=zoom * stretch, m11=zoom) @ a
    half_w, half_h = box_w * zoom * stretch / 2, box_h * zoom / 2
    corners = torch.stack([torch.stack([-half_w, -half_h], -1), torch.stack([half_w, -half_h], -1),
                           torch.stack([half_w, half_h], -1), torch.stack([-half_w, half_h], -1)], dim=1)
    persp = plan.perspective
    jitter = plan.corner_shift * (perspective * 2 * half_h)[:, None, None] * persp[:, None, None]
    if bool(persp.any()):
        a = torch.where(persp[:, None, None], _homography(corners, corners + jitter), _matrices(b)) @ a
    a = _matrices(b, m01=-plan.shear) @ a  # x' = x - shear * y with y down: positive shear leans right
    degrees = plan.degrees * (ROTATION_ASPECT * box_h / box_w.clamp(min=1.0)).clamp(max=1.0)  # lines: a slight skew
    angle = torch.deg2rad(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return _matrices(b, m00=cos, m01=-sin, m10=sin, m11=cos) @ a


def _layout(plan: Plan, box: InkBox, widths: Tensor, h: int, cfg: AugmentConfig, min_widths: Tensor | None,
            pad_multiple: int) -> Layout:
    """Letter spacing, the transform, then the fit: scale the transformed box down until it fits the height,
    then place it on a canvas as wide as the box plus margins, stretched when a min_width asks for more
    columns and squeezed (down to the floors) when wider than max_width_ratio times the source."""
    dev = widths.device
    # Letter spacing: ink-free columns get width 1 + spacing; `spaced` maps source x to spaced x.
    density = 1.0 + plan.spacing[:, None] * box.gaps.double()
    spaced = F.pad(density.cumsum(dim=1), (1, 0))  # (B, W + 1)
    sx0, sx1 = spaced.gather(1, box.x0.long()[:, None])[:, 0], spaced.gather(1, box.x1.long()[:, None])[:, 0]
    a = _transform(plan, sx0, sx1, box, cfg.perspective)
    corners = torch.stack([torch.stack([sx0, box.y0], -1), torch.stack([sx1, box.y0], -1),
                           torch.stack([sx1, box.y1], -1), torch.stack([sx0, box.y1], -1)], dim=1)
    moved = _apply(a, corners)
    lo, hi = moved.amin(dim=1), moved.amax(dim=1)
    extent = hi - lo
    # Baseline curl moves columns up and down by up to `swing` (px before the fit): the band to fit grows by it.
    zoom, box_h = plan.zoom, box.y1 - box.y0
    swing = plan.curl * box_h * zoom
    band = extent[:, 1] + 2 * swing
    room = h - 2 * VERTICAL_ROOM
    fit = (room / band.clamp(min=1e-6)).clamp(max=1.0)
    span = extent[:, 0] * fit
    widen = torch.ones_like(fit) if min_widths is None else \
        (min_widths.to(dev, torch.float64) / span.clamp(min=1e-6)).clamp(min=1.0)
    span = span * widen
    text_h = box_h * zoom * fit
    x_factor = zoom * plan.stretch * fit * widen
    keep_left, keep_right = sx0 * x_factor, (spaced.gather(1, widths[:, None])[:, 0] - sx1) * x_factor
    left = torch.where(plan.margins, plan.margin_left * text_h, keep_left).clamp(min=MIN_MARGIN)
    right = torch.where(plan.margins, plan.margin_right * text_h, keep_right).clamp(min=MIN_MARGIN)
    floor = (cfg.min_x_scale / x_factor).clamp(max=1.0)
    if min_widths is not None:
        floor = torch.maximum(floor, (min_widths.to(dev, torch.float64) / span.clamp(min=1e-6)).clamp(max=1.0))
    squeeze = torch.maximum((cfg.max_width_ratio * widths / (left + span + right)).clamp(max=1.0), floor)
    widen, span, left, right, x_factor = widen * squeeze, span * squeeze, left * squeeze, right * squeeze, \
        x_factor * squeeze
    free = (room - band * fit).clamp(min=0.0)
    # Without zoom the box keeps its vertical centre (as far as the fit allows); with zoom it moves freely.
    centred = ((box.y0 + box.y1) / 2 - band * fit / 2 - VERTICAL_ROOM).clamp(min=torch.zeros_like(free), max=free)
    top = VERTICAL_ROOM + torch.where(plan.zoomed, plan.y_position * free, centred) + swing * fit
    place = _matrices(len(fit), m00=fit * widen, m11=fit, m02=left - lo[:, 0] * fit * widen, m12=top - lo[:, 1] * fit)
    new_widths = torch.where(plan.identity, widths, (left + span + right).ceil().long().clamp(min=1))
    out_w = -(-int(new_widths.max()) // pad_multiple) * pad_multiple
    return Layout(density, spaced, place @ a, x_factor, zoom * fit, text_h, new_widths, out_w)


def _space_letters(rel: Tensor, widths: Tensor, plan: Plan, layout: Layout) -> Tensor:
    """Letter spacing as its own horizontal pass (cheap: one 1-D lookup per column, not per pixel); the
    result is as wide as the widest spaced source. Within source column i, spaced x runs from spaced[i]
    with slope density[i]."""
    spread = (plan.spacing != 0).nonzero()[:, 0]
    if not len(spread):
        return rel
    _, _, h, w = rel.shape
    src_w = max(w, math.ceil(float(layout.spaced.gather(1, widths[:, None]).max())))
    sp, de = layout.spaced[spread], layout.density[spread]
    xs = (torch.arange(src_w, dtype=torch.float64, device=rel.device) + 0.5).expand(len(spread), -1).contiguous()
    i = (torch.searchsorted(sp.contiguous(), xs, right=True) - 1).clamp(0, w - 1)
    x_src = torch.where(xs <= sp[:, -1:], i + (xs - sp.gather(1, i)) / de.gather(1, i), w + xs - sp[:, -1:])
    gy = (torch.arange(h, device=rel.device, dtype=rel.dtype) + 0.5) * 2 / h - 1
    grid = torch.stack(torch.broadcast_tensors((2 * x_src / w - 1).to(rel.dtype)[:, None, :], gy[None, :, None]),
                       dim=-1)
    warped = F.grid_sample(rel[spread], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.pad(rel, (0, src_w - w)).index_copy(0, spread, warped)


def _resample(rel: Tensor, widths: Tensor, plan: Plan, layout: Layout) -> Tensor:
    """The source ink (B, 1, H, W) laid out: (B, 1, H, out_w) ink, baseline curl included."""
    b, _, h, _ = rel.shape
    rel = _space_letters(rel, widths, plan, layout)
    src_w = rel.shape[3]
    # Shrinking aliases (thin strokes vanish between samples): low-pass first, sigma ~ 0.5 / scale.
    aa_x = 0.5 * (1 / layout.x_factor.clamp(max=1) ** 2 - 1).sqrt()
    aa_y = 0.5 * (1 / layout.y_factor.clamp(max=1) ** 2 - 1).sqrt()
    rel = _on_subset(rel, (aa_x > 0.25) | (aa_y > 0.25), lambda x, k: _gaussian_blur(x, aa_x[k], aa_y[k]))
    # Output pixel centres -> normalised source coordinates, through one 3x3 matrix per sample.
    to_grid = _matrices(b, m00=2 / src_w, m02=-1.0, m11=2 / h, m12=-1.0) @ torch.linalg.inv(layout.matrix)
    g = to_grid.to(rel.dtype)[:, :, :, None, None]  # (B, 3, 3, 1, 1)
    xo = torch.arange(layout.out_w, device=rel.device, dtype=rel.dtype) + 0.5
    yo: Tensor = (torch.arange(h, device=rel.device, dtype=rel.dtype) + 0.5)[:, None]
    if bool((plan.curl > 0).any()):
        # Output column x shows the placed text moved down by amp * sin(2 pi x / period + phase).
        amp, period = (plan.curl * layout.text_h).to(rel.dtype), (plan.curl_period * layout.text_h).to(rel.dtype)
        phase = (2 * math.pi * plan.curl_phase).to(rel.dtype)
        shift = amp[:, None] * torch.sin(2 * math.pi * xo[None, :] / period.clamp(min=1.0)[:, None] + phase[:, None])
        yo = yo[None] - shift[:, None, :]  # (B, H, W)
    gx, gy = (g[:, r, 0] * xo + g[:, r, 1] * yo + g[:, r, 2] for r in (0, 1))
    if bool(plan.perspective.any()):
        den = g[:, 2, 0] * xo + g[:, 2, 1] * yo + g[:, 2, 2]
        gx, gy = gx / den, gy / den
    return F.grid_sample(rel, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


# --- appearance ----------------------------------------------------------------------------------------------

def _reweigh_strokes(ink: Tensor, plan: Plan) -> Tensor:
    stroke = plan.stroke.to(ink.dtype)

    def reweigh(x: Tensor, k: Tensor) -> Tensor:
        t = stroke[k].view(-1, 1, 1, 1)
        bold, thin = _dilate(x), -_dilate(-x)
        return x + t.clamp(min=0) * (bold - x) + (-t).clamp(min=0) * (thin - x)

    return _on_subset(ink, stroke != 0, reweigh)


def _scan_effects(ink: Tensor, plan: Plan, widths: Tensor) -> Tensor:
    """Scans binarised (after an optional blur) with broken strokes, and specks; in ink, so that the tone
    maps them like the text."""
    b, _, h, out_w = ink.shape
    broken, density = plan.broken, plan.speckle
    pixels = (broken > 0) | (density > 0)
    fields = torch.ones(0)  # (B, 2, H, W'): uniforms for specks (channel 0) and holes (1), where needed
    if bool(pixels.any()):
        k = pixels.nonzero()[:, 0]
        fields = torch.ones(b, 2, h, out_w, dtype=ink.dtype)
        fields[k] = _pixel_uniforms((plan.pixel_key[k] * 2.0**53).long(), widths[k], 2, h, out_w).to(ink.dtype)
        fields = fields.to(ink.device)
    sharp = plan.scan_blur
    threshold = plan.scan_threshold.to(ink.dtype)

    def binarise(x: Tensor, k: Tensor) -> Tensor:
        x = _on_subset(x, sharp[k] > 0, lambda y, j: _gaussian_blur(y, sharp[k][j]))
        # The threshold is relative to the sample's darkest ink: a word shrunk (and low-passed) keeps its strokes.
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
        kept = (x > threshold[k].view(-1, 1, 1, 1) * peak).to(x.dtype)
        if not bool((broken[k] > 0).any()):
            return kept
        holes = _blobs(fields[k, 1:2] < (broken[k] / 4).to(x.dtype).view(-1, 1, 1, 1))  # ~broken of the pixels
        return kept * (~holes).to(x.dtype)

    def speckle(x: Tensor, k: Tensor) -> Tensor:
        u, d = fields[k, :1], density[k].to(x.dtype).view(-1, 1, 1, 1)
        pepper = (u < d) | _blobs(u < d / 3)  # a third of the specks 2x2
        salt = (u > 1 - d) | _blobs(u > 1 - d / 3)
        return torch.where(pepper, torch.ones_like(x), torch.where(salt, torch.zeros_like(x), x))

    return _on_subset(_on_subset(ink, plan.scan, binarise), density > 0, speckle)


def _tone(ink: Tensor, plan: Plan, widths: Tensor, gen: torch.Generator) -> Tensor:
    """Ink (B, 1, H, W') to grey levels: text and ground at the sample's contrast, brightness and polarity;
    then the ground's texture and shading, blur, noise and JPEG (texture and noise drawn from `gen`)."""
    b, _, h, out_w = ink.shape
    dtype, dev = ink.dtype, ink.device
    contrast = plan.contrast
    level = contrast / 2 + plan.brightness * (1 - contrast)  # mean grey; both levels stay in [0, 1]
    invert = plan.invert
    ground = torch.where(invert, level - contrast / 2, level + contrast / 2).to(dtype).view(b, 1, 1, 1)
    text = torch.where(invert, level + contrast / 2, level - contrast / 2).to(dtype).view(b, 1, 1, 1)
    out = ground + (text - ground) * ink.clamp(0, 1)
    # Texture, shading and noise scale with the text's contrast: at the low end of the contrast range
    # the full amounts made words illegible on the contact sheet.
    amplitude = (plan.texture * contrast).to(dtype)
    shade = (plan.gradient * contrast).to(dtype)
    ramp = (torch.arange(out_w, device=dev, dtype=dtype)[None, :] + 0.5) / widths[:, None].to(dtype)
    ramp = torch.where(plan.gradient_right[:, None], ramp, 1 - ramp).clamp(0, 1)

    def stain(x: Tensor, k: Tensor) -> Tensor:
        # Bumps ~h/2 apart: coarser than letters, so the field shades the ground without forming strokes.
        coarse = torch.randn(len(k), 1, 3, out_w * 2 // h + 3, generator=gen).to(dev, x.dtype)
        field = F.interpolate(coarse, size=(h, out_w), mode="bicubic", align_corners=True)
        x = x + amplitude[k].view(-1, 1, 1, 1) * field * (1 - ink[k].clamp(0, 1))
        return x * (1 - shade[k, None] * ramp[k])[:, None, None, :]

    out = _on_subset(out, plan.textured, stain)
    out = _on_subset(out, plan.blurred, lambda x, k: _gaussian_blur(x, plan.blur[k]))
    sigma = (plan.noise * contrast).to(dtype)
    out = _on_subset(out, plan.noisy, lambda x, k: x + sigma[k].view(-1, 1, 1, 1) * torch.randn(
        x.shape, generator=gen).to(dev, dtype)).clamp(0, 1)
    return _on_subset(out, plan.jpeg, lambda x, k: jpeg(x, plan.jpeg_quality[k]))


def augment(gray: Tensor, widths: Tensor, params: Tensor, gen: torch.Generator,
            config: AugmentConfig, min_widths: Tensor | None = None,
            pad_multiple: int = 8) -> tuple[Tensor, Tensor]:
    """New images of the same words.

    Args:
        gray: float (B, 1, H, W) in [0, 1], 1 = white paper; the right padding (beyond ``widths``) is ignored.
        widths: int64 (B,) true widths.
        params: (B, NUM_PARAMS) uniforms from :func:`sample_params` for these samples.
        gen: CPU generator for per-pixel noise; seed it per (seed, batch) for reproducible runs.
        config: the knobs (params.yaml's ``ocr.augment``); ``enabled=False`` returns the inputs unchanged.
        min_widths: int (B,) optional minimum ink width per sample (e.g. columns the label's CTC path needs);
            narrower results are stretched horizontally.
        pad_multiple: the output batch width is a multiple of this.

    Returns:
        ``(gray, widths)``: float (B, 1, H, W') in [0, 1] with white (1) beyond each new width, and the
        new int64 widths. Same height; widths change with zoom, stretch, spacing and margins.
    """
    if not config.enabled:
        return gray, widths
    b, _, h, w = gray.shape
    widths = widths.to(gray.device)
    plan = draw_plan(params.to(device=gray.device, dtype=torch.float64), config)
    # Working on normalised ink (0 on its background and beyond its width) makes `contrast` the text's real
    # contrast: on raw pixels a thin font's grey strokes times a low contrast vanished on the contact sheet.
    rel = normalize(gray, widths)
    layout = _layout(plan, _ink_box(rel, widths), widths, h, config, min_widths, pad_multiple)
    ink = _resample(rel, widths, plan, layout)
    ink = _scan_effects(_reweigh_strokes(ink, plan), plan, layout.widths)
    out = _tone(ink, plan, layout.widths, gen)
    # Identity samples are copied; everything beyond a width is white paper.
    source = F.pad(gray, (0, max(0, layout.out_w - w)), value=1.0)[..., :layout.out_w]
    out = torch.where(plan.identity.view(b, 1, 1, 1), source, out)
    inside_w = valid_columns(layout.widths, layout.out_w)[:, None, None, :]
    return torch.where(inside_w, out, torch.ones_like(out)), layout.widths
