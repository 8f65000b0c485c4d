"""Write ONNX files as SavedModels in TF Serving's model base path layout: <base>/<served name>/<version>/.

    python -m deploy.tfserving.export_savedmodel [--version N] BASE NAME=FILE.onnx ...   # TensorFlow environment

`make tfserving-models` runs it for every model file of model-repo/ (see models.py). The signature is
`serving_default`, with the ONNX graph's input and output names and a dynamic batch dimension.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import onnx
import tensorflow as tf

from deploy.tfserving.onnx_to_tf import serving_function


def export(onnx_path: Path, out_dir: Path) -> None:
    serve = serving_function(onnx.load(str(onnx_path)))
    module = tf.Module()
    module.serve = serve
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve})
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)  # TF Serving polls the base path: a version folder must appear complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("base", type=Path)
    parser.add_argument("models", nargs="+", help="served name=ONNX file")
    args = parser.parse_args()
    for item in args.models:
        name, _, path = item.partition("=")
        target = args.base / name / str(args.version)
        target.parent.mkdir(parents=True, exist_ok=True)
        export(Path(path), target)
        print(f"{name}: {target}", flush=True)


if __name__ == "__main__":
    main()
