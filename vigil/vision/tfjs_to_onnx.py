"""Convert a TF.js graph model (model.json + .bin shards) to ONNX.

This script runs in the throw-away conversion venv (tensorflow-cpu + tf2onnx + onnx, pinned in
``vigil.vision.models``), never in the runtime venv, and imports nothing from Vigil.
Usage: ``python tfjs_to_onnx.py MODEL.json OUT.onnx [--dynamic-batch] [--input-size WxH]``.

The ``tensorflowjs`` package would do the loading, but it drags in tensorflow-decision-forests
and JAX; reading the format (a JSON GraphDef plus little-endian weight shards) takes a page.
Two snags of the pinned versions are handled here (DESIGN §5): tf2onnx 1.17 calls ``np.product``,
which NumPy 2 removed, and TF 2.21 rejects nodes lacking default attributes such as ``TArgs``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

if not hasattr(np, "product"):  # tf2onnx 1.17 still calls it
    np.product = np.prod  # type: ignore[attr-defined]

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework import op_def_registry

_NP_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "uint8": np.uint8}


def read_weights(model_dir: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """Decode every weight of the manifest, undoing float16 and affine uint8/uint16 quantisation."""
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        buffer = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = spec["shape"]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                qtype = np.dtype(quant["dtype"])
                raw = np.frombuffer(buffer, dtype=qtype, count=count, offset=offset)
                offset += count * qtype.itemsize
                if quant["dtype"] == "float16":
                    value = raw.astype(np.float32)
                else:
                    value = raw.astype(np.float32) * quant["scale"] + quant["min"]
                value = value.astype(_NP_DTYPES[spec["dtype"]])
            else:
                dtype = np.dtype(_NP_DTYPES[spec["dtype"]])
                value = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).copy()
                offset += count * dtype.itemsize
            weights[spec["name"]] = value.reshape(shape)
    return weights


def build_graph_def(model_json: Path, dynamic_batch: bool, input_size: tuple[int, int] | None = None
                    ) -> tuple[graph_pb2.GraphDef, list[str], list[str]]:
    """The TF GraphDef of a TF.js graph model, with weights inlined and default attributes filled;
    ``input_size`` (width, height) re-sizes an NCHW image input."""
    spec = json.loads(model_json.read_text())
    weights = read_weights(model_json.parent, spec["weightsManifest"])
    graph = json_format.ParseDict(spec["modelTopology"], graph_pb2.GraphDef(), ignore_unknown_fields=True)
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            tensor = tf.make_tensor_proto(weights[node.name].astype(dtype))
            node.attr["value"].tensor.CopyFrom(tensor)
        op_def = op_def_registry.get(node.op)
        if op_def is None:
            continue
        for attr in op_def.attr:  # TF 2.21 refuses nodes without their default attributes
            if attr.name not in node.attr and attr.HasField("default_value"):
                node.attr[attr.name].CopyFrom(attr.default_value)
        if "TArgs" not in node.attr and "num_args" in node.attr:  # _FusedConv2D, _FusedMatMul
            node.attr["TArgs"].list.type.extend([node.attr["T"].type] * node.attr["num_args"].i)
    if input_size:
        _resize_input(graph, *input_size)
    if dynamic_batch:
        _make_batch_dynamic(graph)
    signature = spec.get("signature") or spec.get("userDefinedMetadata", {}).get("signature", {})
    tensor_names = lambda names: sorted(n if ":" in n else f"{n}:0" for n in names)  # noqa: E731
    inputs, outputs = tensor_names(signature["inputs"]), tensor_names(signature["outputs"])
    return graph, inputs, outputs


def _resize_input(graph: graph_pb2.GraphDef, width: int, height: int) -> None:
    """Give the NCHW image input another height and width.

    Reshape targets are computed from shapes, so they follow; the feature pyramid's upsampling
    layers have constant output sizes, which are scaled by the same factors.
    """
    (placeholder,) = [n for n in graph.node if n.op == "Placeholder"]
    dims = placeholder.attr["shape"].shape.dim  # N, C, H, W
    scale_h, scale_w = height / dims[2].size, width / dims[3].size
    dims[2].size, dims[3].size = height, width
    consts = {n.name: n for n in graph.node if n.op == "Const"}
    size_names = {n.input[1].split(":")[0] for n in graph.node if n.op.startswith("Resize")}  # each scaled once
    for name in sorted(size_names):
        size = consts[name].attr["value"].tensor
        old_h, old_w = tf.make_ndarray(size)
        new = (old_h * scale_h, old_w * scale_w)
        if any(v != int(v) for v in new):
            sys.exit(f"input size {width}x{height} does not divide the upsampling to {old_w}x{old_h} ({name})")
        size.CopyFrom(tf.make_tensor_proto(np.array(new, tf.dtypes.as_dtype(size.dtype).as_numpy_dtype)))


def _make_batch_dynamic(graph: graph_pb2.GraphDef) -> None:
    """Let the leading (batch) dimension vary.

    These graphs fold the batch of 1 into computed ``Reshape`` targets. TF's shape inference knows
    each target statically, so every such reshape gets a constant ``[-1, *rest]`` target instead.
    """
    with tf.Graph().as_default() as probe:
        tf.graph_util.import_graph_def(graph, name="")
        static = {
            op.name: op.outputs[0].shape.as_list() for op in probe.get_operations() if op.type == "Reshape"
        }
    for node in list(graph.node):
        if node.op == "Placeholder":
            node.attr["shape"].shape.dim[0].size = -1
        shape = static.get(node.name)
        if node.op != "Reshape" or not shape or None in shape or shape[0] != 1:
            continue
        index_type = node.attr["Tshape"].type
        target = graph.node.add(name=f"{node.name}/vigil_dynamic_shape", op="Const")
        target.attr["dtype"].type = index_type
        value = np.array([-1, *shape[1:]], tf.dtypes.as_dtype(index_type).as_numpy_dtype)
        target.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        node.input[1] = target.name


def canonical_names(model) -> None:
    """Rename generated nodes, values and initializers by position, so the bytes are reproducible.

    tf2onnx numbers the names it makes from a process-wide counter whose start varies from run
    to run; the graph itself does not. Graph inputs and outputs keep their names.
    """
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    mapping: dict[str, str] = {}

    def rename(name: str, prefix: str) -> str:
        if not name or name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"{prefix}{len(mapping)}"
        return mapping[name]

    initializers = {init.name for init in graph.initializer}
    for index, node in enumerate(graph.node):
        for i, name in enumerate(node.input):
            node.input[i] = rename(name, "w" if name in initializers else "v")
        for i, name in enumerate(node.output):
            node.output[i] = rename(name, "v")
        node.name = f"{node.op_type}_{index}"
    for init in graph.initializer:
        init.name = rename(init.name, "w")
    ordered = sorted(graph.initializer, key=lambda t: int(t.name[1:]) if t.name[1:].isdigit() else -1)
    del graph.initializer[:]
    graph.initializer.extend(ordered)
    del graph.value_info[:]
    for value in [*graph.input, *graph.output]:  # symbolic dims are numbered from the counter too
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param"):
                dim.dim_param = "batch" if axis == 0 else f"{value.name}_dim{axis}"


def convert(model_json: Path, out: Path, dynamic_batch: bool = False,
            input_size: tuple[int, int] | None = None) -> None:
    import tf2onnx

    graph_def, inputs, outputs = build_graph_def(model_json, dynamic_batch, input_size)
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=inputs, output_names=outputs, opset=13, output_path=None
    )
    canonical_names(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    tmp.write_bytes(model.SerializeToString(deterministic=True))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dynamic-batch", action="store_true")
    parser.add_argument("--input-size", help="WxH, for an NCHW image input")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.input_size.split("x")) if args.input_size else None
    convert(args.model_json, args.out, args.dynamic_batch, size)


if __name__ == "__main__":
    main()
