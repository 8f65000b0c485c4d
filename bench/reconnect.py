"""How long the gateway goes on answering `degraded` after a crashed service is back.

    python -m bench.reconnect [--repeats 3] [--out bench/results/reconnect.json]   # prints a table, writes JSON

A stack of its own on loopback (detector, emotion, gateway): emotion is killed (SIGKILL), stays down for a while,
is started again on the same port; from the moment it reports SERVING on its own port, `/readyz` is polled every
20 ms until it says `ready`. That lag is the time the gateway's channel waits before it dials again (gRPC's
reconnect backoff, `services/runtime/channels.py`), and it grows with how long the service was down.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from deploy.local.stack import REPO_ROOT, Stack, free_port
from services.runtime.channels import REPLICA_OPTIONS

DOWNTIMES_S = (2.0, 5.0, 10.0, 20.0, 40.0)
POLL_S = 0.02


def readiness(client: httpx.Client) -> str:
    try:
        return client.get("/readyz", timeout=5).json()["status"]
    except (httpx.HTTPError, ValueError, KeyError):
        return "unanswered"


def wait_for(client: httpx.Client, status: str, timeout_s: float = 120) -> float:
    """Seconds until `/readyz` says `status`."""
    start = time.monotonic()
    while readiness(client) != status:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"/readyz did not say {status} within {timeout_s} s")
        time.sleep(POLL_S)
    return time.monotonic() - start


def one_restart(stack: Stack, client: httpx.Client, downtime_s: float) -> float:
    proc = stack.procs.pop("emotion")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    wait_for(client, "degraded")
    time.sleep(max(0.0, downtime_s - (time.monotonic() - killed)))
    stack.start_service("emotion")
    stack.wait_service("emotion")  # SERVING on its own port, asked by a fresh channel of ours
    return wait_for(client, "ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "reconnect.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        services = ["detector", "emotion"]
        stack = Stack(
            ports={name: free_port() for name in ["gateway", *services]},
            log_dir=Path(tmp) / "log",
            data_dir=Path(tmp) / "redis",
            services=services,
        )
        stack.start(with_redis=False)
        try:
            with httpx.Client(base_url=stack.gateway_urls()[0]) as client:
                wait_for(client, "ready")
                for downtime in DOWNTIMES_S:
                    lags = [one_restart(stack, client, downtime) for _ in range(args.repeats)]
                    results.append({"downtime_s": downtime, "degraded_after_back_s": lags})
                    print(f"down {downtime:>4.0f} s: degraded for {statistics.median(lags):.2f} s after it was back",
                          flush=True)  # fmt: skip
        finally:
            stack.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    options = {k: v for k, v in REPLICA_OPTIONS if "backoff" in k}
    print(f"\n/readyz `degraded` after emotion is SERVING again · {machine} · {datetime.date.today()}")
    print(f"channel options: {options or 'gRPC defaults (1 s initial backoff, ×1.6, up to 120 s)'}")
    print(f"{'down (s)':>9} {'median (s)':>11} {'max (s)':>8}")
    for r in results:
        lags = r["degraded_after_back_s"]
        print(f"{r['downtime_s']:>9.0f} {statistics.median(lags):>11.2f} {max(lags):>8.2f}")
    summary = {"date": str(datetime.date.today()), "machine": machine, "channel_options": options, "results": results}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
