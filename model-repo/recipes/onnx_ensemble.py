"""Several trained networks as one model file: every member runs on the same input and the graph answers the mean
of their outputs (probabilities). Members are ONNX files with one input and one output of the same names.

    python -m recipes.onnx_ensemble --member 0 ENSEMBLE.onnx OUT.onnx   # one member alone again
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnx import compose, helper


def save_like(graph: onnx.GraphProto, like: onnx.ModelProto, path: Path) -> Path:
    """`graph` as a model with the opsets and IR version of `like`, checked, written to `path`."""
    model = helper.make_model(graph, opset_imports=list(like.opset_import))
    model.ir_version = like.ir_version
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


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
    return save_like(graph, models[0], path)


def member_of(ensemble: Path, index: int, path: Path) -> Path:
    """Write member `index` of an ensemble that `mean_of` wrote to `path`, alone, under the ensemble's input and
    output names: its nodes and weights are the ones prefixed m<index>_ (they keep the prefix)."""
    model = onnx.load(str(ensemble))
    prefix, output = f"m{index}_", model.graph.output[0]
    nodes = [node for node in model.graph.node if all(name.startswith(prefix) for name in node.output)]
    if not nodes:
        raise ValueError(f"{ensemble} has no member {index}")
    for node in nodes:
        node.output[:] = [output.name if name == prefix + output.name else name for name in node.output]
    graph = helper.make_graph(
        nodes, f"member_{index}_of_{model.graph.name}", list(model.graph.input), [output],
        [init for init in model.graph.initializer if init.name.startswith(prefix)],
    )  # fmt: skip
    return save_like(graph, model, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--member", type=int, required=True, help="which member (0: the first seed)")
    parser.add_argument("ensemble", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(member_of(args.ensemble, args.member, args.out))


if __name__ == "__main__":
    main()
