"""Ground truth as a data source: a user's own transcribed lines, read once into :class:`GtLine` records and
(:func:`gt_split`) the project's OCR data format (seqlab.tasks.ocr.data, native heights).

What :func:`read_ground_truth` reads, in the layouts the OCR tools people use write:

- **A folder**, searched recursively and read in path order, holding any mix of
  - line images ``NAME.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff`` (or ocropy's and tesstrain's
    ``NAME.bin.png``, ``NAME.nrm.png``) beside ``NAME.gt.txt`` (tesstrain, Calamari, OCR-D, ocropy). When one
    NAME has several images, the first in IMAGE_SUFFIXES order is read: the plain image before the binarised
    and the height-normalised copy ocropy writes beside it. A line is named by its path without the suffix;
  - page images beside a ``.gt.txt`` with more than one non-empty line: a page without line coordinates. Its
    lines are found by seqlab.tasks.ocr.documents.pages.find_lines (in reading order) and paired with the
    text lines in order, blank text lines ignored; another count of lines than of texts is a problem. A line is
    named ``NAME:N``, N its line number in the ``.gt.txt``;
  - PAGE XML files, read as below; the page images they name are not line images.
- **A .tsv file** of ``name<TAB>text`` rows (split at the first tab, no quoting, blank rows skipped); a name is
  an image path relative to the tsv's folder, its suffix optional (IMAGE_SUFFIXES are tried). A line is named
  ``FILE.tsv:ROW``.
- **A PAGE XML file** (any schema year: 2010, 2013, 2017, 2019): each ``TextLine`` of the ``Page`` (in
  ``TextRegion`` s, nested or in tables, in document order) is cut from the page image (``Page@imageFilename``,
  relative to the XML file or, as OCR-D workspaces have it, to a folder above it: up to the folder read, or
  the XML's parent folder for a single file) along its ``Coords`` polygon (``points="x,y x,y ..."``, or the 2010 schema's
  ``Point`` children): the polygon's bounding box, pixels outside the polygon set to white (the page ground).
  Its text is the ``Unicode`` of its own ``TextEquiv``; of several, the one with the lowest ``index`` (a missing
  index counts as 0; ties: the first), the convention that puts ground truth at index 0 beside OCR results at
  1, 2, ... A line is named ``FILE.xml#LINE_ID``.

Texts are read as UTF-8 (a byte-order mark is ignored), NFC-normalised, without the trailing newline, and kept
as written otherwise (a charset's normalisation applies where a charset is given: :func:`gt_split`).

Bad ground truth is named, never silently dropped: an image without transcription or a transcription without
image, an unreadable image (seqlab.tasks.ocr.images.read_image's one-line reasons), an empty transcription, a
PAGE line without usable coordinates, a page whose line count differs from its text's, a file that cannot be
read, and characters outside the model's charset (one line listing each character with its count). All of them
come in one :class:`GroundTruthError`, a line each, unless ``drop_bad``: then those lines are left out and one
line says how many.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from seqlab.core.errors import SeqlabError
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.data import OcrSplit
from seqlab.tasks.ocr.documents.pages import find_lines
from seqlab.tasks.ocr.images import ImageReadError, read_image

IMAGE_SUFFIXES = (".png", ".bin.png", ".nrm.png", ".tif", ".tiff", ".jpg", ".jpeg")  # preference order
GT_SUFFIX = ".gt.txt"
TSV_SUFFIX = ".tsv"
PAGE_NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/"  # + the schema's date
PAGE_GROUND = 255  # the page background a polygon's outside is set to: white
KIND = "gt"  # the kind of every line in gt_split (seqlab.tasks.ocr.data's `kinds`)
NAMES_SHOWN = 5  # lines named in the charset problem, the rest counted

# A problem's kind -> how the drop message counts its lines.
PROBLEM_KINDS = {
    "no_text": "without transcription",
    "no_image": "without image",
    "unreadable": "with an unreadable image",
    "empty": "with an empty transcription",
    "coords": "without usable coordinates",
    "page": "on pages whose lines were not found",
    "file": "in unreadable files",
    "charset": "with characters outside the charset",
}


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value, so field-wise == would raise
class GtLine:
    """One transcribed line."""

    name: str  # file stem (its path in the folder), "tsvname:row", or "page.xml#line_id"
    image: np.ndarray  # uint8 grayscale (H, W) crop of the line at its original resolution, dark text on light
    text: str  # the transcription, NFC-normalised, stripped of the trailing newline


class GroundTruthError(SeqlabError):
    """Bad ground truth: a heading line, then one line per problem (``problems``)."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class _Bad:
    kind: str  # a PROBLEM_KINDS key
    message: str  # one line, naming the file or line
    lines: int = 1  # ground-truth lines it stands for (a page's text lines, a PAGE file's lines)


