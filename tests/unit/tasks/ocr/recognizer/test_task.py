"""The OCR Task as a training run makes it: the typed run section's augmentation reaches the batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqlab.core.config import parse_params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.data import write_meta
from seqlab.tasks.ocr.recognizer.task import OcrTask


@pytest.fixture
def ocr_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_meta(tmp_path / "data" / "ocr", Charset.from_name("digits_lower"), 32)
    monkeypatch.chdir(tmp_path)  # data/ocr/meta.json, as the generate stage writes it


def test_a_training_run_takes_the_augmentation_of_its_section(ocr_data: None, raw_params: dict) -> None:
    raw_params["ocr"]["augment"]["p_zoom"] = 0.25
    params = parse_params(raw_params)
    task = OcrTask.for_training(params.run_section("ocr", "crnn"), "crnn")
    assert task.augment == OcrConfig.of(params).augment and task.augment is not None and task.augment.p_zoom == 0.25
    assert (task.charset.name, task.height) == (Charset.from_name("digits_lower").name, 32)


def test_a_section_without_augmentation_is_refused(ocr_data: None, raw_params: dict) -> None:
    """The augmentation is never silently off: a section of another shape is an error, not augment=None."""
    variant = OcrConfig.of(parse_params(raw_params)).crnn  # model and train, but no augment
    with pytest.raises(TypeError, match="OcrRun"):
        OcrTask.for_training(variant, "crnn")


def test_a_params_section_is_typed_by_its_own_class(raw_params: dict) -> None:
    params = parse_params(raw_params)
    assert OcrConfig.of(params) is params.section("ocr")
    with pytest.raises(TypeError, match="params section 'kth' is a KthConfig, not OcrConfig"):
        params.section_of("kth", OcrConfig)
