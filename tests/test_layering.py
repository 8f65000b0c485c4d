"""The import rules of docs/architecture.md: the gateway reaches services only over gRPC (it may read the service
catalogue and two leaf modules of the runtime), and no service imports the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GATEWAY_MAY_IMPORT = {
    "services.catalogue",
    "services.runtime.error_codes",
    "services.runtime.tracing",
    "services.runtime.logs",
    "services.runtime.channels",
}


def imports(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / folder).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_gateway_imports_no_service_code() -> None:
    wrong = {
        path: sorted(n for n in names if n.split(".")[0] == "services" and n not in GATEWAY_MAY_IMPORT)
        for path, names in imports("gateway").items()
    }
    assert not {path: names for path, names in wrong.items() if names}


def test_no_service_imports_the_gateway() -> None:
    wrong = {
        path: sorted(n for n in names if n.split(".")[0] == "gateway") for path, names in imports("services").items()
    }
    assert not {path: names for path, names in wrong.items() if names}
