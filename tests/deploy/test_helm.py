"""The Helm chart, statically: lint, render with the default and the GPU/TorchServe values, validate every manifest
against the Kubernetes schemas (offline), and check the properties a cluster operator relies on."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.local.stack import REDIS_PERSISTENCE
from gateway.settings import Settings
from services.catalogue import SERVICES
from services.runtime.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "faceplane"
GPU_VALUES = CHART / "ci" / "gpu-torchserve-values.yaml"
TFSERVING_VALUES = CHART / "ci" / "gpu-tfserving-values.yaml"
TRITON_VALUES = CHART / "ci" / "gpu-triton-values.yaml"
# The model services reach the model server through its headless Service, every pod resolved by gRPC, on the
# container's own gRPC port (a headless Service translates no ports): TorchServe 7070, TF Serving 8500, Triton 8001.
MODEL_SERVER = "dns:///rel-faceplane-modelserver-headless"
MODEL_SERVER_URL = f"{MODEL_SERVER}:7070"
KUBERNETES = "1.33.0"
CRDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}  # Prometheus Operator's and KEDA's: not in the schemas
WORKLOADS = {"Deployment", "StatefulSet"}
MODEL_SERVICES = {"detector", "embedder", "emotion", "agegender", "attributes", "generator"}


def helm_binary() -> str:
    binary = os.environ.get("FACEPLANE_HELM") or shutil.which("helm") or str(REPO / ".cache" / "bin" / "helm")
    if not Path(binary).exists() and not shutil.which(binary):
        pytest.fail("helm is missing: `make .cache/bin/helm` fetches it (make test does)")
    return binary


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", "faces"]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


VALUES_FILES = {
    "default": (),
    "gpu-torchserve": (GPU_VALUES,),
    "gpu-tfserving": (TFSERVING_VALUES,),
    "gpu-triton": (TRITON_VALUES,),
}


@pytest.fixture(scope="module", params=list(VALUES_FILES))
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(*VALUES_FILES[request.param])


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def component(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's environment: name → its value, or ("secret", key) for one taken from the release's Secret."""
    env = {}
    for e in container.get("env", []):
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "rel-faceplane-secrets", e
            env[e["name"]] = ("secret", ref["key"])
        else:
            env[e["name"]] = e["value"]
    return env


def containers_by_component(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {component(d): d["spec"]["template"]["spec"]["containers"][0] for d in docs if d["kind"] in WORKLOADS}


def the_secret(docs: list[dict[str, Any]]) -> dict[str, str]:
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["name"] == "rel-faceplane-secrets"
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in WORKLOADS:
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


@pytest.mark.parametrize("values", list(VALUES_FILES.values()), ids=list(VALUES_FILES))
def test_helm_lint_strict(values: tuple[Path, ...]) -> None:
    result = helm("lint", "--strict", str(CHART), *(a for v in values for a in ("-f", str(v))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_is_valid_kubernetes(manifests: list[dict[str, Any]]) -> None:
    checked = 0
    for doc in manifests:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises with the path of what is wrong
        checked += 1
    assert checked >= 30


def test_every_container_is_probed_limited_and_unprivileged(manifests: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(manifests):
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security.get("runAsUser", 1) != 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security.get("runAsUser", 1) != 0 and not security.get("privileged"), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where} lacks {kind}"
            if not name.endswith("test-readyz"):  # the helm test pod runs once and exits
                assert "readinessProbe" in container and "livenessProbe" in container, where


def test_model_services_use_native_grpc_health_probes(manifests: list[dict[str, Any]]) -> None:
    services = [d for d in by_kind(manifests, "Deployment") if component(d) in MODEL_SERVICES]
    assert {component(d) for d in services} == MODEL_SERVICES
    for d in services:
        container = d["spec"]["template"]["spec"]["containers"][0]
        port = container["ports"][0]["containerPort"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["grpc"]["port"] == port, (d["metadata"]["name"], probe)


def test_each_deployment_scales_on_its_own_and_survives_voluntary_disruption(manifests: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"] for d in by_kind(manifests, "Deployment")}
    pdbs = {d["metadata"]["name"] for d in by_kind(manifests, "PodDisruptionBudget")}
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in by_kind(manifests, "HorizontalPodAutoscaler")}
    assert deployments <= pdbs
    assert {n for n in deployments if not n.endswith("modelserver")} <= hpas


def test_only_the_gateway_is_reachable_and_services_only_from_it(manifests: list[dict[str, Any]]) -> None:
    policies = {
        d["metadata"]["name"].removeprefix("rel-faceplane-"): d["spec"] for d in by_kind(manifests, "NetworkPolicy")
    }
    assert {"gateway", "model-services", "redis"} <= set(policies)
    services = policies["model-services"]
    assert services["podSelector"]["matchLabels"]["faceplane.io/model-service"] == "true"
    grpc_rule = services["ingress"][0]
    assert grpc_rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "faceplane",
                    "app.kubernetes.io/instance": "rel",
                    "faceplane.io/gateway": "true",
                }
            }
        }
    ]
    assert {p["port"] for p in grpc_rule["ports"]} == {s.port for s in SERVICES}  # every catalogue service's
    redis = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in policies["redis"]["ingress"][0]["from"]
    }
    assert redis == {"embedder", "gateway"}
    # every pod of the release is selected by some policy (so nothing else is open by default)
    labelled = [d for d in manifests if d["kind"] in WORKLOADS]
    for d in labelled:
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert any(
            all(labels.get(k) == v for k, v in p["podSelector"]["matchLabels"].items()) for p in policies.values()
        ), d["metadata"]["name"]


