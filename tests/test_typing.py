"""The event core is type-checked in CI (.ci/run runs mypy over [tool.mypy] files) with nothing silenced."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_event_core_has_no_type_ignore():
    silenced = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "server" / "core").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "type: ignore" in line
    ]
    assert not silenced, silenced


def test_ci_type_checks_the_event_core():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "server/core" in config["tool"]["mypy"]["files"]
    assert any(dep.startswith("mypy") for dep in config["project"]["optional-dependencies"]["test"])
    assert ".venv/bin/mypy" in (ROOT / ".ci" / "run").read_text()
