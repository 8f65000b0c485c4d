"""Generate the Python stubs for every .proto under protos/ (run by `make protos`; never edit the output)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import google.rpc.status_pb2
import grpc_tools
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


# Ours, and the model servers' APIs we call (vendored unchanged; their google/* imports come from
# googleapis-common-protos).
PACKAGES = ("faceplane", "torchserve_grpc", "tfserving_grpc", "kserve_grpc")


def proto_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in PROTO_ROOT.glob(f"{package}/**/*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Write stubs for all protos into out_dir (mirroring the package layout) and return the files written."""
    include = Path(grpc_tools.__file__).parent / "_proto"
    googleapis = Path(google.rpc.status_pb2.__file__).parents[2]  # holds google/rpc/status.proto
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"-I{googleapis}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    written = (p for package in PACKAGES for p in out_dir.glob(f"{package}/**/*"))
    return sorted(p for p in written if p.name.endswith(GENERATED_SUFFIXES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT)
    written = generate(parser.parse_args().out)
    print("\n".join(str(p) for p in written), file=sys.stderr)


if __name__ == "__main__":
    main()
