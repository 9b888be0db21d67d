"""The OCR text corpus: English prose for line images, training and evaluation text from different sources.

The `seqlab corpus` stage (DVC stage `ocr-corpus`) writes ``data/ocr-corpus/``:

- ``train.txt``: passages of Debian's `fortunes` package (with `fortunes-min`): quotations, jokes,
  definitions and verse in /usr/share/games/fortunes, records separated by lines holding ``%``.
- ``reserved.txt``: passages of the license texts Debian's `base-files` ships in /usr/share/common-licenses
  (GPL, LGPL, GFDL, Apache, MPL, Artistic, BSD, CC0), read only by the reserved evaluation splits:
  legal prose, which a model trained on fortunes has never read.
- ``manifest.json``: every source file with its package, sha256 and the passages and characters it gave.

One passage per line: a paragraph (a blank line or a ``%`` line ends one) with overstrikes removed,
typographic quotes and dashes mapped to ASCII and whitespace collapsed. Attribution lines ("-- Mark Twain")
and the rest of their paragraph are dropped, and so are paragraphs that look like code or ASCII art
(symbol-heavy, letter-poor, runs of one symbol, columns aligned by spaces) and passages of fewer than
MIN_WORDS words. No charset filters here: the line drawers (seqlab.tasks.ocr.synth.prose) keep the words a
charset accepts, so one corpus serves every charset.

The sources are kept apart by directory, and a training passage that shares OVERLAP_WORDS consecutive
words with the reserved text is dropped as well (fortunes quote licenses now and then). Files are read in
name order, passages in file order, and a passage already kept from the same source is not kept again:
the same installed files give the same bytes.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.core import paths
from seqlab.core.errors import DataError, SeqlabError
from seqlab.core.storage import sha256_file, write_json, write_text

CORPUS_DIR = "ocr-corpus"  # data/ocr-corpus
SPLITS = ("train", "reserved")
# Debian packages scripts/install_fonts.sh installs for the corpus; base-files is on every Debian system.
CORPUS_PACKAGES = ("fortunes",)
MIN_WORDS = 3  # shorter paragraphs are headings ("Preamble", "NO WARRANTY") or fragments
# A training passage sharing this many consecutive words with the reserved text is dropped. 6 drops the 4
# fortunes that parody licenses ("damages resulting from the use of"); 5 also drops common phrases
# ("in the form of a": 19 passages).
OVERLAP_WORDS = 6

# Of the kept passages (both sources) 99% hold >= 76% letters and <= 4% symbols outside PROSE_SYMBOLS, 94%
# none; tables, code and pictures fall below or above (a URL in a long paragraph stays under the limit).
MIN_LETTER_SHARE = 0.6
MAX_SYMBOL_SHARE = 0.05
PROSE_SYMBOLS = frozenset(",.;:-'\"()/%&?!$")  # not counted as symbols
SYMBOL_RUN = re.compile(r"([^\w\s.!?])\1{3,}|_{3,}")  # "----", "====", "____": rules and drawings, not "!!!!"
ALIGNED = re.compile(r"\S(?: {3,}|[ \t]*\t[ \t]*)\S")  # columns: tables, code comments, pictures, two-column verse
LABEL = re.compile(r"^[^\s:]{1,15}:\s+")  # "Q:\t", "Norm:   ": a speaker's gap is dialogue, not a column
OVERSTRIKE = re.compile(".\b")  # "_\bA" (underlined A), "A\bA" (bold A): the last character is what shows
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TYPOGRAPHY = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-", "\u2014": "--", "\u2015": "--",
    "\u2026": "...", "\u00a0": " ", "\u00ad": "",
})
SKIP_SUFFIXES = (".dat", ".u8")  # fortune's index files, and its UTF-8 names of the same records


@dataclass(frozen=True)
class Source:
    """A directory of text files whose passages go to one corpus file."""

    split: str  # "train" or "reserved"
    package: str  # the Debian package to install when the directory is missing
    directory: Path
    skip: tuple[str, ...] = ()  # file names left out: pictures, not prose


TRAIN = Source("train", "fortunes", Path("/usr/share/games/fortunes"), skip=("art", "ascii-art"))
RESERVED = Source("reserved", "base-files", Path("/usr/share/common-licenses"))


def corpus_dir() -> Path:
    return paths.data_dir(CORPUS_DIR)


def looks_like_code_or_art(lines: Sequence[str]) -> bool:
    """True for a paragraph that is a table, code or a picture rather than prose."""
    ink = [c for c in "".join(lines) if not c.isspace()]
    letters = sum(c.isalpha() for c in ink)
    symbols = sum(not c.isalnum() and c not in PROSE_SYMBOLS for c in ink)
    return (letters < MIN_LETTER_SHARE * len(ink) or symbols > MAX_SYMBOL_SHARE * len(ink)
            or any(SYMBOL_RUN.search(line) or ALIGNED.search(LABEL.sub("", line.strip())) for line in lines))


def passages(text: str) -> list[str]:
    """The clean passages of one source file's text, in order (see the module docstring)."""
    text = CONTROL.sub("", OVERSTRIKE.sub("", text.translate(TYPOGRAPHY)))
    out: list[str] = []
    lines: list[str] = []
    attributed = False
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if not stripped or stripped == "%":  # the paragraph ends
            passage = " ".join(" ".join(lines).split())
            if len(passage.split()) >= MIN_WORDS and not looks_like_code_or_art(lines):
                out.append(passage)
            lines, attributed = [], False
        else:
            attributed = attributed or stripped.startswith("--")  # the author, and where it was said
            if not attributed:
                lines.append(line)
    return out


