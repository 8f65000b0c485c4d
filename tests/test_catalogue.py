"""The service catalogue (services/catalogue.py) is the one list of services: what reads it is built from it, and
what cannot read it (the chart, compose, the images, the Makefile) is checked against it here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from faceplane.v1 import analysis_pb2, common_pb2, detector_pb2, embedder_pb2, generator_pb2
from pydantic import ValidationError

from deploy.local import stack
from gateway.analysis import DEFAULT_FEATURES, parse_features
from gateway.errors import ApiError
from gateway.schemas import AnalyzedFace
from gateway.settings import Settings
from services.catalogue import BY_NAME, FEATURES, SERVICES

REPO = Path(__file__).resolve().parents[1]
DESCRIPTORS = {
    f.services_by_name[name].full_name: f.services_by_name[name]
    for f in (analysis_pb2.DESCRIPTOR, detector_pb2.DESCRIPTOR, embedder_pb2.DESCRIPTOR, generator_pb2.DESCRIPTOR)
    for name in f.services_by_name
}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_each_entry_names_a_real_grpc_service_and_its_folder(service) -> None:
    descriptor = DESCRIPTORS[service.grpc_service]
    assert service.stub.__name__ == f"{descriptor.name}Stub"
    assert (REPO / "services" / service.name / "__main__.py").exists()
    if service.rpc is not None:
        method = descriptor.methods_by_name[service.rpc]
        assert method.input_type.full_name == common_pb2.CropsRequest.DESCRIPTOR.full_name
        assert service.results in method.output_type.fields_by_name  # one result per crop
        assert service.features


def test_every_crop_analysis_service_answers_analyze() -> None:
    """One RPC shape for the per-face services (the embedder's Embed predates it and serves the galleries too)."""
    # every per-face service but the embedder answers Analyze; every service of analysis.proto is one of them
    assert {s.name for s in SERVICES if s.rpc and s.rpc != "Analyze"} == {"embedder"}
    for descriptor in analysis_pb2.DESCRIPTOR.services_by_name.values():
        assert "Analyze" in descriptor.methods_by_name, descriptor.name
        assert descriptor.full_name in {s.grpc_service for s in SERVICES}


def test_features_come_from_the_catalogue() -> None:
    assert set(AnalyzedFace.model_fields) >= set(FEATURES)
    assert parse_features(DEFAULT_FEATURES) == {"emotion", "age", "gender", "mask", "attributes"}
    with pytest.raises(ApiError):
        parse_features("emotion,bogus")


def test_gateway_urls_are_one_mapping_of_catalogue_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPLANE_GATEWAY_SERVICES__EMOTION", "emotion:1")
    assert Settings().service_urls() == {"detector": "127.0.0.1:50051", "emotion": "emotion:1"}
    assert Settings(services={"detector": ""}).service_urls() == {"emotion": "emotion:1"}
    monkeypatch.setenv("FACEPLANE_GATEWAY_SERVICES__POSE", "pose:1")
    with pytest.raises(ValidationError, match="no service"):
        Settings()


def test_the_launcher_starts_the_catalogue() -> None:
    assert [s.name for s in SERVICES] == stack.SERVICES
    assert {name: stack.DEFAULT_PORTS[name] for name in BY_NAME} == {s.name: s.port for s in SERVICES}


def test_the_chart_deploys_the_catalogue() -> None:
    values = yaml.safe_load((REPO / "deploy" / "helm" / "faceplane" / "values.yaml").read_text())
    assert {name: v["port"] for name, v in values["services"].items()} == {s.name: s.port for s in SERVICES}


def test_compose_runs_the_catalogue() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]["environment"]
    urls = {k.removeprefix("FACEPLANE_GATEWAY_SERVICES__").lower(): v for k, v in gateway.items() if "SERVICES__" in k}
    assert urls == {s.name: f"{s.name}:{s.port}" for s in SERVICES}
    assert set(BY_NAME) <= set(compose["services"])


def test_every_service_has_an_image() -> None:
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (REPO / "deploy" / "docker" / "Dockerfile").read_text(), re.M))
    images = re.search(r"^IMAGES := (.*)$", (REPO / "Makefile").read_text(), re.M)
    assert images is not None
    assert set(BY_NAME) <= targets and set(BY_NAME) <= set(images.group(1).split())
