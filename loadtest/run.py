"""`make loadtest`: the whole stack on loopback, Locust headless against it for a bounded time, CSV stats.

    python -m loadtest.run [--users 16] [--seconds 60]   # var/loadtest/faceplane_{stats,failures,…}.csv (git-ignored)

Exits non-zero when any request failed.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.local.stack import Stack, available_services, free_port

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "loadtest")
    args = parser.parse_args()
    services = available_services()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            ports={name: free_port() for name in ["gateway", "redis", *services]},
            log_dir=Path(tmp) / "log",
            data_dir=Path(tmp) / "redis",
            services=services,
        )
        stack.start()
        try:
            env = {**os.environ, "FACEPLANE_LOADTEST_DETECTOR": f"127.0.0.1:{stack.ports['detector']}"}
            command = [
                sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"), "--headless",
                "--host", f"http://127.0.0.1:{stack.ports['gateway']}", "--users", str(args.users),
                "--spawn-rate", str(args.users), "--run-time", f"{args.seconds}s", "--csv", str(args.out / "faceplane"),
                "--only-summary", "--stop-timeout", "30",
            ]  # fmt: skip
            code = subprocess.run(command, env=env, cwd=REPO).returncode
        finally:
            stack.stop()
    with (args.out / "faceplane_stats.csv").open() as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    print(f"{total['Request Count']} requests, {total['Failure Count']} failed, {float(total['Requests/s']):.1f}/s, "
          f"p50 {total['50%']} ms, p99 {total['99%']} ms")  # fmt: skip
    sys.exit(1 if code or int(total["Failure Count"]) else 0)


if __name__ == "__main__":
    main()
