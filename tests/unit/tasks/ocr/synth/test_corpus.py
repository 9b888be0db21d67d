"""The OCR text corpus (seqlab.tasks.ocr.synth.corpus) and the prose windows drawn from it (seqlab.tasks.ocr.synth.prose)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from seqlab.core.errors import DataError, SeqlabError
from seqlab.core.storage import sha256_file
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.synth import corpus
from seqlab.tasks.ocr.synth.corpus import Source, build, looks_like_code_or_art, passages, read_passages
from seqlab.tasks.ocr.synth.prose import ProseSource
from seqlab.tasks.ocr.synth.reserved_render import RESERVED_CHARS, reserved_lines

# Fortune records as the fortunes package writes them: `%` lines between records, attributions, overstrikes.
FORTUNES = """\
A \u201cday\u201d for firm decisions \u2014 or is it\u2026 mine?
\t\t-- Phathotep, 24th Century B.C.
\t\t   in a letter
%
Bank error in your favor.  Collect $200.
%
Chess tonight.
%
Be s\bsu\bur\bre\be to read _\bt_\bh_\bi_\bs twice today.

The second paragraph  of a record.
%
+------+------+
| 0x1F | main |
+------+------+
%
int main(void) { return *p++ == x[0]; }
%
Q:\tWhat is the difference between a duck?
A:\tOne leg is both the same.
%
"""
LICENSE = """\
                    GNU GENERAL PUBLIC LICENSE

  You may copy and distribute verbatim copies of the Program's
source code as you receive it, in any medium.

  NO WARRANTY

  THERE IS NO WARRANTY FOR THE PROGRAM, TO THE EXTENT PERMITTED BY APPLICABLE LAW.
