"""`make run`: what REPLICAS= accepts; the launcher as a supervisor (a part killed with SIGKILL is started again,
SIGTERM stops everything); Redis's password and the services' token, made by the launcher and kept private."""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from faceplane.v1 import embedder_pb2, embedder_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy.local import stack
from deploy.local.stack import REPO_ROOT, Stack, available_services, free_port, replica_arg, spawn, stop, wait_http_ok
from deploy.local.supervisor import RestartPolicy, Supervisor
from faceplane_client import cli
from services.runtime.channels import token_metadata
from tests import images

ONE_FACE = images.encode(images.astronaut(), quality=90)


@pytest.mark.parametrize("value", ["detector=0", "detector=two", "detector", "=2", "redis=2", "nosuch=2"])
def test_a_bad_replica_count_or_part_is_refused(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="PART=N"):
        replica_arg(value)


@pytest.mark.parametrize("part", ["gateway", *available_services()])
def test_every_part_that_runs_can_be_replicated(part: str) -> None:
    assert replica_arg(f"{part}=3") == (part, 3)


def test_a_service_that_is_not_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout without services/generator/ (as a slim image might be) must not accept generator=2 and ignore it."""
    monkeypatch.setattr(stack, "available_services", lambda: [s for s in stack.SERVICES if s != "generator"])
    with pytest.raises(argparse.ArgumentTypeError, match="PART=N"):
        replica_arg("generator=2")


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: did not happen within {timeout_s} s"
        time.sleep(0.2)


def test_the_restart_delay_doubles_up_to_its_cap_and_gives_up_after_too_many_crashes() -> None:
    policy = RestartPolicy(initial_s=1, max_s=5, window_s=100, give_up_after=5)
    assert [policy.delay([0.0] * n, now=0.0) for n in range(1, 6)] == [1, 2, 4, 5, None]
    # crashes older than the window no longer count: a process that ran a while starts again from the first delay
    assert policy.delay([0.0, 1.0, 2.0, 3.0, 200.0], now=200.0) == 1


def test_the_supervisor_restarts_what_exits_and_gives_up_on_what_keeps_crashing(tmp_path: Path) -> None:
    """Real processes: one that always exits at once is started again until the policy gives up on it, which is
    said; one that runs is left alone."""
    crasher = [sys.executable, "-c", "raise SystemExit(3)"]
    procs = {"crasher": spawn(crasher, {}), "sleeper": spawn([sys.executable, "-c", "import time; time.sleep(60)"], {})}
    lines: list[str] = []
    starts = []

    def restart(name: str) -> subprocess.Popen:
        starts.append(name)
        return spawn(crasher, {})

    supervisor = Supervisor(procs, restart, RestartPolicy(initial_s=0, max_s=0, give_up_after=3), say=lines.append)
    try:
        eventually(lambda: supervisor.check() or "crasher" in supervisor.given_up, "giving up")
        assert starts == ["crasher", "crasher"]  # three runs: the first and two restarts
        assert "giving up" in lines[-1] and lines[-1].startswith("crasher exited with 3: 3 crashes")
        assert procs["sleeper"].poll() is None and "sleeper" not in supervisor.crashes
    finally:
        stop(*procs.values())


def test_redis_refuses_a_client_without_the_password(tmp_path: Path) -> None:
    s = Stack(ports={"redis": free_port()}, log_dir=tmp_path / "log", data_dir=tmp_path / "data", services=[])
    s.start_redis()
    try:
        with redis.Redis(port=s.ports["redis"]) as anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.set("fp:auth:key:forged", "{}")
        with (
            redis.Redis(port=s.ports["redis"], password="guessed") as guessing,
            pytest.raises(redis.AuthenticationError),
        ):
            guessing.ping()
        with redis.Redis.from_url(s.redis_url) as client:
            assert client.ping()
        # the password is in a file only its user reads, not on Redis's command line, which `ps` shows everyone
        config = s.data_dir / "redis-auth.conf"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE(s.data_dir.stat().st_mode) == 0o700  # the AOF files too: the galleries
        assert s.redis_password not in Path(f"/proc/{s.procs['redis'].pid}/cmdline").read_text()
    finally:
        s.stop()


# The launcher, `make run` itself, with three services, on free ports and a var/ folder of its own.
LAUNCHED = ["detector", "embedder", "emotion"]


@dataclass
class Launcher:
    proc: subprocess.Popen
    ports: dict[str, int]
    var: Path
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def pid_of(self, module: str) -> int | None:
        """The launcher's child running `python -m module`, if there is one alive."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z" and module.encode() in argv:
                return int(entry.name)
        return None

    def said(self) -> str:
        return self.output.read_text()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    var = tmp_path_factory.mktemp("var")
    names = ["gateway", "redis", *LAUNCHED, *(f"{s}-metrics" for s in LAUNCHED)]
    ports = {name: free_port() for name in names}
    env = {**os.environ, **{f"FACEPLANE_{n.upper().replace('-', '_')}_PORT": str(p) for n, p in ports.items()}}
    output = var / "launcher.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.stack", "--services", ",".join(LAUNCHED), "--var", str(var)],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    launched = Launcher(proc, ports, var, output)
    try:
        wait_http_ok(f"{launched.url}/readyz", timeout_s=300)
        yield launched
    finally:
        if proc.poll() is None:
            proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
            proc.wait()