def test_gpu_values_put_model_servers_on_gpu_nodes() -> None:
    docs = render(GPU_VALUES)
    deployments = {component(d): d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")}
    server = deployments["modelserver"]
    assert server["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert server["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and server["tolerations"]
    for name in ("detector", "embedder"):  # backend torch on their own GPU, -cuda images
        container = deployments[name]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"].endswith(f"/{name}-cuda:0.1.0")
        assert {"name": f"FACEPLANE_{name.upper()}_BACKEND", "value": "torch"} in container["env"]
    emotion_env = deployments["emotion"]["containers"][0]["env"]
    assert {"name": "FACEPLANE_EMOTION_BACKEND_URL", "value": MODEL_SERVER_URL} in emotion_env
    assert "nvidia.com/gpu" not in deployments["gateway"]["containers"][0]["resources"]["limits"]


def test_tfserving_values_run_tf_serving_and_send_the_analysis_services_there() -> None:
    docs = render(TFSERVING_VALUES)
    deployments = {component(d): d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")}
    server = deployments["modelserver"]["containers"][0]
    assert server["image"].endswith("/tfserving-cuda:0.1.0") and server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"grpc": 8500, "http": 8501}
    assert server["readinessProbe"]["httpGet"] == {"path": "/v1/models/mtcnn-pnet", "port": "http"}
    assert "env" not in server  # TorchServe's worker setting has no meaning there
    service = next(d for d in by_kind(docs, "Service") if component(d) == "modelserver")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "grpc": "grpc",
        "http": "http",
        "metrics": 8501,
    }
    policy = next(d for d in by_kind(docs, "NetworkPolicy") if component(d) == "modelserver")
    assert [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]] == [8500, 8501]
    for name in ("emotion", "agegender", "attributes", "generator"):
        env = deployments[name]["containers"][0]["env"]
        assert {"name": f"FACEPLANE_{name.upper()}_BACKEND", "value": "tfserving"} in env
        assert {"name": f"FACEPLANE_{name.upper()}_BACKEND_URL", "value": f"{MODEL_SERVER}:8500"} in env
    headless = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("modelserver-headless"))
    assert headless["spec"]["ports"][0]["port"] == 8500
    assert {"name": "FACEPLANE_DETECTOR_BACKEND", "value": "onnx"} in deployments["detector"]["containers"][0]["env"]


def test_triton_values_run_triton_and_send_the_kserve_v2_services_there() -> None:
    docs = render(TRITON_VALUES)
    deployments = {component(d): d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")}
    server = deployments["modelserver"]["containers"][0]
    assert server["image"].endswith("/triton:0.1.0") and server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"grpc": 8001, "http": 8000, "metrics": 8002}
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    for name in ("embedder", "emotion", "agegender", "attributes", "generator"):
        env = deployments[name]["containers"][0]["env"]
        assert {"name": f"FACEPLANE_{name.upper()}_BACKEND", "value": "kserve_v2"} in env
        assert {"name": f"FACEPLANE_{name.upper()}_BACKEND_URL", "value": f"{MODEL_SERVER}:8001"} in env
    headless = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("modelserver-headless"))
    assert headless["spec"]["ports"][0]["port"] == 8001


