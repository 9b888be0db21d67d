"""On-the-fly OCR augmentation (determinism, label preservation) and the shared image normalisation."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from seqlab.tasks.ocr.config import AugmentConfig
from seqlab.tasks.ocr.normalize import crop_to_text, masked_quantiles, normalize, prepare_image
from seqlab.tasks.ocr.recognizer.augment import NUM_PARAMS, augment, jpeg, sample_params
from tests.support import load_raw_params

HEIGHT = 32
WORDS = ("hello", "Quick", "minimum", "gypsy42", "Wall", "illicit", "xylophone", "a1b2")
FONTS = ("Roboto-Regular.ttf", "OpenSans-Italic.ttf", "Lato-Bold.ttf", "Raleway-Thin.ttf")
GEOMETRY_OFF = dict(p_zoom=0.0, p_x_scale=0.0, p_margins=0.0, p_spacing=0.0, p_shear=0.0, p_rotate=0.0,
                    p_perspective=0.0, p_curl=0.0)
APPEARANCE_OFF = dict(p_stroke=0.0, p_tone=0.0, p_invert=0.0, p_texture=0.0, p_blur=0.0, p_noise=0.0, p_jpeg=0.0,
                      p_scan=0.0, p_speckle=0.0)
GEOMETRY_ALL = dict(p_identity=0.0, p_zoom=1.0, p_x_scale=1.0, p_margins=1.0, p_spacing=1.0, p_shear=1.0,
                    p_rotate=1.0, p_perspective=1.0, p_curl=1.0)
EVERYTHING = dict(GEOMETRY_ALL, p_stroke=1.0, p_tone=1.0, p_invert=0.5, p_texture=1.0, p_blur=1.0, p_noise=1.0,
                  p_jpeg=1.0, p_scan=0.5, p_speckle=0.5)


def config(**overrides) -> AugmentConfig:
    """params.yaml's ocr.augment with `overrides` (tuples as YAML lists)."""
    knobs = {**load_raw_params()["ocr"]["augment"], **overrides}
    return AugmentConfig(**{k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()})


def _font(name: str, size: int = 40) -> ImageFont.FreeTypeFont:
    spec = importlib.util.find_spec("trdg")
    path = Path(spec.origin).parent / "fonts" / "latin" / name if spec and spec.origin else None
    if path is None or not path.is_file():
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size)


def render(word: str, font: str = FONTS[0], pad: int = 4) -> np.ndarray:
    """Black-on-white uint8 word at HEIGHT rows (the font's ascent + descent + 3 px), ~`pad` px left and right."""
    face = _font(font)
    ascent, descent = face.getmetrics()
    x0, _, x1, _ = face.getbbox(word)
    margin = pad * 40 // HEIGHT
    im = Image.new("L", (x1 - min(x0, 0) + 2 * margin, ascent + descent + 4), 255)
    ImageDraw.Draw(im).text((margin - min(x0, 0), 2), word, font=face, fill=0)
    width = max(8, round(im.width * HEIGHT / im.height))
    return np.asarray(im.resize((width, HEIGHT), Image.Resampling.BILINEAR))


