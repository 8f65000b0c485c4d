"""Several trained networks as one model file: every member runs on the same input and the graph answers the mean
of their outputs (probabilities). Members are ONNX files with one input and one output of the same names."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import compose, helper


def mean_of(members: list[Path], path: Path) -> Path:
    """Write the ensemble of `members` to `path`: their nodes and weights side by side (prefixed m0_, m1_, …), one
    shared input, and a Mean node producing the members' output name."""
    models = [onnx.load(str(m)) for m in members]
    graphs = [compose.add_prefix(m, f"m{i}_", rename_inputs=False).graph for i, m in enumerate(models)]
    output = models[0].graph.output[0]
    mean = helper.make_node("Mean", [g.output[0].name for g in graphs], [output.name])
    graph = helper.make_graph(
        [node for g in graphs for node in g.node] + [mean], f"mean_of_{len(members)}", list(graphs[0].input),
        [output], [init for g in graphs for init in g.initializer],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=list(models[0].opset_import))
    model.ir_version = models[0].ir_version
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