_Entry = GtLine | _Bad


def read_ground_truth(source: str | Path, charset: Charset | None = None, *, drop_bad: bool = False,
                      echo: Callable[[str], None] = print) -> list[GtLine]:
    """Every line of `source` (a folder, a .tsv file or a PAGE XML file; see the module docstring), in order.

    With a `charset`, lines with characters outside it are bad (None: no check; fine-tuning that extends the
    charset passes None). Bad lines raise one GroundTruthError naming each problem on its own line, unless
    `drop_bad`: then they are left out and ``dropped N of M lines (...)`` goes to `echo`. No line at all
    (after dropping) is an error too.
    """
    source = Path(source)
    entries = list(_read_source(source))
    lines = [e for e in entries if isinstance(e, GtLine)]
    bad = [e for e in entries if isinstance(e, _Bad)]
    if charset is not None:
        outside = _outside_charset(lines, charset)
        if outside is not None:
            bad.append(outside[1])
            lines = [line for i, line in enumerate(lines) if i not in outside[0]]
    total = len(lines) + sum(b.lines for b in bad)
    if bad and not drop_bad:
        problems = [b.message for b in bad]
        heading = (f"{len(problems)} problem{'s' * (len(problems) != 1)} in the ground truth {source} "
                   f"({total} line{'s' * (total != 1)}; fix them, or drop those lines with --drop-bad):")
        raise GroundTruthError("\n".join([heading, *problems]), problems)
    if bad:
        counts: Counter[str] = Counter()
        for b in bad:
            counts[b.kind] += b.lines
        detail = ", ".join(f"{n} {PROBLEM_KINDS[kind]}" for kind, n in counts.items())
        echo(f"{source}: dropped {total - len(lines)} of {total} lines ({detail})")
    if not lines:
        raise GroundTruthError(f"{source}: no ground-truth lines to read (line images beside NAME{GT_SUFFIX}, "
                               f"a {TSV_SUFFIX} file or PAGE XML)")
    return lines


def gt_split(lines: Sequence[GtLine], charset: Charset | None = None) -> OcrSplit:
    """The lines as a native-height OCR split (seqlab.tasks.ocr.data's ``heights`` form: images.fit_split brings
    each to a model's height as predict would), kinds "gt", each line's name in ``fonts``.

    Texts are stored as given, or in `charset`'s label form (its normalize) with their labels encoded when a
    charset is given; without one, labels are empty until the split is saved and loaded with a charset
    (data.save_split with height None, data.load_split)."""
    texts = [charset.normalize(line.text) if charset else line.text for line in lines]
    labels = [charset.encode(t) for t in texts] if charset else [[] for _ in texts]
    images = [line.image for line in lines]
    return OcrSplit(images, texts, labels, np.array([im.shape[1] for im in images], dtype=np.int64),
                    [line.name for line in lines], [KIND] * len(lines))


# --- sources ------------------------------------------------------------------------------------------------

