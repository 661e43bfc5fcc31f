"""Shared fixtures for the signaling tests: the documented Graph examples and RSA keys."""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis  # noqa: F401  imported before any test runs threads: a lazy import of it in
#                    the terminal summary trips CPython 3.11.7's "AST constructor recursion depth
#                    mismatch" (gh-106905) after threaded tests
import pytest


#: the documented Graph bodies (tests/fixtures/graph/README.md says where each comes from)
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"


def example(name: str):
    return json.loads((EXAMPLES / name).read_text())


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.json"))


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