def batch(images: list[np.ndarray], fill: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> (B, 1, H, W) brightness in [0, 1], `fill` beyond each width, and the widths."""
    width = -(-max(im.shape[1] for im in images) // 8) * 8
    gray = np.full((len(images), 1, HEIGHT, width), fill, dtype=np.float32)
    for i, im in enumerate(images):
        gray[i, 0, :, : im.shape[1]] = im / 255.0
    return torch.from_numpy(gray), torch.tensor([im.shape[1] for im in images])


@pytest.fixture(scope="module")
def words() -> tuple[torch.Tensor, torch.Tensor]:
    return batch([render(w, FONTS[i % len(FONTS)]) for i, w in enumerate(WORDS)])


def run(gray: torch.Tensor, widths: torch.Tensor, indices=None, seed: int = 7,
        noise_seed: int = 0, **knobs) -> tuple[torch.Tensor, torch.Tensor]:
    indices = range(len(widths)) if indices is None else indices
    return augment(gray, widths, sample_params(seed, indices), torch.Generator().manual_seed(noise_seed),
                   config(**knobs))


def frame_ink(ink: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Largest ink on each image's outermost rows and columns (inside its width)."""
    rows = torch.arange(len(widths))
    return torch.stack([ink[:, 0, 0].amax(1), ink[:, 0, -1].amax(1), ink[:, 0, :, 0].amax(1),
                        ink[rows, 0, :, widths - 1].amax(1)], dim=1).amax(1)


# --- per-sample parameters ----------------------------------------------------------------------------

def test_sample_params_depend_on_seed_and_index_only():
    a = sample_params(3, [0, 1, 2, 900])
    assert a.shape == (4, NUM_PARAMS) and a.dtype == torch.float64
    assert torch.equal(a, sample_params(3, [0, 1, 2, 900]))
    assert ((a >= 0) & (a < 1)).all()
    assert not torch.equal(a, sample_params(4, [0, 1, 2, 900]))  # a new (epoch's) seed, new parameters
    assert not torch.equal(a[0], a[1])


def test_a_samples_params_do_not_depend_on_its_batch():
    alone = sample_params(3, [42])
    assert torch.equal(alone[0], sample_params(3, [7, 42, 9])[1])
    assert torch.equal(alone[0], sample_params(3, torch.tensor([42, 1]))[0])


def test_sample_params_look_uniform():
    u = sample_params(0, range(4000))
    assert abs(float(u.mean()) - 0.5) < 0.01
    assert abs(float((u < 0.1).double().mean()) - 0.1) < 0.01


# --- augment -----------------------------------------------------------------------------------------

def test_same_inputs_give_bit_identical_outputs(words):
    gray, widths = words
    first = run(gray, widths, seed=9, noise_seed=11, **EVERYTHING)
    again = run(gray.clone(), widths.clone(), seed=9, noise_seed=11, **EVERYTHING)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other_seed = run(gray, widths, seed=10, noise_seed=11, **EVERYTHING)
    assert not torch.equal(first[1], other_seed[1]) or not torch.equal(first[0], other_seed[0])


def test_a_samples_output_does_not_depend_on_its_batch(words):
    gray, widths = words
    # Without the generator-drawn effects (noise, texture) a sample's image depends only on its parameters.
    knobs = dict(EVERYTHING, p_noise=0.0, p_texture=0.0)
    out, new_widths = run(gray, widths, indices=range(10, 18), **knobs)
    for i in (0, 5):
        alone, alone_width = run(gray[i:i + 1, :, :, : widths[i]], widths[i:i + 1], indices=[10 + i], **knobs)
        assert int(alone_width) == int(new_widths[i])
        w = int(alone_width)
        assert torch.allclose(alone[0, :, :, :w], out[i, :, :, :w], atol=1e-4)


def test_geometry_never_cuts_ink_off(words):
    gray, widths = words
    extreme = dict(GEOMETRY_ALL, **APPEARANCE_OFF, zoom=(1.4, 2.5), rotate=(-8.0, 8.0), shear=(-0.6, 0.6),
                   perspective=0.2, margins=(0.0, 0.05))
    assert float(frame_ink(normalize(gray, widths), widths).max()) < 0.2  # the clean words have margins
    for epoch in range(6):
        out, new_widths = run(gray, widths, seed=7 + epoch, **extreme)
        ink = normalize(out, new_widths)
        assert float(frame_ink(ink, new_widths).max()) < 0.3, f"ink touches the border in epoch {epoch}"
        # Zoom >= 1.4 asks for more than the height: the fit keeps the ink box inside, so words get smaller
        # again but keep most of their ink (a cut-off word loses whole strokes).
        mass_in, mass_out = normalize(gray, widths).sum(dim=(1, 2, 3)), ink.sum(dim=(1, 2, 3))
        assert (mass_out > 0.4 * mass_in).all()


def test_outputs_are_valid_images_with_white_padding(words):
    gray, widths = words
    for epoch in range(4):
        out, new_widths = run(gray, widths, seed=7 + epoch, **EVERYTHING)
        assert out.shape[:3] == gray.shape[:3] and out.shape[3] % 8 == 0
        assert out.dtype == gray.dtype and new_widths.dtype == torch.long
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert (new_widths >= 1).all() and int(new_widths.max()) <= out.shape[3]
        beyond = torch.arange(out.shape[3])[None, :] >= new_widths[:, None]
        assert (out[:, 0].permute(1, 0, 2)[:, beyond] == 1.0).all()
    widths_seen = torch.stack([run(gray, widths, seed=7 + e, **EVERYTHING)[1] for e in range(4)])
    assert (widths_seen < widths).any() and (widths_seen > widths).any()  # widths follow zoom and stretch


def test_widths_grow_at_most_by_max_width_ratio(words):
    # (min_x_scale can override the cap: a slanted, zoomed-out word may need the extra columns)
    gray, widths = words
    for epoch in range(6):
        _, new_widths = run(gray, widths, seed=7 + epoch, **GEOMETRY_ALL, max_width_ratio=1.1, min_x_scale=0.1)
        assert (new_widths <= torch.ceil(widths * 1.1) + 1).all()


def test_identity_samples_are_unchanged(words):
    gray, widths = words
    out, new_widths = run(gray, widths, p_identity=1.0)
    assert torch.equal(new_widths, widths)
    assert torch.equal(out[..., : gray.shape[3]], gray[..., : out.shape[3]])


def test_disabled_config_returns_the_inputs(words):
    gray, widths = words
    out, new_widths = run(gray, widths, enabled=False)
    assert out is gray and new_widths is widths


def test_horizontal_squeeze_is_bounded_and_min_widths_are_kept(words):
    gray, widths = words
    squeeze = dict(p_identity=0.0, p_zoom=1.0, zoom=(0.5, 0.5), p_x_scale=1.0, x_scale=(0.75, 0.75),
                   min_x_scale=0.65, **APPEARANCE_OFF)
    out, new_widths = run(gray, widths, **squeeze)
    ratio = new_widths.double() / widths.double()
    assert (ratio > 0.6).all()  # zoom 0.5 * stretch 0.75 = 0.375 was raised to the floor of 0.65
    need = (widths * 1.3).long()
    out, new_widths = augment(gray, widths, sample_params(7, range(len(widths))), torch.Generator(),
                              config(**dict(squeeze, min_x_scale=0.3)), min_widths=need)
    assert (new_widths >= need).all()


def test_inversion_is_undone_by_normalisation(words):
    gray, widths = words
    out, new_widths = run(gray, widths, **{**GEOMETRY_OFF, **APPEARANCE_OFF, "p_identity": 0.0, "p_invert": 1.0})
    assert torch.equal(new_widths, widths)
    inside = torch.arange(out.shape[3])[None, :] < widths[:, None]
    assert float(out[:, 0].permute(1, 0, 2)[:, inside].median()) < 0.1  # light text on a dark ground
    diff = (normalize(out, new_widths) - normalize(gray, widths)[..., : out.shape[3]]).abs()
    assert float(diff.mean()) < 0.01


def test_appearance_changes_keep_the_word_readable_after_normalisation(words):
    gray, widths = words
    knobs = dict(GEOMETRY_OFF, **APPEARANCE_OFF)
    knobs.update(p_identity=0.0, p_tone=1.0, contrast=(0.3, 0.3), p_noise=1.0, noise=(0.05, 0.05))
    out, new_widths = run(gray, widths, **knobs)
    clean = normalize(gray, widths)[..., : out.shape[3]]
    ink = normalize(out, new_widths)
    text = clean > 0.5
    assert float(ink[text].mean()) > 0.7 and float(ink[clean < 0.05].mean()) < 0.15


def test_jpeg_matches_pillow():
    image = render("quantised", FONTS[1])
    for quality in (20, 50):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=quality)
        reference = np.asarray(Image.open(buf), dtype=np.float64)
        ours = jpeg(torch.from_numpy(image / 255.0).float()[None, None], torch.tensor([quality]))[0, 0].numpy() * 255
        artefacts = np.abs(image - reference).mean()
        assert artefacts > 1.0
        assert np.abs(ours - reference).mean() < 0.1 * artefacts


