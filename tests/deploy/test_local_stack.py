"""`make run`'s arguments: what REPLICAS= accepts."""

from __future__ import annotations

import argparse

import pytest

from deploy.local import stack
from deploy.local.stack import available_services, replica_arg


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