def _read_source(source: Path) -> Iterator[_Entry]:
    if source.is_dir():
        yield from _read_folder(source)
    elif not source.exists():
        raise GroundTruthError(f"{source}: no such file or folder")
    elif source.name.lower().endswith(TSV_SUFFIX):
        yield from _read_tsv(source)
    elif source.suffix.lower() == ".xml":
        root = _parse_xml(source)
        if isinstance(root, _Bad):
            yield root
        elif _page_namespace(root) is None:
            raise GroundTruthError(f"{source}: not a PAGE XML file (root element {root.tag})")
        else:
            yield from _read_page_xml(source, source.name, root, source.parent.parent)
    else:
        raise GroundTruthError(f"{source}: not a folder, a {TSV_SUFFIX} file or a PAGE XML file")


def _split_name(path: Path) -> tuple[str, str] | None:
    """(base name, suffix) of a line image or transcription file, else None; suffixes compare caselessly."""
    lower = path.name.lower()
    for suffix in sorted((GT_SUFFIX, *IMAGE_SUFFIXES), key=len, reverse=True):  # .bin.png before .png
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return path.name[:-len(suffix)], suffix
    return None


def _read_folder(root: Path) -> Iterator[_Entry]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    pages: dict[Path, ET.Element | _Bad] = {}
    for path in files:
        if path.suffix.lower() == ".xml":
            parsed = _parse_xml(path, rel=path.relative_to(root).as_posix())
            if isinstance(parsed, _Bad) or _page_namespace(parsed) is not None:  # other XML (METS...) is not ours
                pages[path] = parsed
    page_images = {_page_image(p, name, root).resolve() for p, r in pages.items() if not isinstance(r, _Bad)
                   if (name := _page_image_name(r))}
    # base path -> {"gt": path, suffix: image path}
    pairs: dict[Path, dict[str, Path]] = {}
    for path in files:
        split = _split_name(path)
        if split is None or path.resolve() in page_images:
            continue
        stem, suffix = split
        pairs.setdefault(path.parent / stem, {}).setdefault("gt" if suffix == GT_SUFFIX else suffix, path)
    units: list[tuple[Path, Callable[[], Iterator[_Entry]]]] = []
    for base, found in pairs.items():
        units.append((base, partial(_read_pair, root, base, found)))
    for path, parsed in pages.items():
        read = partial(iter, [parsed]) if isinstance(parsed, _Bad) else \
            partial(_read_page_xml, path, path.relative_to(root).as_posix(), parsed, root)
        units.append((path, read))
    for _, read_unit in sorted(units, key=lambda unit: unit[0].as_posix()):
        yield from read_unit()


def _read_pair(root: Path, base: Path, found: dict[str, Path]) -> Iterator[_Entry]:
    """A line image and its .gt.txt (or a page image and the text of its lines)."""
    name = base.relative_to(root).as_posix()
    gt = found.get("gt")
    image = next((found[s] for s in IMAGE_SUFFIXES if s in found), None)
    if gt is None:
        assert image is not None  # a pair holds a file
        yield _Bad("no_text", f"{image.relative_to(root).as_posix()}: no transcription ({base.name}{GT_SUFFIX} "
                              "is missing)")
        return
    gt_rel = gt.relative_to(root).as_posix()
    if image is None:
        yield _Bad("no_image", f"{gt_rel}: no line image beside it ({base.name} with one of "
                               f"{', '.join(IMAGE_SUFFIXES)})")
        return
    text = _read_text(gt, gt_rel)
    if isinstance(text, _Bad):
        yield text
        return
    texts = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not texts:
        yield _Bad("empty", f"{gt_rel}: empty transcription")
        return
    gray = _read_image(image, image.relative_to(root).as_posix(), len(texts))
    if isinstance(gray, _Bad):
        yield gray
    elif len(texts) == 1:
        yield GtLine(name, gray, _clean(texts[0][1]))
    else:
        yield from _page_lines(name, image.relative_to(root).as_posix(), gt_rel, gray, texts)