def test_a_backend_that_is_not_the_model_servers_kind_is_refused() -> None:
    result = helm(
        "template",
        "rel",
        str(CHART),
        "--set",
        "modelServer.enabled=true",
        "--set",
        "services.emotion.backend=tfserving",
    )
    assert result.returncode != 0 and "modelServer.kind is torchserve" in result.stderr


def test_the_default_install_needs_no_gpu() -> None:
    for _, spec in pod_specs(render()):
        for container in spec["containers"]:
            assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_the_gateway_finds_every_enabled_service_and_only_those() -> None:
    docs = render(sets=("services.generator.enabled=false",))
    gateway = next(d for d in by_kind(docs, "Deployment") if component(d) == "gateway")
    env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])
    assert env["FACEPLANE_GATEWAY_SERVICES__DETECTOR"] == "dns:///rel-faceplane-detector-headless:50051"
    assert env["FACEPLANE_GATEWAY_SERVICES__GENERATOR"] == ""
    assert env["FACEPLANE_GATEWAY_AUTH"] == "true"  # API keys on unless the values say otherwise
    assert env["FACEPLANE_GATEWAY_REDIS_URL"] == ("secret", "redis-url")
    assert "generator" not in {component(d) for d in by_kind(docs, "Deployment")}
    services = {d["metadata"]["name"]: d["spec"] for d in by_kind(docs, "Service")}
    assert services["rel-faceplane-detector-headless"]["clusterIP"] == "None"  # the gateway sees every replica
    assert "clusterIP" not in services["rel-faceplane-detector"]  # unchanged, so an upgrade can apply
    assert [p["name"] for p in services["rel-faceplane-detector-headless"]["ports"]] == ["grpc"]  # scraped once
    embedder = next(d for d in by_kind(docs, "Deployment") if component(d) == "embedder")
    assert env_of(embedder["spec"]["template"]["spec"]["containers"][0])["FACEPLANE_EMBEDDER_REDIS_URL"] == (
        "secret",
        "redis-url",
    )
    assert the_secret(docs)["redis-url"].endswith("@rel-faceplane-redis:6379/0")