def test_config_is_validated_and_its_dump_validates_again():
    with pytest.raises(ValueError, match="p_blur"):
        config(p_blur=1.5)
    with pytest.raises(ValueError, match="low <= high"):
        config(zoom=(2.0, 1.0))
    with pytest.raises(ValueError, match="contrast"):
        config(contrast=(0.0, 1.0))
    with pytest.raises(ValueError, match="blur"):
        config(blur=0.5)
    with pytest.raises(ValueError, match="blurr"):
        config(blurr=[0.5, 1.0])
    with pytest.raises(ValueError, match="scan_threshold"):
        config(scan_threshold=(0.0, 0.5))
    with pytest.raises(ValueError, match="curl_period"):
        config(curl_period=(1.0, 5.0))
    cfg = config(blur=[0.5, 1])  # as YAML gives it
    assert cfg.blur == [0.5, 1.0]  # a list, as YAML writes it: MLflow logs "0.5,1.0" like params.yaml's
    assert AugmentConfig(**cfg.model_dump()) == cfg  # strict sections refuse a tuple where a list belongs
    assert cfg.model_copy(update={"p_blur": 0.0}).p_blur == 0.0


# --- scans: binarisation, broken strokes, specks, curl, skew of long lines -----------------------------

SCAN_ONLY = dict(GEOMETRY_OFF, **APPEARANCE_OFF, p_identity=0.0)


