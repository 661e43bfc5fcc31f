"""Shared fixtures for the signaling tests: the documented Graph examples and RSA keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hypothesis  # noqa: F401  imported before any test runs threads: a lazy import of it in
#                    the terminal summary trips CPython 3.11.7's "AST constructor recursion depth
#                    mismatch" (gh-106905) after threaded tests
import pytest


def shared_dir() -> Path:
    """``shared/`` beside the checkout (CI), any ancestor's ``shared/``, or $MEDIABOT_SHARED."""
    env = os.environ.get("MEDIABOT_SHARED")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / ".." / "shared"] + [p / "shared" for p in here.parents]
    for c in candidates:
        if (c / "graph" / "examples").is_dir():
            return c.resolve()
    raise RuntimeError("shared/graph/examples not found beside the checkout; set MEDIABOT_SHARED")


EXAMPLES = shared_dir() / "graph" / "examples"


def example(name: str):
    return json.loads((EXAMPLES / name).read_text())


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.json"))


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
