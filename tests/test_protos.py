"""The committed stubs are exactly what `make protos` generates from the .proto files."""

from pathlib import Path

from protos.generate import PACKAGES, PROTO_ROOT, generate


def test_generated_stubs_have_not_drifted(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert fresh, "no stubs generated"
    for path in fresh:
        committed = PROTO_ROOT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} missing: run make protos"
        assert committed.read_bytes() == path.read_bytes(), f"{committed} differs from the .proto: run make protos"
    committed_all = {p.relative_to(PROTO_ROOT) for pkg in PACKAGES for p in PROTO_ROOT.glob(f"{pkg}/**/*_pb2*.py*")}
    assert committed_all == {p.relative_to(tmp_path) for p in fresh}, "stale stubs without a .proto"


def test_every_service_has_a_contract() -> None:
    from faceplane.v1 import analysis_pb2, detector_pb2, embedder_pb2, generator_pb2

    from services.catalogue import SERVICES

    services = {
        name
        for module in (analysis_pb2, detector_pb2, embedder_pb2, generator_pb2)
        for name in module.DESCRIPTOR.services_by_name
    }
    # one contract per catalogue entry, and none without one (services/catalogue.py)
    assert services == {service.grpc_service.removeprefix("faceplane.v1.") for service in SERVICES}
    embedder = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"]
    assert {"Embed", "Verify", "AddFaces", "Identify", "CreateSubject", "DeleteSubject"} <= set(
        embedder.methods_by_name
    )