def _page_lines(name: str, image_rel: str, gt_rel: str, gray: np.ndarray,
                texts: list[tuple[int, str]]) -> Iterator[_Entry]:
    """A page image without coordinates: its lines as the line finder cuts them, paired with `texts` in order."""
    found = find_lines(gray)
    if len(found) != len(texts):
        yield _Bad("page", f"{image_rel}: the line finder found {len(found)} text lines on the page, "
                           f"{gt_rel} has {len(texts)}", len(texts))
        return
    for (number, text), line in zip(texts, found):
        yield GtLine(f"{name}:{number}", np.ascontiguousarray(line.image, dtype=np.uint8), _clean(text))


def _read_tsv(path: Path) -> Iterator[_Entry]:
    text = _read_text(path, path.name)
    if isinstance(text, _Bad):
        yield text
        return
    for row, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name = f"{path.name}:{row}"
        if "\t" not in line:
            yield _Bad("file", f"{name}: no tab between the image name and the text")
            continue
        image_name, transcription = line.split("\t", 1)
        image = _tsv_image(path.parent, image_name)
        if image is None:
            yield _Bad("no_image", f"{name}: image {image_name!r} not found in {path.parent}")
        elif not transcription.strip():
            yield _Bad("empty", f"{name}: empty transcription")
        else:
            gray = _read_image(image, f"{name}: {image_name}")
            yield gray if isinstance(gray, _Bad) else GtLine(name, gray, _clean(transcription))


def _tsv_image(folder: Path, name: str) -> Path | None:
    candidates = [folder / name] + [folder / f"{name}{suffix}" for suffix in IMAGE_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)


# --- PAGE XML -----------------------------------------------------------------------------------------------

def _parse_xml(path: Path, rel: str | None = None) -> ET.Element | _Bad:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        return _Bad("file", f"{rel or path.name}: not readable XML ({exc})", 0)


def _page_namespace(root: ET.Element) -> str | None:
    """The PAGE namespace of a root element ``{ns}PcGts``, else None."""
    if root.tag.startswith("{" + PAGE_NAMESPACE) and root.tag.endswith("}PcGts"):
        return root.tag[1:root.tag.index("}")]
    return None


def _page_image_name(root: ET.Element) -> str | None:
    ns = _page_namespace(root)
    page = root.find(f"{{{ns}}}Page")
    return None if page is None else page.get("imageFilename")


def _page_image(xml: Path, name: str, top: Path) -> Path:
    """The page image `name` relative to the XML file's folder or, where OCR-D workspaces put it (relative to the
    workspace), to a folder above it up to `top`; the first that exists, else the XML-relative path."""
    folders = [xml.parent, *(f for f in xml.parent.parents if f == top or top in f.parents)]
    return next((f / name for f in folders if (f / name).is_file()), xml.parent / name)


def _read_page_xml(path: Path, rel: str, root: ET.Element, top: Path) -> Iterator[_Entry]:
    ns = _page_namespace(root)
    page = root.find(f"{{{ns}}}Page")
    if page is None:
        yield _Bad("file", f"{rel}: no Page element", 0)
        return
    lines = list(page.iter(f"{{{ns}}}TextLine"))
    if not lines:
        return
    image_name = page.get("imageFilename")
    if not image_name:
        yield _Bad("unreadable", f"{rel}: the Page has no imageFilename", len(lines))
        return
    gray = _read_image(_page_image(path, image_name, top), f"{rel}: page image {image_name}", len(lines))
    if isinstance(gray, _Bad):
        yield gray
        return
    for n, line in enumerate(lines, 1):
        name = f"{rel}#{line.get('id') or f'line {n}'}"
        text = _text_equiv(line, ns)
        if text is None:
            yield _Bad("no_text", f"{name}: no transcription (no TextEquiv/Unicode)")
            continue
        if not text.strip():
            yield _Bad("empty", f"{name}: empty transcription")
            continue
        points = _polygon(line, ns)
        if isinstance(points, str):
            yield _Bad("coords", f"{name}: {points}")
            continue
        crop = cut_polygon(gray, points)
        if crop is None:
            yield _Bad("coords", f"{name}: the line's polygon lies outside the page image "
                                 f"({gray.shape[1]}x{gray.shape[0]})")
            continue
        yield GtLine(name, crop, _clean(text))