"""


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Source, Source]:
    fortunes, licenses = tmp_path / "fortunes", tmp_path / "licenses"
    fortunes.mkdir()
    licenses.mkdir()
    (fortunes / "cookie").write_text(FORTUNES, encoding="utf-8")
    (fortunes / "cookie.dat").write_bytes(b"\x00\x00\x00\x02index")  # fortune's index: not text
    (fortunes / "cookie.u8").symlink_to("cookie")  # an alias: read once, not twice
    (fortunes / "art").write_text("Pictures that happen to look like prose to every check here.\n%\n")
    # A fortune quoting the license: it shares OVERLAP_WORDS words with the reserved text, so it stays out.
    (fortunes / "law").write_text("My lawyer says: you may copy and distribute verbatim copies of my jokes.\n%\n"
                                  "A jury consists of twelve persons chosen to decide who has the better lawyer.\n%\n")
    (licenses / "GPL-2").write_text(LICENSE)
    (licenses / "GPL").symlink_to("GPL-2")
    return (Source("train", "fortunes", fortunes, skip=("art",)), Source("reserved", "base-files", licenses))


def test_passages_are_clean_prose() -> None:
    assert passages(FORTUNES) == [
        'A "day" for firm decisions -- or is it... mine?',  # quotes, dash and ellipsis in ASCII; no attribution
        "Bank error in your favor. Collect $200.",  # whitespace collapsed; "Chess tonight." is too short
        "Be sure to read this twice today.",  # overstrikes (bold, underline) print their last character
        "The second paragraph of a record.",
        "Q: What is the difference between a duck? A: One leg is both the same.",  # dialogue is prose
    ]  # the table and the code are gone


@pytest.mark.parametrize(("lines", "art"), [
    (["It was the best of times, it was the worst of times."], False),
    (["Norm:   Going down?", "Coach:  What would you say to a nice beer?"], False),
    (["  ____  ", " /    \\ ", "| o  o |"], True),
    (["The Rabbits\t\t\t\tThe Cow", "Here is a verse about rabbits\t\tThe cow is of the bovine ilk;"], True),
    (["<Knghtbrd> wish me luck", "<Mercury> Knghtbrd: it's committed {ok}"], True),
    (["Film at 11:00, 12:00, 13:00, 14:00."], True),
    (["JUST SCREW-UP ONE MORE TIME!!!!!!!"], False),
])
def test_code_and_art_are_told_from_prose(lines: list[str], art: bool) -> None:
    assert looks_like_code_or_art(lines) == art


def test_build_writes_passages_and_manifest(sources: tuple[Source, Source], tmp_path: Path) -> None:
    train, reserved = sources
    manifest = build(tmp_path / "out", train, reserved)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "reserved.txt", "train.txt"]
    assert json.loads((tmp_path / "out/manifest.json").read_text()) == manifest
    train_text = read_passages("train", tmp_path / "out")
    reserved_text = read_passages("reserved", tmp_path / "out")
    assert train_text == [*passages(FORTUNES),
                          "A jury consists of twelve persons chosen to decide who has the better lawyer."]
    assert reserved_text == ["GNU GENERAL PUBLIC LICENSE",
                             "You may copy and distribute verbatim copies of the Program's source code as you "
                             "receive it, in any medium.",
                             "THERE IS NO WARRANTY FOR THE PROGRAM, TO THE EXTENT PERMITTED BY APPLICABLE LAW."]
    # every source file once (no index files, aliases or skipped names), with its digest and what it gave
    files = {(f["split"], Path(f["path"]).name): f for f in manifest["files"]}
    assert sorted(files) == [("reserved", "GPL-2"), ("train", "cookie"), ("train", "law")]
    cookie = files[("train", "cookie")]
    assert cookie["sha256"] == sha256_file(train.directory / "cookie")
    assert (cookie["passages"], cookie["chars"]) == (5, sum(map(len, passages(FORTUNES))))
    assert files[("train", "law")]["passages"] == 1 and cookie["package"] is None  # dpkg does not own tmp files
    assert manifest["splits"]["train"] == {"directory": str(train.directory), "package": "fortunes", "passages": 6,
                                           "chars": sum(map(len, train_text)), "dropped_overlap": 1}
    assert manifest["splits"]["reserved"]["passages"] == 3 and manifest["overlap_words"] == corpus.OVERLAP_WORDS


def test_build_is_byte_identical(sources: tuple[Source, Source], tmp_path: Path) -> None:
    build(tmp_path / "a", *sources)
    build(tmp_path / "b", *sources)
    for name in ("train.txt", "reserved.txt", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_missing_source_names_its_package(sources: tuple[Source, Source], tmp_path: Path) -> None:
    gone = Source("train", "fortunes", tmp_path / "nowhere")
    with pytest.raises(SeqlabError, match=r"nowhere is missing: install Debian's fortunes package") as err:
        build(tmp_path / "out", gone, sources[1])
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"reserved.txt is missing \(run the corpus stage first"):
        read_passages("reserved", tmp_path / "out")


@pytest.mark.skipif(not (corpus.TRAIN.directory.is_dir() and corpus.RESERVED.directory.is_dir()),
                    reason="Debian's fortunes package is not installed")
def test_installed_sources_stay_apart(tmp_path: Path) -> None:
    """The real corpus: no reserved passage, and no OVERLAP_WORDS words of one, in the training text."""
    manifest = build(tmp_path)
    train, reserved = read_passages("train", tmp_path), read_passages("reserved", tmp_path)
    assert len(train) > 10_000 and len(reserved) > 300
    text = "\n".join(train)
    assert not [p for p in reserved if p in text]
    grams = set().union(*(corpus._grams(p, corpus.OVERLAP_WORDS) for p in reserved))
    assert not [p for p in train if grams & corpus._grams(p, corpus.OVERLAP_WORDS)]
    assert {f["package"] for f in manifest["files"]} == {"fortunes", "fortunes-min", "base-files"}
    assert not {Path(f["path"]).name for f in manifest["files"]} & {"art", "ascii-art", "GPL", "LGPL", "GFDL"}


# --- prose windows ------------------------------------------------------------------------------------------

PROSE = ["It was the best of times, it was the worst of times, it was the age of wisdom.",
         "Bank error in your favor. Collect $200 at once.",
         "Short one.",
         "Antidisestablishmentarianism is long."]


def _is_run_of_words(window: str, passage: str) -> bool:
    return re.search(rf"(^| ){re.escape(window)}( |$)", passage) is not None


@pytest.mark.parametrize(("charset", "chars"), [("printable", (8, 40)), ("printable", (20, 20)),
                                                 ("digits_lower", (8, 30)), ("alnum", (5, 12))])
def test_windows_are_whole_words_in_range_and_deterministic(charset: str, chars: tuple[int, int]) -> None:
    cs = Charset.from_name(charset)
    source = ProseSource(PROSE, cs, *chars)
    windows = source.sample(np.random.default_rng(3), 300)
    assert windows == source.sample(np.random.default_rng(3), 300)
    assert windows != source.sample(np.random.default_rng(4), 300)
    assert all(chars[0] <= len(w) <= chars[1] for w in windows)
    assert all(cs.accepts(w) and w == " ".join(w.split()) for w in windows)
    assert all(any(_is_run_of_words(w, p) for p in PROSE) for w in windows)  # whole words of one passage
    lengths = {len(w) for w in windows}
    assert len(lengths) > (chars[1] - chars[0]) // 3  # spread over the range, not stuck at one end


def test_windows_never_span_a_word_the_charset_refuses() -> None:
    windows = ProseSource(PROSE, Charset.from_name("alnum"), 4, 60).sample(np.random.default_rng(0), 500)
    assert not [w for w in windows if "Collect at" in w or "$" in w or "," in w]
    assert "Bank error in your favor" not in windows  # "favor." ends the run for alnum: no "." in it
    assert {w for w in windows if w.startswith("Bank")} <= {"Bank", "Bank error", "Bank error in",
                                                           "Bank error in your"}


def test_no_window_possible_is_refused() -> None:
    with pytest.raises(ValueError, match="no passage holds 90\\+ characters"):
        ProseSource(PROSE, Charset.from_name("printable"), 90, 100)
    with pytest.raises(ValueError, match="min_chars <= max_chars"):
        ProseSource(PROSE, Charset.from_name("printable"), 9, 8)


def test_reserved_lines_come_from_the_reserved_text(tmp_path: Path) -> None:
    (tmp_path / "reserved.txt").write_text("\n".join(PROSE) + "\n")
    cs = Charset.from_name("printable")
    lines = reserved_lines(50, cs, seed=1, corpus_dir=tmp_path)
    assert lines == reserved_lines(50, cs, seed=1, corpus_dir=tmp_path)
    assert lines != reserved_lines(50, cs, seed=2, corpus_dir=tmp_path)
    assert all(RESERVED_CHARS[0] <= len(line) <= RESERVED_CHARS[1] for line in lines)
    assert all(any(_is_run_of_words(line, p) for p in PROSE) for line in lines)
    with pytest.raises(DataError, match="reserved.txt is missing"):
        reserved_lines(5, cs, seed=1, corpus_dir=tmp_path / "none")
