"""Model repositories for the Open Inference Protocol servers, with every model file of model-repo/: MLServer's
(and MLServer on loopback, for the tests) and Triton's.

    python -m deploy.kserve.models                          # → .cache/mlserver-models/<model>-<key>/model-settings.json
    python -m deploy.kserve.models --triton DIR             # → DIR/<model>-<key>/{config.pbtxt,1/model.onnx}

MLServer runs in its own environment (`make tools-mlserver`, .cache/mlserver: it pins protobuf < 7, which our
gRPC stubs outgrew) with our runtime (mlserver_runtime.py). Triton runs the same ONNX files with its ONNX Runtime
backend (on the GPU where it has one); its repository is only written and checked against Triton's config schema
here, never served: Triton cannot run on these machines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from deploy.local.stack import REPO_ROOT, spawn_listening
from services.runtime.backends.remote import MAX_MESSAGE_BYTES
from services.runtime.modelrepo import served_files

MLSERVER_ENV = REPO_ROOT / ".cache" / "mlserver"
DEFAULT_REPOSITORY = REPO_ROOT / ".cache" / "mlserver-models"
RUNTIME = "deploy.kserve.mlserver_runtime.OnnxModel"


def write_repository(model_repo: Path, repository: Path) -> dict[str, Path]:
    """One folder per served model file with its model-settings.json; returns served name → folder."""
    folders = {}
    for name, onnx_file in served_files(model_repo).items():
        folder = repository / name
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"name": name, "implementation": RUNTIME, "parameters": {"uri": str(onnx_file.resolve())}}
        (folder / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        folders[name] = folder
    return folders


def triton_config(name: str) -> str:
    """Triton's config.pbtxt: ONNX Runtime, inputs and outputs completed by Triton from the file. No batching by
    Triton (max_batch_size 0: tensors go through with the shapes sent): our services batch across requests
    themselves, and MTCNN's refinement stages send hundreds of windows at once."""
    return f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'


def write_triton_repository(model_repo: Path, repository: Path) -> dict[str, Path]:
    """<repository>/<served name>/config.pbtxt and 1/model.onnx for every model file; served name → folder."""
    folders = {}
    for name, onnx_file in served_files(model_repo).items():
        folder = repository / name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_file, folder / "1" / "model.onnx")
        (folder / "config.pbtxt").write_text(triton_config(name))
        folders[name] = folder
    return folders


def start_mlserver(
    repository: Path, grpc_port: int, http_port: int, metrics_port: int, log_path: Path
) -> subprocess.Popen:
    """MLServer serving `repository` as our child, in-process workers; returns once its gRPC port listens."""
    settings = {
        "host": "127.0.0.1",
        "grpc_port": grpc_port,
        "http_port": http_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
        "grpc_max_message_length": MAX_MESSAGE_BYTES,  # 4 MB, the default, is less than a big photo's P-Net input
        "load_models_at_startup": True,
    }
    (repository / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    mlserver = MLSERVER_ENV / "bin" / "mlserver"
    if not mlserver.exists():
        raise FileNotFoundError(f"{mlserver}: no MLServer environment; run `make tools-mlserver`")
    env = {"PYTHONPATH": str(REPO_ROOT), "MLSERVER_METRICS_DIR": str(log_path.parent / "mlserver-metrics")}
    return spawn_listening([str(mlserver), "start", str(repository)], env, log_path, grpc_port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repo", type=Path, default=REPO_ROOT / "model-repo")
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--triton", type=Path, help="write Triton's model repository here instead")
    args = parser.parse_args()
    written = (
        write_triton_repository(args.model_repo, args.triton)
        if args.triton
        else write_repository(args.model_repo, args.repository)
    )
    for name, folder in written.items():
        print(f"{name:<28} {folder}")


if __name__ == "__main__":
    main()