@pytest.mark.slow
def test_the_launcher_keeps_redis_password_and_service_token_private(launcher: Launcher) -> None:
    secrets_file = launcher.var / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    kept = json.loads(secrets_file.read_text())
    assert kept["redis_url"] == f"redis://:{kept['redis_password']}@127.0.0.1:{launcher.ports['redis']}/0"
    with redis.Redis(port=launcher.ports["redis"]) as anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    # The gateway got both: it enrols through the embedder, which keeps the face in Redis.
    with httpx.Client(base_url=launcher.url, timeout=60) as api:
        assert api.post("/v1/collections/launched/subjects", json={"subject_id": "alice"}).status_code == 201
        enrolled = api.post("/v1/collections/launched/subjects/alice/faces",
                            files={"image": ("a.jpg", ONE_FACE, "image/jpeg")})  # fmt: skip
        assert enrolled.status_code == 201, enrolled.text
    # Straight to the embedder's port, as anything on the host could: refused without the token, taken with it.
    with grpc.insecure_channel(f"127.0.0.1:{launcher.ports['embedder']}") as channel:
        embedder = embedder_pb2_grpc.EmbedderStub(channel)
        for call, request in [
            (embedder.CreateSubject, embedder_pb2.CreateSubjectRequest(collection="launched", subject_id="mallory")),
            (embedder.DeleteSubject, embedder_pb2.SubjectRef(collection="launched", subject_id="alice")),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                call(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert ("faceplane-error-code", "service_unauthenticated") in refused.value.trailing_metadata()
        token = token_metadata(kept["service_token"])
        embedder.CreateSubject(embedder_pb2.CreateSubjectRequest(collection="launched", subject_id="bob"),
                               metadata=token, timeout=10)  # fmt: skip
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no token
    with httpx.Client(base_url=launcher.url, timeout=60) as api:
        subjects = api.get("/v1/collections/launched/subjects").json()
        assert {s["subject_id"] for s in subjects["subjects"]} == {"alice", "bob"}  # alice was not deleted


@pytest.mark.slow
def test_faceplane_keys_finds_the_launchers_redis_and_never_prints_its_password(
    launcher: Launcher, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = json.loads((launcher.var / "secrets.json").read_text())
    monkeypatch.delenv("FACEPLANE_REDIS_URL", raising=False)
    monkeypatch.setattr(cli, "LOCAL_SECRETS", launcher.var / "secrets.json")  # the checkout's var/, in make run
    assert cli.main(["--json", "keys", "list"]) == 0
    wrong = kept["redis_url"].replace(kept["redis_password"], "not-the-password")
    assert cli.main(["keys", "--redis-url", wrong, "list"]) == 1
    said = capsys.readouterr().err
    assert ":***@127.0.0.1" in said and "not-the-password" not in said


@pytest.mark.slow
@pytest.mark.parametrize("part", ["emotion", "gateway"])
def test_a_part_killed_under_the_launcher_is_started_again(launcher: Launcher, part: str) -> None:
    module = "gateway" if part == "gateway" else f"services.{part}"
    pid = launcher.pid_of(module)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: f"{part} exited with -9; restarting it" in launcher.said(), "the launcher saw it go")
    eventually(lambda: launcher.pid_of(module) not in (None, pid), "a new process")
    assert launcher.proc.poll() is None  # the launcher and the rest of the stack run on

    def serves_again() -> bool:
        try:
            ready = httpx.get(f"{launcher.url}/readyz", timeout=5)
            face = httpx.post(f"{launcher.url}/v1/analyze", files={"image": ("a.jpg", ONE_FACE, "image/jpeg")},
                              timeout=30).json()["faces"][0]  # fmt: skip
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            return False
        return ready.json()["status"] == "ready" and "emotion" in face

    eventually(serves_again, "the gateway answering with emotion again")


@pytest.mark.slow
def test_sigterm_stops_the_whole_stack(launcher: Launcher) -> None:
    children = [launcher.pid_of(m) for m in ["gateway", *(f"services.{s}" for s in LAUNCHED)]]
    assert all(children), children
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.proc.wait(timeout=120) == 0
    assert launcher.said().rstrip().endswith("stopped.")
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), pid
