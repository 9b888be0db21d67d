"""The OCR Task as a training run makes it: the typed run section's model and augmentation reach the modules
that act on them (docs/development.md "Where a parameter goes" lists the hops these tests walk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.core.config import parse_params
from seqlab.tasks.ocr.charset import Charset
from seqlab.tasks.ocr.config import OcrConfig
from seqlab.tasks.ocr.data import OcrSplit, write_meta
from seqlab.tasks.ocr.recognizer import augment
from seqlab.tasks.ocr.recognizer.models import CRNN, ColumnBiLSTM
from seqlab.tasks.ocr.recognizer.task import OcrTask


@pytest.fixture
def ocr_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_meta(tmp_path / "data" / "ocr", Charset.from_name("digits_lower"), 32)
    monkeypatch.chdir(tmp_path)  # data/ocr/meta.json, as the generate stage writes it


def test_a_training_run_takes_the_augmentation_of_its_section(ocr_data: None, raw_params: dict) -> None:
    raw_params["ocr"]["augment"]["p_zoom"] = 0.25
    params = parse_params(raw_params)
    task = OcrTask.for_training(params.section("ocr").run("crnn"), "crnn")
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


@pytest.mark.parametrize("variant, cls", [("crnn", CRNN), ("bilstm", ColumnBiLSTM)])
def test_the_model_hidden_size_in_params_reaches_every_lstm(ocr_data: None, raw_params: dict, variant: str,
                                                            cls: type[nn.Module]) -> None:
    """params.yaml -> load_params -> run section -> the training loop's build_model call -> nn.LSTM."""
    raw_params["ocr"][variant]["model"]["hidden_size"] = 24  # neither a constructor default nor params.yaml's
    section = parse_params(raw_params).section("ocr").run(variant)
    task = OcrTask.for_training(section, variant)
    model = task.build_model(section.model, task.data_meta(OcrSplit.unlabelled([])))  # as the loop calls it
    lstms = [m for m in model.modules() if isinstance(m, nn.LSTM)]
    assert isinstance(model, cls) and lstms and {m.hidden_size for m in lstms} == {24}
    # The checkpoint keeps the section as a dict (its on-disk form); read back, it builds the same model.
    assert task.model_section(section.model.model_dump()) == section.model


def test_a_checkpoint_from_before_a_model_key_existed_reads_back_with_the_old_default(ocr_data: None) -> None:
    task = OcrTask("crnn", Charset.from_name("digits_lower"))
    old = {"channels": [8, 16], "hidden_size": 16, "num_layers": 1, "downsample": 4, "pool": "stride",
           "frames_per_step": 1, "dropout": 0.0}  # no `collapse`, no `input_height`
    section = task.model_section(old)
    assert (section.collapse, section.input_height) == ("conv", 0)
    with pytest.raises(ValueError, match="^hidden_sise is not a known key \\(did you mean hidden_size\\?\\)$"):
        task.model_section({**old, "hidden_sise": 16})


def test_a_variant_is_built_from_its_own_model_section(ocr_data: None, raw_params: dict) -> None:
    bilstm = OcrConfig.of(parse_params(raw_params)).bilstm.model
    with pytest.raises(TypeError, match="the crnn model is built from CRNNConfig, not ColumnBiLSTMConfig"):
        OcrTask("crnn", Charset.from_name("digits_lower")).build_model(bilstm, {"charset": "0123", "height": 32})


@pytest.mark.parametrize("p_zoom", [0.0, 1.0])
def test_augment_p_zoom_in_params_reaches_the_augmenters_plan(ocr_data: None, raw_params: dict,
                                                              monkeypatch: pytest.MonkeyPatch, p_zoom: float) -> None:
    """params.yaml -> load_params -> run section -> the task -> its training batches -> augment's plan."""
    raw_params["ocr"]["augment"].update(enabled=True, p_identity=0.0, p_zoom=p_zoom)
    section = parse_params(raw_params).section("ocr").run("crnn")
    task = OcrTask.for_training(section, "crnn")
    plans: list[augment.Plan] = []
    draw_plan = augment.draw_plan

    def spy(params: torch.Tensor, cfg: augment.AugmentConfig) -> augment.Plan:
        plans.append(draw_plan(params, cfg))
        return plans[-1]

    monkeypatch.setattr(augment, "draw_plan", spy)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 40), dtype=np.uint8) for _ in range(4)]
    split = OcrSplit(images, ["1"] * 4, [[2]] * 4, np.full(4, 40), [""] * 4)
    next(task.rank_batches(split, 4, torch.Generator().manual_seed(0), 0, 1))
    (plan,) = plans
    assert plan.zoomed.tolist() == [p_zoom == 1.0] * 4
