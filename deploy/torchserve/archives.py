"""Model archives for TorchServe and a TorchServe started on loopback (tests, `make run-torchserve`).

    make model-archives          # every model file in model-repo/ → .cache/model-store/<model>-<key>.mar

Each archive holds one ONNX file of a model folder and our handler (services/runtime/backends/torchserve_handler.py);
TorchServe serves it under the same name the torchserve backend asks for (`served_name`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.local.stack import REPO_ROOT, free_port, spawn_listening
from services.runtime.modelrepo import served_files

HANDLER = REPO_ROOT / "services" / "runtime" / "backends" / "torchserve_handler.py"
DEFAULT_STORE = REPO_ROOT / ".cache" / "model-store"


def build_archives(model_repo: Path, store: Path, models: list[str] | None = None) -> list[Path]:
    """One .mar per model file; an archive newer than its ONNX file and the handler is kept."""
    store.mkdir(parents=True, exist_ok=True)
    archiver = shutil.which("torch-model-archiver", path=str(Path(sys.executable).parent)) or "torch-model-archiver"
    built = []
    for name, onnx_file in served_files(model_repo, models).items():
        mar = store / f"{name}.mar"
        newest_input = max(onnx_file.stat().st_mtime, HANDLER.stat().st_mtime)
        if not mar.exists() or mar.stat().st_mtime < newest_input:
            args = [archiver, "--model-name", name, "--version", "1.0", "--serialized-file", str(onnx_file),
                    "--handler", str(HANDLER), "--export-path", str(store), "--force"]  # fmt: skip
            subprocess.run(args, check=True)
        built.append(mar)
    return built


@dataclass
class TorchServePorts:
    inference: int
    management: int
    metrics: int
    grpc_inference: int
    grpc_management: int

    @classmethod
    def free(cls) -> TorchServePorts:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


def write_config(path: Path, ports: TorchServePorts, store: Path, models: list[str]) -> None:
    """TorchServe's config.properties for a loopback server that loads the given archives at start."""
    lines = {
        "inference_address": f"http://127.0.0.1:{ports.inference}",
        "management_address": f"http://127.0.0.1:{ports.management}",
        "metrics_address": f"http://127.0.0.1:{ports.metrics}",
        "grpc_inference_address": "127.0.0.1",
        "grpc_inference_port": ports.grpc_inference,
        "grpc_management_address": "127.0.0.1",
        "grpc_management_port": ports.grpc_management,
        "model_store": store,
        "load_models": ",".join(f"{m}.mar" for m in models),
        "default_workers_per_model": 1,
        "metrics_mode": "prometheus",
        "disable_token_authorization": "true",
        "install_py_dep_per_model": "false",
        "max_request_size": 64 * 1024 * 1024,
        "max_response_size": 64 * 1024 * 1024,
        "default_response_timeout": 60,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))


def start_torchserve(
    ports: TorchServePorts, store: Path, models: list[str], work_dir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """TorchServe in the foreground as our child (dies with us); returns once its gRPC port listens. Whether the
    models are loaded is the caller's to wait for (their workers start in the background)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "config.properties"
    write_config(config, ports, store, models)
    torchserve = shutil.which("torchserve", path=str(Path(sys.executable).parent)) or "torchserve"
    args = [torchserve, "--start", "--foreground", "--ncs", "--disable-token-auth", "--ts-config", str(config),
            "--model-store", str(store)]  # fmt: skip
    # Its own TMPDIR: TorchServe keeps a pid file there and refuses to start while another server's exists.
    own = {"LOG_LOCATION": str(work_dir / "logs"), "METRICS_LOCATION": str(work_dir / "logs"), "TMPDIR": str(work_dir)}
    log = work_dir / "torchserve.log"
    return spawn_listening(args, {**own, **(env or {})}, log, ports.grpc_inference, timeout_s=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repo", type=Path, default=REPO_ROOT / "model-repo")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--models", nargs="*", help="model folders (default: all)")
    args = parser.parse_args()
    for mar in build_archives(args.model_repo, args.store, args.models):
        print(f"{mar}  {mar.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
