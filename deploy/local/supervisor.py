"""Restarting what crashed, as Kubernetes restarts a pod's container: after a delay that doubles with each crash
(capped), from the start again once a process has run a while; unlike Kubernetes, it gives up on a process that
keeps crashing, and says so, rather than retry it forever.

`make run` (deploy/local/stack.py) calls `Supervisor.check()` twice a second while the stack runs.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float = 1.0  # Kubernetes: 10 s, doubling to 5 min; a developer's loopback wants it back sooner
    max_s: float = 30.0
    # Crashes counted for the backoff and the giving up: those of the last `window_s`. A process that ran without
    # crashing for the whole window starts again from `initial_s`, as a container that ran 10 minutes does.
    window_s: float = 300.0
    give_up_after: int = 5

    def delay(self, crashes: list[float], now: float) -> float | None:
        """Seconds to wait before the next start, given the times of the crashes so far; None: give up."""
        recent = [t for t in crashes if now - t <= self.window_s]
        if len(recent) >= self.give_up_after:
            return None
        return min(self.initial_s * 2 ** max(0, len(recent) - 1), self.max_s)


@dataclass
class Supervisor:
    """Watches `procs` (name → process) and starts again, by `restart(name)`, each one that exited."""

    procs: MutableMapping[str, subprocess.Popen]
    restart: Callable[[str], subprocess.Popen]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    say: Callable[[str], None] = print
    crashes: dict[str, list[float]] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)  # name → when to start it again (monotonic)
    given_up: set[str] = field(default_factory=set)

    def check(self) -> None:
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            if name in self.due or name in self.given_up or proc.poll() is None:
                continue
            times = self.crashes.setdefault(name, [])
            times.append(now)
            delay = self.policy.delay(times, now)
            recent = sum(1 for t in times if now - t <= self.policy.window_s)
            if delay is None:
                self.given_up.add(name)
                self.say(f"{name} exited with {proc.returncode}: {recent} crashes in {self.policy.window_s:g} s, "
                         f"giving up on it (see its log); the rest of the stack runs on")  # fmt: skip
                continue
            self.due[name] = now + delay
            self.say(f"{name} exited with {proc.returncode}; restarting it in {delay:g} s (crash {recent})")
        for name, when in list(self.due.items()):
            if now >= when:
                del self.due[name]
                self.procs[name] = self.restart(name)
                self.say(f"{name} restarted (pid {self.procs[name].pid})")
