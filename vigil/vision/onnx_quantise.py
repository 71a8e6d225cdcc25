"""Quantise an ONNX model to int8 (QDQ, per-channel weights) from a calibration tensor.

Like ``tfjs_to_onnx.py`` this script runs in the throw-away conversion venv (onnx + onnxruntime,
pinned in ``models.json``) and imports nothing from Vigil.
Usage: ``python onnx_quantise.py MODEL.onnx CALIBRATION.npy OUT.onnx [--exclude NODE ...]``.

Only ``Conv`` nodes are quantised: quantising the sigmoid/concat/split tail as well collapses the
scores, and keeping the 1×1 prediction convolutions (``--exclude``) in float costs little and keeps
the boxes' accuracy. Activations are unsigned, weights signed (U8S8, what VNNI multiplies fastest);
ranges come from MinMax calibration, which is deterministic, so the bytes are reproducible.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class TensorReader(CalibrationDataReader):
    """Feeds the calibration images one by one under the model's input name."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self._batches = iter([{input_name: image[None]} for image in images])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantise(model: Path, calibration: Path, out: Path, exclude: list[str]) -> None:
    images = np.load(calibration)
    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        input_name = onnx.load(str(prepared)).graph.input[0].name
        quantize_static(
            str(prepared), str(out), TensorReader(input_name, images),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Conv"], nodes_to_exclude=exclude,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("calibration", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--exclude", nargs="*", default=[])
    args = parser.parse_args()
    quantise(args.model, args.calibration, args.out, args.exclude)


if __name__ == "__main__":
    main()
