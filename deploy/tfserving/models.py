"""SavedModels for TF Serving, and our PredictionService stand-in on loopback (tests).

    make tfserving-models   # every model file in model-repo/ → .cache/tfserving-models/<model>-<key>/1/

The export runs in the TensorFlow environment (`make tools-tf`, .cache/tools-tf): TensorFlow is 1.6 GB that no
service needs. Beside the models it writes `models.config`, TF Serving's model config file for the base path
mounted at /models (the official image's convention): `tensorflow_model_server --model_config_file=/models/
models.config`. Each service then needs only `FACEPLANE_<SERVICE>_BACKEND=tfserving` and
`…_BACKEND_URL=<host>:8500`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from deploy.local.stack import REPO_ROOT, spawn_listening
from services.runtime.modelrepo import served_files

TF_ENV = REPO_ROOT / ".cache" / "tools-tf"
DEFAULT_BASE = REPO_ROOT / ".cache" / "tfserving-models"
EXPORTER = [REPO_ROOT / "deploy" / "tfserving" / name for name in ("onnx_to_tf.py", "export_savedmodel.py")]
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}
SERVING_ROOT = "/models"  # where TF Serving's image expects the base path
VERSION = 1  # TF Serving serves the highest version folder; ours are rebuilt in place


def tf_python() -> Path:
    python = Path(os.environ.get("FACEPLANE_TFSERVING_PYTHON", TF_ENV / "bin" / "python"))
    if not python.exists():
        raise FileNotFoundError(f"{python}: no TensorFlow environment; run `make tools-tf`")
    return python


def build_model_base(model_repo: Path, base: Path, models: list[str] | None = None) -> dict[str, Path]:
    """Served name → SavedModel version folder, for every model file; one newer than its ONNX file and the
    exporter is kept."""
    files = served_files(model_repo, models)
    targets = {name: base / name / str(VERSION) for name in files}

    def stale(name: str) -> bool:
        saved = targets[name] / "saved_model.pb"
        newest_input = max(path.stat().st_mtime for path in [files[name], *EXPORTER])
        return not saved.exists() or saved.stat().st_mtime < newest_input

    todo = [f"{name}={path}" for name, path in files.items() if stale(name)]
    if todo:
        args = [str(tf_python()), "-m", "deploy.tfserving.export_savedmodel", "--version", str(VERSION), str(base)]
        args += todo
        subprocess.run(args, check=True, cwd=REPO_ROOT, env={**os.environ, **QUIET_TF})
    (base / "models.config").write_text(model_config(list(files), SERVING_ROOT))
    return targets


def model_config(names: list[str], root: str) -> str:
    """TF Serving's ModelServerConfig (protobuf text format) serving each name from <root>/<name>."""
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{root}/{name}" model_platform: "tensorflow" }}\n' for name in names
    )
    return f"model_config_list {{\n{entries}}}\n"


def start_standin(base: Path, port: int, log_path: Path) -> subprocess.Popen:
    """deploy/tfserving/server.py on 127.0.0.1:port, as our child; returns once it listens (models loaded)."""
    args = [str(tf_python()), "-m", "deploy.tfserving.server", "--model-base-path", str(base), "--port", str(port),
            "--threads", "1"]  # fmt: skip
    return spawn_listening(args, QUIET_TF, log_path, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repo", type=Path, default=REPO_ROOT / "model-repo")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    parser.add_argument("--models", nargs="*", help="model folders (default: all)")
    args = parser.parse_args()
    for name, folder in build_model_base(args.model_repo, args.base, args.models).items():
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{name:<28} {folder}  {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