def source_files(source: Source) -> list[Path]:
    """The text files of `source`, by name: no symlinks (aliases of other files), index files or skipped names."""
    if not source.directory.is_dir():
        raise SeqlabError(f"{source.directory} is missing: install Debian's {source.package} package "
                          "(`sudo scripts/install_fonts.sh` installs the corpus packages)")
    return sorted(p for p in source.directory.iterdir()
                  if p.is_file() and not p.is_symlink() and p.suffix not in SKIP_SUFFIXES and p.name not in source.skip)


def _owners(files: Iterable[Path]) -> dict[Path, str]:
    """The Debian package of each file that dpkg knows (one dpkg-query); others are left out."""
    try:
        out = subprocess.run(["dpkg-query", "-S", *map(str, files)], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # not a Debian system
        return {}
    owners: dict[Path, str] = {}
    for line in out.splitlines():
        packages, sep, path = line.partition(": ")
        if sep and not line.startswith("diversion "):
            owners[Path(path)] = packages.split(",")[0].strip()
    return owners


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass
class _Read:
    path: Path
    kept: list[str]


def _read(source: Source, seen: set[str], leaks: set[tuple[str, ...]] | None = None) -> tuple[list[_Read], int]:
    """Each file's new passages (not in `seen`, no gram in `leaks`), and how many were dropped as leaks."""
    reads, dropped = [], 0
    for path in source_files(source):
        kept = []
        for passage in passages(path.read_text(encoding="utf-8", errors="replace")):
            if passage in seen:
                continue
            if leaks is not None and not leaks.isdisjoint(_grams(passage, OVERLAP_WORDS)):
                dropped += 1
                continue
            seen.add(passage)
            kept.append(passage)
        reads.append(_Read(path, kept))
    return reads, dropped


def build(out_dir: Path, train: Source = TRAIN, reserved: Source = RESERVED) -> dict[str, Any]:
    """Write train.txt, reserved.txt and manifest.json under `out_dir`; return the manifest."""
    reserved_reads, _ = _read(reserved, set())
    leaks = set().union(*(_grams(p, OVERLAP_WORDS) for r in reserved_reads for p in r.kept))
    train_reads, dropped = _read(train, set(), leaks)
    owners = _owners(r.path for r in (*reserved_reads, *train_reads))
    manifest: dict[str, Any] = {"overlap_words": OVERLAP_WORDS, "files": [], "splits": {}}
    for source, reads, leaked in ((train, train_reads, dropped), (reserved, reserved_reads, 0)):
        texts = [p for r in reads for p in r.kept]
        if not texts:
            raise SeqlabError(f"{source.directory} gave no prose passage for {source.split}.txt")
        write_text(out_dir / f"{source.split}.txt", "\n".join(texts) + "\n")
        manifest["splits"][source.split] = {"directory": str(source.directory), "package": source.package,
                                            "passages": len(texts), "chars": sum(map(len, texts)),
                                            "dropped_overlap": leaked}
        manifest["files"] += [{"split": source.split, "path": str(r.path), "package": owners.get(r.path),
                               "sha256": sha256_file(r.path), "passages": len(r.kept),
                               "chars": sum(map(len, r.kept))} for r in reads]
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def read_passages(split: str, directory: Path | None = None) -> list[str]:
    """The passages of data/ocr-corpus/<split>.txt (or of `directory`), one per line."""
    if split not in SPLITS:
        raise ValueError(f"unknown corpus split {split!r} (choose from {', '.join(SPLITS)})")
    path = (corpus_dir() if directory is None else Path(directory)) / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing (run the corpus stage first: dvc repro ocr-corpus)")
    return path.read_text(encoding="utf-8").splitlines()


def summary(manifest: dict[str, Any]) -> str:
    """One line per corpus file, for people."""
    lines = []
    for split, s in manifest["splits"].items():
        dropped = f"; {s['dropped_overlap']} dropped for sharing {manifest['overlap_words']} words with the " \
                  "reserved text" if split == "train" else ""
        lines.append(f"{split}.txt: {s['passages']} passages, {s['chars']} characters from {s['directory']} "
                     f"({s['package']}{dropped})")
    return "\n".join(lines)