def test_tracing_is_off_by_default_and_points_every_pod_at_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not any("TRACING" in str(c.get("env")) for c in containers_by_component(render()).values())
    endpoint = "http://otel-collector.observability:4317"
    docs = render(sets=("tracing.enabled=true", f"tracing.otlpEndpoint={endpoint}", "tracing.sampleRatio=0.25"))
    containers = containers_by_component(docs)
    for name in ["gateway", *MODEL_SERVICES]:
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in containers[name]["env"]}
        prefix = f"FACEPLANE_{name.upper()}_"
        assert env["FACEPLANE_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.pod.name=$(FACEPLANE_POD_NAME),k8s.namespace.name=faces"
        for key in ("TRACING", "OTLP_ENDPOINT", "TRACE_SAMPLE_RATIO"):
            monkeypatch.setenv(prefix + key, env[prefix + key])
        # the names and values the chart sets are the components' own settings
        settings = Settings() if name == "gateway" else load_settings(name)
        assert (settings.tracing, settings.otlp_endpoint, settings.trace_sample_ratio) == (True, endpoint, 0.25)
    assert "TRACING" not in str(containers["redis"].get("env"))  # not ours


def test_redis_keeps_its_data() -> None:
    docs = render()
    (redis,) = by_kind(docs, "StatefulSet")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    flags = dict(zip(container["args"][1::2], container["args"][2::2], strict=True))  # after the config file
    # the same persistence as `make run`'s Redis, whose restart after a SIGKILL the durability tests check
    persistence = dict(zip(REDIS_PERSISTENCE[::2], REDIS_PERSISTENCE[1::2], strict=True))
    assert {flag: flags.get(flag) for flag in persistence} == persistence
    assert (flags["--appendonly"], flags["--appendfsync"], flags["--dir"]) == ("yes", "everysec", "/data")
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    external = render(sets=("redis.enabled=false", "redis.externalUrl=redis://redis.example:6379/0"))
    assert not by_kind(external, "StatefulSet")


def test_redis_wants_a_password_and_every_client_gets_it_from_the_secret(manifests: list[dict[str, Any]]) -> None:
    secret = the_secret(manifests)
    password = secret["redis-password"]
    assert len(password) >= 32 and password.isalnum()  # made by the chart: nothing given in the values
    assert secret["redis-url"] == f"redis://:{password}@rel-faceplane-redis:6379/0"
    assert secret["redis.conf"] == f"requirepass {password}\n"
    containers = containers_by_component(manifests)
    (redis_spec,) = (d["spec"]["template"]["spec"] for d in by_kind(manifests, "StatefulSet"))
    redis = containers["redis"]
    # the official image's entrypoint runs redis-server with a first argument ending in .conf as its config file
    config = redis["args"][0]
    assert config.endswith(".conf") and "--requirepass" not in redis["args"]  # not in the node's process list
    mount = next(m for m in redis["volumeMounts"] if config.startswith(m["mountPath"] + "/"))
    volume = next(v for v in redis_spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "rel-faceplane-secrets"
    assert volume["secret"]["items"] == [{"key": "redis.conf", "path": config.rsplit("/", 1)[1]}]
    assert env_of(redis)["REDISCLI_AUTH"] == ("secret", "redis-password")  # the readiness probe's redis-cli
    assert env_of(containers["embedder"])["FACEPLANE_EMBEDDER_REDIS_URL"] == ("secret", "redis-url")
    gateway = env_of(containers["gateway"])
    assert gateway["FACEPLANE_GATEWAY_REDIS_URL"] == gateway["FACEPLANE_REDIS_URL"] == ("secret", "redis-url")
    # the password is written nowhere else in plain
    others = yaml.safe_dump_all([d for d in manifests if d["kind"] != "Secret"])
    assert password not in others and secret["service-token"] not in others


def test_every_model_service_wants_the_token_the_gateway_sends(manifests: list[dict[str, Any]]) -> None:
    token = the_secret(manifests)["service-token"]
    assert len(token) >= 32 and token.isalnum()
    containers = containers_by_component(manifests)
    assert env_of(containers["gateway"])["FACEPLANE_GATEWAY_SERVICE_TOKEN"] == ("secret", "service-token")
    for name in MODEL_SERVICES:
        assert env_of(containers[name])[f"FACEPLANE_{name.upper()}_AUTH_TOKEN"] == ("secret", "service-token")
    if "modelserver" in containers:  # not ours: TorchServe, TF Serving and Triton know nothing of it
        assert not any(k.endswith("AUTH_TOKEN") for k in env_of(containers["modelserver"]))


def test_secrets_given_in_the_values_are_used_and_service_auth_can_be_turned_off() -> None:
    docs = render(sets=("redis.password=given-pass.1", "serviceAuth.token=given~token_2"))
    secret = the_secret(docs)
    assert secret["redis-password"] == "given-pass.1" and secret["service-token"] == "given~token_2"
    assert secret["redis-url"] == "redis://:given-pass.1@rel-faceplane-redis:6379/0"
    off = render(sets=("serviceAuth.enabled=false",))
    assert "service-token" not in the_secret(off)
    for name, container in containers_by_component(off).items():
        assert not any(k.endswith(("_AUTH_TOKEN", "_SERVICE_TOKEN")) for k in env_of(container)), name


def test_an_external_redis_url_goes_into_the_secret_not_into_the_pods() -> None:
    url = "rediss://:s3cret@redis.example:6380/0"
    docs = render(sets=("redis.enabled=false", f"redis.externalUrl={url}"))
    secret = the_secret(docs)
    assert secret["redis-url"] == url and "redis-password" not in secret
    assert "s3cret" not in yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    containers = containers_by_component(docs)
    assert env_of(containers["gateway"])["FACEPLANE_GATEWAY_REDIS_URL"] == ("secret", "redis-url")


def test_alerts_and_dashboard_ship_as_the_operator_and_grafana_want(tmp_path: Path) -> None:
    docs = render(GPU_VALUES)
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yml").read_text())
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is missing: apt-get install prometheus (make test installs it: deploy/local/debian-packages.sh)"
        )
    check = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    monitors = by_kind(docs, "ServiceMonitor")
    assert {m["spec"]["endpoints"][0]["port"] for m in monitors} == {"http", "metrics"}
    # The job names the alerts match (FaceplaneTargetDown: job=~"faceplane.*"), whatever the release is called.
    jobs = {e["relabelings"][0]["replacement"] for m in monitors for e in m["spec"]["endpoints"]}
    assert jobs == {"faceplane-gateway", "faceplane-services"}
    assert all(e["relabelings"][0]["targetLabel"] == "job" for m in monitors for e in m["spec"]["endpoints"])
    (dashboard,) = by_kind(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["faceplane.json"])["panels"]
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for metric in ("faceplane_http_request_seconds", "faceplane_grpc_server_handling_seconds",
                   "faceplane_model_batch_size", "faceplane_grpc_server_errors_total"):  # fmt: skip
        assert metric in exprs, metric


def test_helm_test_hook_calls_readyz() -> None:
    (pod,) = by_kind(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "/readyz" in " ".join(pod["spec"]["containers"][0]["command"])


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"gateway": {"port": 0}}, "gateway.port"),
        ({"services": {"emotion": {"backend": "tensorflow"}}}, "backend"),
        ({"services": {"facerec": {"enabled": True}}}, "facerec"),
        ({"gateway": {"limits": {"maxFaces": 1000}}}, "maxFaces"),
        ({"modelServer": {"gpu": {"count": 0, "resourceName": "nvidia.com/gpu"}}}, "count"),
        ({"redis": {"externalUrl": "http://not-redis"}}, "externalUrl"),
        ({"redis": {"password": "has@and/in:it"}}, "password"),  # it goes into a redis:// URL as it is
        ({"serviceAuth": {"token": "two words"}}, "token"),
        ({"serviceDefaults": {"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}}}}, "cpu"),
    ],
)
def test_a_broken_values_file_is_rejected(tmp_path: Path, values: dict[str, Any], complaint: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    result = helm("template", "rel", str(CHART), "-f", str(bad))
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_torchserve_backend_without_a_model_server_is_refused() -> None:
    result = helm("template", "rel", str(CHART), "--set", "services.emotion.backend=torchserve")
    assert result.returncode != 0 and "modelServer.enabled is false" in result.stderr


def test_the_video_worker_is_off_by_default_and_scales_on_its_queue_with_keda() -> None:
    assert not [d for d in render() if d["metadata"]["name"].endswith("video-worker")]
    docs = render(sets=("videoWorker.enabled=true", "videoWorker.replicas=3"))
    (worker,) = [d for d in by_kind(docs, "Deployment") if component(d) == "video-worker"]
    assert worker["spec"]["replicas"] == 3 and not by_kind(docs, "ScaledObject")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "gateway.video_worker"]
    assert container["image"].split("/")[-1].startswith("gateway:")
    env = env_of(container)
    assert env["FACEPLANE_GATEWAY_REDIS_URL"] == ("secret", "redis-url")
    assert env["FACEPLANE_GATEWAY_SERVICE_TOKEN"] == ("secret", "service-token")
    gateway_env = env_of(containers_by_component(docs)["gateway"])
    services = {k: v for k, v in gateway_env.items() if k.startswith("FACEPLANE_GATEWAY_SERVICES__")}
    assert services and services.items() <= env.items()  # the same services as the gateway's
    assert container["livenessProbe"]["exec"]["command"][-1] == "--alive"
    # it may reach the model services (their policy admits gateway-labelled pods) and Redis
    assert worker["spec"]["template"]["metadata"]["labels"]["faceplane.io/gateway"] == "true"
    (redis_policy,) = [d for d in by_kind(docs, "NetworkPolicy") if d["metadata"]["name"].endswith("-redis")]
    allowed = [p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
               for p in redis_policy["spec"]["ingress"][0]["from"]]  # fmt: skip
    assert "video-worker" in allowed

    scaled = render(sets=("videoWorker.enabled=true", "keda.enabled=true", "keda.maxReplicas=7"))
    test_every_manifest_is_valid_kubernetes(scaled)
    test_every_container_is_probed_limited_and_unprivileged(scaled)
    (worker,) = [d for d in by_kind(scaled, "Deployment") if component(d) == "video-worker"]
    assert "replicas" not in worker["spec"]  # KEDA owns them
    (scaler,) = by_kind(scaled, "ScaledObject")
    assert scaler["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaler["spec"]["maxReplicaCount"] == 7
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == "fp:video:jobs" and trigger["metadata"]["consumerGroup"] == "workers"
    assert trigger["metadata"]["address"] == "rel-faceplane-redis:6379"
    password_env = trigger["metadata"]["passwordFromEnv"]
    assert env_of(worker["spec"]["template"]["spec"]["containers"][0])[password_env] == ("secret", "redis-password")
