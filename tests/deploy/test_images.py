"""The container images and the compose file, statically (no Docker engine here): every image is non-root, has a
healthcheck, a pinned base and only its own models; compose wires the same services together, hardened."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy.local.stack import REDIS_PERSISTENCE
from deploy.tfserving.models import SERVING_ROOT

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
SERVICE_MODELS = {
    "detector": {"yunet", "mtcnn"},
    "embedder": {"dlib_resnet"},
    "emotion": {"emotion_faceplane", "emotion_faceplane_int8", "emotion_faceplane_single", "emotion_minixception"},
    "agegender": {"agegender_faceplane", "agegender_faceplane_int8", "agegender_cydral"},
    "attributes": {
        "celeba_attributes",
        "celeba_attributes_int8",
        "mask_faceplane",
        "mask_faceplane_int8",
        "mask_faceplane_single",
        "mask_mobilenetv2",
    },
    "generator": {"dcgan_faces"},
    "liveness": {"minifasnet"},
    "facemesh": {"facemesh"},
}
MODEL_SERVERS = ["torchserve", "torchserve-cuda", "tfserving", "tfserving-cuda", "triton"]
TARGETS = ["gateway", *SERVICE_MODELS, *MODEL_SERVERS, *(f"{s}-cuda" for s in SERVICE_MODELS)]
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|clang)\b")


def stages() -> dict[str, tuple[str, list[str]]]:
    """Stage name → (what it is FROM, its instructions, continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(2)
            out[current] = (match.group(1), [])
        elif current:
            out[current][1].append(line)
    return out


def chain(name: str) -> list[list[str]]:
    """The instructions of a target and of every stage it builds on, the target's first."""
    all_stages = stages()
    lines = []
    while name in all_stages:
        base, instructions = all_stages[name]
        lines.append(instructions)
        name = base
    return lines


def args() -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE.read_text(), re.MULTILINE))


def test_every_target_exists() -> None:
    assert set(TARGETS) <= set(stages())


def test_base_images_are_pinned() -> None:
    for name, image in args().items():
        if name.endswith("_IMAGE"):
            _, _, tag = image.partition(":")
            assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}={image} is not pinned"
    for name, (base, _) in stages().items():
        if not base.startswith("${") and base not in stages() and base != "scratch":
            assert ":" in base and not base.endswith(":latest"), f"{name} FROM {base}"


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_runs_unprivileged_with_a_healthcheck_and_no_build_tools(target: str) -> None:
    lines = chain(target)
    flat = [line for stage in lines for line in stage]
    users = [line.split()[1] for line in flat if line.startswith("USER ")]
    assert users and users[0].split(":")[0] not in {"0", "root"}, f"{target} runs as {users}"
    assert any(line.startswith("HEALTHCHECK ") for line in flat), target
    assert any(line.startswith(("CMD ", "ENTRYPOINT ")) for line in flat), target
    runs = " ".join(line for line in flat if line.startswith("RUN "))
    installs = " ".join(re.findall(r"apt-get install[^&;]*", runs))
    assert not BUILD_TOOLS.search(installs), f"{target} installs build tools: {installs}"


def copied_models(target: str) -> set[str]:
    """The model-repo/ folders the target's stages COPY in."""
    return {
        m.group(1)
        for stage in chain(target)
        for line in stage
        for m in [re.search(r"model-repo/(\w+)", line)]
        if line.startswith("COPY") and m
    }


@pytest.mark.parametrize("service", list(SERVICE_MODELS))
def test_a_service_image_holds_only_its_own_models(service: str) -> None:
    for target in (service, f"{service}-cuda"):
        copied = copied_models(target)
        assert copied and copied <= SERVICE_MODELS[service], (target, copied)
        assert "recipes" not in copied


@pytest.mark.parametrize("service", ["emotion", "agegender", "attributes"])
def test_a_cpu_image_holds_the_int8_variants_of_its_default_models(service: str) -> None:
    """The services load `<model>_int8` by default on ONNX Runtime (`FACEPLANE_<S>_INT8`): an image without the
    folder would run the float model without a word."""
    copied = copied_models(service)
    defaults = {model for model in copied if (REPO / "model-repo" / f"{model}_int8" / "config.toml").exists()}
    assert defaults and {f"{model}_int8" for model in defaults} <= copied, (service, copied)


@pytest.mark.parametrize("target", ["tfserving", "tfserving-cuda"])
def test_tf_serving_serves_the_exported_base_path_with_its_config(target: str) -> None:
    lines = [line for stage in chain(target) for line in stage]
    assert f"COPY --from=savedmodels --chown=10001:10001 /opt/tfserving-models {SERVING_ROOT}" in lines
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    assert f"--model_config_file={SERVING_ROOT}/models.config" in entry and "--port=8500" in entry
    export = " ".join(stages()["savedmodels"][1])
    assert "-m deploy.tfserving.models --base /opt/tfserving-models" in export


def test_triton_serves_the_repository_the_models_script_writes() -> None:
    lines = [line for stage in chain("triton") for line in stage]
    assert "COPY --from=triton-models --chown=10001:10001 /opt/triton-models /models" in lines
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    assert "--model-repository=/models" in entry and "--grpc-port=8001" in entry
    assert "-m deploy.kserve.models --triton /opt/triton-models" in " ".join(stages()["triton-models"][1])


def test_the_gateway_image_carries_the_key_commands() -> None:
    copied = " ".join(line for stage in chain("gateway") for line in stage if line.startswith("COPY"))
    assert "faceplane_client" in copied and " gateway gateway" in copied


def test_the_build_context_leaves_out_data_caches_and_tests() -> None:
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".cache", ".git", "tests", "model-repo/recipes", "var"} <= ignored


def test_compose_runs_every_service_hardened_and_wired() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"redis", "gateway", "prometheus", *SERVICE_MODELS} <= set(services)
    dockerfile_targets = set(stages())
    for name in ["gateway", *SERVICE_MODELS]:
        service = services[name]
        assert service["build"]["target"] in dockerfile_targets, name
        assert service["read_only"] is True and service["user"] == "10001", name
        assert "ALL" in service["cap_drop"], name
        assert service["deploy"]["resources"]["limits"], name
    gateway_env = services["gateway"]["environment"]
    for name in SERVICE_MODELS:
        assert any(name.upper() in key and str(value).startswith(f"{name}:") for key, value in gateway_env.items()), (
            name
        )
    assert tuple(services["redis"]["command"]) == REDIS_PERSISTENCE  # the same as `make run`'s and the chart's
    redis_url = services["embedder"]["environment"]["FACEPLANE_EMBEDDER_REDIS_URL"]
    assert redis_url.startswith("redis://:${FACEPLANE_REDIS_PASSWORD") and "@redis:6379/" in redis_url  # a password
    published = [name for name, s in services.items() if s.get("ports")]
    assert set(published) == {"gateway", "prometheus"}
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]  # loopback only