def ink_inside(out: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool: dark pixels inside each width."""
    inside = torch.arange(out.shape[3])[None, None, None, :] < widths[:, None, None, None]
    return (out < 0.5) & inside


def test_scans_are_black_on_white_and_the_threshold_sets_the_stroke_weight(words):
    gray, widths = words
    knobs = dict(SCAN_ONLY, p_scan=1.0, p_scan_blur=0.0, broken=(0.0, 0.0), p_tone=1.0, p_noise=1.0, p_jpeg=1.0,
                 p_invert=1.0, p_texture=1.0, p_blur=1.0)  # a scan stays binary whatever else is on
    bold, bold_w = run(gray, widths, **dict(knobs, scan_threshold=(0.2, 0.2)))
    thin, thin_w = run(gray, widths, **dict(knobs, scan_threshold=(0.8, 0.8)))
    assert torch.equal(bold_w, widths) and torch.equal(thin_w, widths)
    for out in (bold, thin):
        assert set(out.unique().tolist()) == {0.0, 1.0}
        assert float(out[:, 0, :, 0].min()) == 1.0  # white paper at the frame: not inverted
    clean = normalize(gray, widths) > 0.5
    bold_ink, thin_ink = ink_inside(bold, widths).sum((1, 2, 3)), ink_inside(thin, widths).sum((1, 2, 3))
    assert (bold_ink > thin_ink).all() and (thin_ink > 0.3 * clean.sum((1, 2, 3))).all()
    assert torch.equal(run(gray, widths, **dict(knobs, scan_threshold=(0.2, 0.2)))[0], bold)  # deterministic
    blurred, _ = run(gray, widths, **dict(knobs, p_scan_blur=1.0, scan_blur=(1.0, 1.0)))
    assert set(blurred.unique().tolist()) == {0.0, 1.0} and not torch.equal(blurred, bold)


def test_broken_strokes_only_take_ink_away(words):
    gray, widths = words
    knobs = dict(SCAN_ONLY, p_scan=1.0, p_scan_blur=0.0, scan_threshold=(0.5, 0.5))
    whole, _ = run(gray, widths, **dict(knobs, broken=(0.0, 0.0)))
    broken, _ = run(gray, widths, **dict(knobs, broken=(0.1, 0.1)))
    a, b = ink_inside(whole, widths), ink_inside(broken, widths)
    assert not (b & ~a).any()  # no ink added
    lost = 1 - b.sum() / a.sum()
    assert 0.05 < float(lost) < 0.35, float(lost)
    assert torch.equal(run(gray, widths, **dict(knobs, broken=(0.1, 0.1)))[0], broken)
    assert not torch.equal(run(gray, widths, seed=8, **dict(knobs, broken=(0.1, 0.1)))[0], broken)  # per seed


def test_specks_land_on_the_ground_and_in_the_ink_and_do_not_depend_on_the_batch(words):
    gray, widths = words
    knobs = dict(SCAN_ONLY, p_speckle=1.0, speckle=(0.01, 0.01))
    out, new_widths = run(gray, widths, indices=range(20, 28), **knobs)
    plain, plain_widths = run(gray, widths, indices=range(20, 28), **SCAN_ONLY)
    assert torch.equal(new_widths, plain_widths)
    inside = torch.arange(out.shape[3])[None, None, None, :] < new_widths[:, None, None, None]
    ground, text = (plain > 0.98) & inside, (plain < 0.02) & inside
    pepper = float((out[ground] < 0.5).double().mean())
    salt = float((out[text] > 0.5).double().mean())
    assert 0.01 < pepper < 0.03 and 0.01 < salt < 0.03, (pepper, salt)  # 1 px specks, a third of them 2x2
    for i in (0, 3):
        alone, _ = run(gray[i:i + 1, :, :, : widths[i]], widths[i:i + 1], indices=[20 + i], **knobs)
        assert torch.allclose(alone[0, :, :, : widths[i]], out[i, :, :, : widths[i]], atol=1e-4)  # specks: 0 or 1
    assert not torch.equal(run(gray, widths, seed=8, indices=range(20, 28), **knobs)[0], out)


def test_baseline_curl_moves_columns_up_and_down_and_keeps_the_ink_inside(words):
    gray, widths = words
    line, line_w = batch([render("curl of a long line with 42 words, (a-b).", FONTS[0])])
    flat, _ = run(line, line_w, **SCAN_ONLY)
    # The fit makes room for the swing: the text gets smaller (and narrower) by 1 / (1 + 2 x 0.2).
    curled, curled_w = run(line, line_w, **dict(SCAN_ONLY, p_curl=1.0, curl=(0.2, 0.2), curl_period=(3.0, 3.0)))
    assert 0.6 * line_w < curled_w < 0.9 * line_w

    def centres(out: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # ink centre row of each inked column
        ink = normalize(out, w)[0, 0]
        mass = ink.sum(0)
        return ((ink * torch.arange(HEIGHT)[:, None]).sum(0) / mass.clamp(min=1e-6))[mass > 2]

    assert float(centres(curled, curled_w).std()) > 1.5 * float(centres(flat, line_w).std())
    for epoch in range(4):  # at full strength, on every word: no ink at the border
        out, new_widths = run(gray, widths, seed=7 + epoch, **dict(SCAN_ONLY, p_curl=1.0, curl=(0.3, 0.3)))
        assert float(frame_ink(normalize(out, new_widths), new_widths).max()) < 0.3


def test_a_long_line_is_skewed_slightly_not_shrunk(words):
    gray, widths = words
    line, line_w = batch([render("a long line of text that a scanner skews slightly, 1234567890", FONTS[0])])
    knobs = dict(SCAN_ONLY, p_rotate=1.0, rotate=(4.0, 4.0))

    def rows_of_ink(out: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (normalize(out, w)[:, 0].amax(dim=2) > 0.5).sum(dim=1)

    out, new_w = run(line, line_w, **knobs)
    assert int(rows_of_ink(out, new_w)[0]) >= 0.8 * int(rows_of_ink(line, line_w)[0])  # 4 degrees: a third
    ink = normalize(out, new_w)[0, 0]
    cols = torch.nonzero(ink.amax(0) > 0.5)[:, 0]
    left, right = ink[:, cols[0]:cols[0] + 60], ink[:, cols[-1] - 60:cols[-1]]

    def centre(x: torch.Tensor) -> float:
        return float((x.sum(1) * torch.arange(HEIGHT)).sum() / x.sum())

    assert abs(centre(left) - centre(right)) > 1.0  # still skewed
    word_out, word_w = run(gray[:1], widths[:1], **knobs)  # a word keeps its full angle
    assert int(rows_of_ink(word_out, word_w)[0]) > int(rows_of_ink(gray[:1], widths[:1])[0])


# --- normalisation -----------------------------------------------------------------------------------

def test_masked_quantiles_match_numpy_on_grey_levels():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, size=(3, 500)) / 255.0
    valid = rng.random((3, 500)) < 0.7
    got = masked_quantiles(torch.from_numpy(values).float(), torch.from_numpy(valid), (0.02, 0.5, 0.98))
    for row in range(3):
        expected = np.quantile(values[row][valid[row]], [0.02, 0.5, 0.98], method="nearest")
        assert np.allclose(got[row].numpy(), expected, atol=1 / 255 + 1e-6)


def test_normalize_is_close_to_one_minus_pixel_on_clean_words(words):
    gray, widths = words
    ink = normalize(gray, widths)
    for i, w in enumerate(widths.tolist()):
        image = gray[i, 0, :, :w]
        if float(image.min()) > 0.2:  # a thin font's strokes never reach black: stretched to full ink
            assert (ink[i, 0, :, :w] >= (1 - image) - 1e-6).all() and float(ink[i].max()) == 1.0
        else:
            assert float((ink[i, 0, :, :w] - (1 - image)).abs().mean()) < 0.01, WORDS[i]


def test_light_on_dark_normalises_like_dark_on_light(words):
    gray, widths = words
    diff = (normalize(1 - gray, widths) - normalize(gray, widths)).abs()
    assert float(diff.mean()) < 0.005 and float(diff.max()) < 0.05


def test_low_contrast_grey_is_stretched(words):
    gray, widths = words
    grey = 150 / 255 - (1 - gray) * 40 / 255  # text at grey 110 on ground 150
    ink, clean = normalize(grey, widths), normalize(gray, widths)
    assert float(ink.amax(dim=(1, 2, 3)).min()) > 0.95
    assert float((ink - clean).abs().mean()) < 0.02


def test_padding_is_zero_and_ignored(words):
    gray, widths = words
    junk = gray.clone()
    beyond = (torch.arange(gray.shape[3])[None, :] >= widths[:, None])[:, None, None, :].expand_as(gray)
    junk[beyond] = torch.rand(int(beyond.sum()))
    ink = normalize(junk, widths)
    assert (ink[beyond] == 0).all()
    assert torch.equal(ink, normalize(gray, widths))
    alone = normalize(gray[2:3, :, :, : widths[2]], widths[2:3])
    assert torch.equal(alone[0], ink[2, :, :, : widths[2]])


def test_a_blank_image_is_not_stretched_into_noise():
    rng = np.random.default_rng(1)
    blank = torch.from_numpy((128 + rng.normal(0, 1.5, (1, 1, HEIGHT, 64))) / 255).float()
    assert float(normalize(blank, torch.tensor([64])).max()) < 0.6


# --- predict: crop and resize ------------------------------------------------------------------------

def photo(word_image: np.ndarray, light_text: bool = False, seed: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """The word scaled x4 in a 640x1200 noisy frame (a photo with wide margins); also its top-left corner."""
    rng = np.random.default_rng(seed)
    big = np.asarray(Image.fromarray(word_image).resize((word_image.shape[1] * 4, HEIGHT * 4)), dtype=np.float64)
    canvas = np.full((640, 1200), 235.0)
    top, left = 230, 260
    canvas[top:top + big.shape[0], left:left + big.shape[1]] = big * (235 / 255)
    canvas += rng.normal(0, 6, canvas.shape)
    if light_text:
        canvas = 255 - canvas
    return np.clip(canvas, 0, 255).astype(np.uint8), (top, left)


@pytest.mark.parametrize("light_text", [False, True])
def test_crop_to_text_removes_wide_margins_and_keeps_the_word(light_text):
    word = render("margins", FONTS[0])
    image, (top, left) = photo(word, light_text)
    cropped = crop_to_text(image)
    assert cropped.shape[0] < 0.5 * image.shape[0] and cropped.shape[1] < 0.75 * image.shape[1]
    # The crop is a window of the photo that holds the whole word, with a small margin kept.
    rows = np.flatnonzero((image != 0).any(axis=1))  # window search: find the crop's offset in the photo
    found = [(y, x) for y in range(rows[0], image.shape[0] - cropped.shape[0] + 1)
             for x in (np.flatnonzero(image[y] == cropped[0, 0]))
             if x + cropped.shape[1] <= image.shape[1] and np.array_equal(image[y, x:x + cropped.shape[1]], cropped[0])]
    assert found
    y, x = found[0]
    word_ink = np.argwhere(np.asarray(Image.fromarray(word).resize((word.shape[1] * 4, HEIGHT * 4))) < 128)
    y_lo, x_lo = word_ink.min(axis=0) + (top, left)
    y_hi, x_hi = word_ink.max(axis=0) + (top, left)
    assert y <= y_lo and x <= x_lo and y_hi < y + cropped.shape[0] and x_hi < x + cropped.shape[1]


def test_crop_to_text_leaves_tight_crops_alone():
    for i, w in enumerate(WORDS):
        tight = render(w, FONTS[i % len(FONTS)])
        assert np.array_equal(crop_to_text(tight), tight)
    # Words without ascenders or descenders leave the most room above and below, in every trdg font.
    spec = importlib.util.find_spec("trdg")
    fonts = sorted(p.name for p in (Path(spec.origin).parent / "fonts" / "latin").glob("*.ttf")) if spec else []
    for font in fonts:
        for word in ("ocean", "mix"):
            tight = render(word, font)
            assert np.array_equal(crop_to_text(tight), tight), f"{word} in {font}"
    noisy = np.clip(render("noisy") + np.random.default_rng(0).normal(0, 8, (HEIGHT, render("noisy").shape[1])),
                    0, 255).astype(np.uint8)
    assert np.array_equal(crop_to_text(noisy), noisy)
    blank = np.full((50, 80), 200, np.uint8)
    assert np.array_equal(crop_to_text(blank), blank)


def test_prepare_image_crops_then_scales_to_the_model_height():
    word = render("prepare", FONTS[2])
    image, _ = photo(word)
    prepared = prepare_image(image, HEIGHT)
    assert prepared.shape[0] == HEIGHT and prepared.dtype == np.uint8
    # Cropped to the word, its aspect is the word's (plus small margins), not the photo's 2.5:1.
    assert 0.8 * word.shape[1] < prepared.shape[1] < 1.6 * word.shape[1]
    assert np.array_equal(prepare_image(word, HEIGHT), word)
