"""The service image carries inference only: loading the shipped artifact, classifying with it
and importing the app work with scikit-learn, scipy and matplotlib unimportable, and the
package does not ask for them (training and evaluation are pinworks-classifier-training's)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

TRAINING_ONLY = ("sklearn", "scipy", "matplotlib")

BLOCKED_RUN = f"""
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TRAINING_ONLY!r}:
            raise ImportError(f"{{name}} is a training-only library")
        return None

sys.meta_path.insert(0, Refuse())
import pinworks_classifier.app
from pinworks_classifier.model import IntentModel

model = IntentModel.load()
prediction = model.predict(["my card still hasn't arrived", "what's the weather like in paris tomorrow"])
assert prediction[0].intent == "card_arrival", prediction[0]
assert prediction[1].out_of_scope, prediction[1]
leaked = sorted(name for name in sys.modules if name.split(".")[0] in {TRAINING_ONLY!r})
assert not leaked, leaked
print("ok")
"""


def test_the_shipped_model_classifies_without_the_training_libraries() -> None:
    run = subprocess.run([sys.executable, "-c", BLOCKED_RUN], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_the_service_package_does_not_depend_on_the_training_libraries() -> None:
    required = {re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0].lower()
                for r in metadata.requires("pinworks-classifier") or []}
    assert not required & {"scikit-learn", "scipy", "matplotlib", "pinworks-classifier-training"}
