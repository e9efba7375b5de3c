"""Multiply-accumulate count of an ONNX graph (Conv, ConvTranspose, MatMul, Gemm), from shape inference.

Used to state how close a runtime gets to the CPU's arithmetic floor.
"""

from __future__ import annotations

import math
from pathlib import Path

FIXED_DIMS = {"sequence": 77}  # a free axis not named here counts as 1 (batch)


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
    # Free axes (our exports' batch and context length) counted at one image and one 77-token chunk
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_value = FIXED_DIMS.get(dim.dim_param, 1)
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


def _matmul_model(n: int, int8: bool) -> bytes:
    """An n^3 MatMul as ONNX: FP32, or INT8 as QuantizeLinear/DequantizeLinear around it (the QDQ
    form OpenVINO turns into an INT8 GEMM) ."""
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    nodes = [helper.make_node("MatMul", ["a", "b"], ["c"])]
    inits = []
    if int8:
        inits = [
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.05]),
            helper.make_tensor("za", TensorProto.UINT8, [], [128]),
            helper.make_tensor("zb", TensorProto.INT8, [], [0]),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["a", "s", "za"], ["qa"]),
            helper.make_node("DequantizeLinear", ["qa", "s", "za"], ["da"]),
            helper.make_node("QuantizeLinear", ["b", "s", "zb"], ["qb"]),
            helper.make_node("DequantizeLinear", ["qb", "s", "zb"], ["db"]),
            helper.make_node("MatMul", ["da", "db"], ["c"]),
        ]
    graph = helper.make_graph(nodes, "gemm", [a, b], [c], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _best_rate(run, n: int, repeat: int) -> float:
    import time

    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n**3 / best / 1e9


def measure_gemm_rates(n: int = 2048, repeat: int = 5) -> dict[str, float]:
    """The machine's practical GEMM rates in GMAC/s per precision, best of ``repeat`` n^3 MatMuls.

    fp32: the faster of ONNX Runtime and OpenVINO (f32); bf16: OpenVINO with a bf16 precision hint
    (equal to fp32 where the CPU has no BF16 units); int8: the faster of OpenVINO on a QDQ MatMul and
    ONNX Runtime's MatMulInteger. Each configuration's floor is its MACs at the rates of the
    precisions it runs in, so "fraction of the floor" means the same on any CPU."""
    import numpy as np
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    fa = rng.standard_normal((n, n), dtype=np.float32)
    fb = rng.standard_normal((n, n), dtype=np.float32)
    rates: dict[str, float] = {}
    cpu = ["CPUExecutionProvider"]
    fp32 = ort.InferenceSession(_matmul_model(n, int8=False), providers=cpu)
    rates["fp32_onnxruntime"] = _best_rate(lambda: fp32.run(None, {"a": fa, "b": fb}), n, repeat)
    rates["int8_onnxruntime"] = _ort_matmul_integer(n, repeat)
    try:
        import openvino as ov
    except ImportError:
        ov = None
    if ov is not None:
        core = ov.Core()
        for name, int8, hint in (("fp32", False, "f32"), ("bf16", False, "bf16"), ("int8", True, None)):
            model = core.read_model(_matmul_model(n, int8=int8), b"")
            config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
            if hint:
                config["INFERENCE_PRECISION_HINT"] = hint
            request = core.compile_model(model, "CPU", config).create_infer_request()
            rates[f"{name}_openvino"] = _best_rate(lambda r=request: r.infer([fa, fb]), n, repeat)
    rates["fp32"] = max(rates["fp32_onnxruntime"], rates.get("fp32_openvino", 0.0))
    rates["bf16"] = max(rates.get("bf16_openvino", 0.0), rates["fp32"])
    rates["int8"] = max(rates["int8_onnxruntime"], rates.get("int8_openvino", 0.0))
    return rates


def _ort_matmul_integer(n: int, repeat: int) -> float:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "q", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "a": rng.integers(0, 256, (n, n), dtype=np.uint8),
        "b": rng.integers(-128, 128, (n, n), dtype=np.int8),
    }
    return _best_rate(lambda: session.run(None, feed), n, repeat)
