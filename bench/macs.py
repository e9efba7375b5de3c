"""Multiply-accumulate count of an ONNX graph (Conv, ConvTranspose, MatMul, Gemm), from shape inference.

Used to state how close a runtime gets to the CPU's arithmetic floor.
"""

from __future__ import annotations

import math
from pathlib import Path


def count_macs(path: Path) -> int:
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(path), load_external_data=False)  # dims of initializers are in the graph
    for init in list(model.graph.initializer):
        if init.data_location == onnx.TensorProto.EXTERNAL:
            # weights only matter by shape: turn them into typed inputs instead of reading gigabytes
            model.graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
            model.graph.initializer.remove(init)
    # ORT's symbolic inference resolves Shape->Reshape and computed Pad chains that onnx's cannot
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes: dict[str, list[int]] = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            out = shapes.get(node.output[0])
            weight = shapes.get(node.input[1])
            if out and weight and all(out):
                # out elements x (in_channels/groups x kernel area)
                total += math.prod(out) * math.prod(weight[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            if a and b and out and all(out):
                k = (
                    b[-1]
                    if (node.op_type == "Gemm" and _attr(node, "transB"))
                    else b[-2]
                    if len(b) >= 2
                    else b[0]
                )
                total += math.prod(out) * k
    return total


def _attr(node, name: str) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return attr.i
    return 0


def measure_fp32_peak(n: int = 2048, repeat: int = 5) -> float:
    """The machine's practical FP32 rate in GMAC/s: one n^3 MatMul in ONNX Runtime, best of ``repeat``.

    Measured rather than assumed, so "fraction of the floor" means the same on any CPU."""
    import time

    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "a": rng.standard_normal((n, n), dtype=np.float32),
        "b": rng.standard_normal((n, n), dtype=np.float32),
    }
    session.run(None, feed)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - start)
    return n**3 / best / 1e9
