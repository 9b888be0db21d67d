"""scripts/timed_repro.py runs the stages in dvc.yaml's file order: that order must respect every dependency."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import REPO


def _timed_repro():
    spec = importlib.util.spec_from_file_location("timed_repro", REPO / "scripts" / "timed_repro.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dvc_yaml_lists_every_stage_after_the_stages_it_reads():
    names = _timed_repro().ordered_stages(REPO / "dvc.yaml")
    assert names[0] == "validate" and "ocr-evaluate@crnn" in names
    assert names.index("ocr-tesseract") < names.index("ocr-evaluate@crnn")  # evaluate reads the baseline's files


def test_a_stage_listed_before_what_it_reads_is_refused(tmp_path):
    (tmp_path / ".dvc").mkdir()  # a DVC repo without git, as far as DVC's resolver needs one
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  b:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n"
                                       "  a:\n    cmd: echo > a.txt\n    outs: [a.txt]\n")
    with pytest.raises(SystemExit, match="b depends on a.txt, an output of the later stage a"):
        _timed_repro().ordered_stages(tmp_path / "dvc.yaml")