def _text_equiv(line: ET.Element, ns: str | None) -> str | None:
    """The Unicode text of the line's own TextEquiv with the lowest index (missing: 0), None without one."""
    def index(equiv: ET.Element) -> int:
        try:
            return int(equiv.get("index", "0"))
        except ValueError:
            return 0

    equivs = line.findall(f"{{{ns}}}TextEquiv")  # the line's own, not its words'
    if not equivs:
        return None
    unicode = min(equivs, key=index).find(f"{{{ns}}}Unicode")  # min keeps the first of equal indices
    return None if unicode is None else (unicode.text or "")


def _polygon(line: ET.Element, ns: str | None) -> list[tuple[int, int]] | str:
    """The line's Coords as integer points, or what is wrong with them."""
    coords = line.find(f"{{{ns}}}Coords")
    if coords is None:
        return "no Coords"
    try:
        if coords.get("points") is not None:
            pairs = [p.split(",") for p in (coords.get("points") or "").split()]
            points = [(round(float(x)), round(float(y))) for x, y in pairs]
        else:  # the 2010 schema: <Point x= y=/> children
            points = [(round(float(p.get("x", ""))), round(float(p.get("y", ""))))
                      for p in coords.findall(f"{{{ns}}}Point")]
    except ValueError:
        return f"Coords points {coords.get('points')!r} are not x,y pairs"
    if len(points) < 3:
        return f"Coords with {len(points)} points, not a polygon"
    return points


def cut_polygon(page: np.ndarray, points: Sequence[tuple[int, int]]) -> np.ndarray | None:
    """The polygon's bounding box cut from `page` (clipped to it), pixels outside the polygon set to white;
    None when nothing of it lies on the page."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x0, y0 = max(0, min(xs)), max(0, min(ys))
    x1, y1 = min(page.shape[1], max(xs) + 1), min(page.shape[0], max(ys) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = Image.new("1", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in points], fill=1, outline=1)
    crop = page[y0:y1, x0:x1].copy()
    crop[~np.asarray(mask, dtype=bool)] = PAGE_GROUND
    return crop


# --- pieces -------------------------------------------------------------------------------------------------

def _read_text(path: Path, rel: str) -> str | _Bad:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return _Bad("file", f"{rel}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        return _Bad("file", f"{rel}: cannot be read ({exc.strerror or exc})")


def _read_image(path: Path, label: str, lines: int = 1) -> np.ndarray | _Bad:
    try:
        gray = read_image(path)
    except ImageReadError as exc:
        return _Bad("unreadable", f"{label}: unreadable image ({exc})", lines)
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        return _Bad("unreadable", f"{label}: image of {gray.shape[1]}x{gray.shape[0]} pixels is too small for a line",
                    lines)
    return gray


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", text.rstrip("\r\n"))


def _outside_charset(lines: Sequence[GtLine], charset: Charset) -> tuple[set[int], _Bad] | None:
    """The indices of lines with characters outside `charset` and the one problem naming those characters."""
    known = set(charset.chars)
    counts: Counter[str] = Counter()
    bad: set[int] = set()
    for i, line in enumerate(lines):
        outside = [ch for ch in charset.normalize(line.text) if ch not in known]
        if outside:
            counts.update(outside)
            bad.add(i)
    if not bad:
        return None
    label = charset.name if charset.name != charset.chars else f"of {len(charset)} characters"
    chars = ", ".join(f"{ch!r} x{n}" for ch, n in counts.most_common())
    names = [lines[i].name for i in sorted(bad)]
    shown = ", ".join(names[:NAMES_SHOWN]) + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")
    return bad, _Bad("charset", f"characters outside the charset {label}: {chars} (in {len(bad)} "
                                f"line{'s' * (len(bad) != 1)}: {shown})", len(bad))
