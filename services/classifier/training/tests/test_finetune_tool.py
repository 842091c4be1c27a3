"""tools/finetune_encoder.py's `--layers`: the parts of it that need no torch.

Fine-tuning itself needs torch, which neither the service nor the training package installs, so
this drives the truncation on a stand-in with the attributes a transformers BERT model has
(`encoder.layer`, `config.num_hidden_layers`)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from pinworks_classifier.model import default_artifact_dir

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.fixture
def tool(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(TOOLS))  # the tool imports its sibling build_encoder
    return importlib.import_module("finetune_encoder")


def six_layer_model() -> SimpleNamespace:
    return SimpleNamespace(
        encoder=SimpleNamespace(layer=[f"layer-{i}" for i in range(6)]),
        config=SimpleNamespace(num_hidden_layers=6),
    )


@pytest.mark.parametrize("layers", [1, 3, 4, 6])
def test_truncation_keeps_the_bottom_layers_and_says_so_in_the_config(tool: ModuleType, layers: int) -> None:
    bert = tool.truncate_layers(six_layer_model(), layers)
    assert bert.encoder.layer == [f"layer-{i}" for i in range(layers)]
    # save_pretrained writes the config: --export-only must rebuild the same depth
    assert bert.config.num_hidden_layers == layers


@pytest.mark.parametrize("layers", [0, 7, -1])
def test_truncation_refuses_a_depth_the_model_does_not_have(tool: ModuleType, layers: int) -> None:
    with pytest.raises(ValueError, match="--layers"):
        tool.truncate_layers(six_layer_model(), layers)


def test_layers_are_recorded_with_the_recipe_only_when_the_model_was_cut(
    tool: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def recipe(*options: str) -> dict[str, object]:
        monkeypatch.setattr(sys, "argv", ["finetune_encoder.py", "--out", "/nonexistent", *options])
        return dict(tool.recipe_parameters(tool.arguments()))

    # the shipped artifact's record of its encoders' recipe, which calibration_set.py compares
    # with the fold encoders' key for key
    manifest = json.loads((default_artifact_dir() / "manifest.json").read_text("utf-8"))
    shipped = manifest["parameters"]["cascade"]["finetuned"]
    assert recipe("--freeze", "0") == shipped
    assert recipe("--freeze", "0", "--threads", "1") == shipped
    assert recipe("--freeze", "0", "--layers", "3") == {**shipped, "layers": 3}
