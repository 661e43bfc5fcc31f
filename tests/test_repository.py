"""The repository stands alone: a user's clone has nothing beside it.

Docs, comments, test names and scripts may cite only what a reader can open: the public
Microsoft Graph and Teams documentation pages, RFCs, or files inside the repository
(docs/*.md, tests/fixtures/graph/README.md). These tests walk every tracked file and fail,
naming file and line, on a reference to notes that only existed beside the development
checkout, or to an issue tracker a clone does not carry; and they check that no script or
Makefile target reaches for a folder above the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()

# What a walk of the tree skips when git is absent: build products, caches, the virtualenv.
UNTRACKED_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache",
                  ".benchmarks", ".hypothesis", "wineprefix", ".wineprefix", "node_modules"}

# (pattern, what it is): documents a clone does not have, and issue numbers.
FORBIDDEN = [
    (re.compile(r"\.\./shared"), "a folder beside the repository"),
    (re.compile(r"shared/graph"), "the Graph notes beside the repository"),
    (re.compile(r"CONTRACT\.md|\bCONTRACT\s*(?:§|section\s*)?\s*\d"), "the contract summary"),
    (re.compile(r"PEERS\.md|\bPEERS\s*§"), "the interop-peer notes"),
    (re.compile(r"PERF-ANCHORS"), "the performance-anchor notes"),
    (re.compile(r"API-ANCHORS"), "the API-anchor notes"),
    (re.compile(r"\bDESIGN\.md"), "the design notes"),
    (re.compile(r"\bSTYLE\.md"), "the style notes"),
    (re.compile(r"\b[Ii]ssue\s*#?\d+|\(issue:"), "an issue number"),
]


def _tracked_files() -> list[Path]:
    """Files under version control (``git ls-files``); without git, every file of the tree
    outside build products, caches and the virtualenv."""
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
        if out.returncode == 0:
            names = [n for n in out.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
            return [ROOT / n for n in names if (ROOT / n).is_file()]
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in UNTRACKED_DIRS and not d.endswith(".egg-info")]
        files.extend(Path(folder) / n for n in names)
    return files


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte, or not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_the_walk_sees_the_repository():
    files = {p.relative_to(ROOT).as_posix() for p in _tracked_files()}
    for expected in ("Makefile", "docs/signaling.md", "native/include/mediacore.h",
                     "tests/fixtures/graph/README.md"):
        assert expected in files


def test_no_reference_to_documents_outside_the_repository():
    problems = []
    for path in _tracked_files():
        if path.resolve() == THIS:  # the patterns above name what they look for
            continue
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern, what in FORBIDDEN:
                found = pattern.search(line)
                if found:
                    problems.append(f"{path.relative_to(ROOT).as_posix()}:{number}: "
                                    f"{found.group(0)!r} ({what}): {line.strip()[:120]}")
    assert not problems, ("cite a public documentation page, an RFC or a file in the repository "
                          "instead:\n" + "\n".join(problems))


def test_patterns_catch_the_forms_they_are_for():
    caught = ["see ../shared/PEERS.md", "CONTRACT 8.1", "CONTRACT §9", "(CONTRACT.md section 6)",
              "PEERS §9", "PERF-ANCHORS section 3", "API-ANCHORS.md", "see DESIGN.md",
              "STYLE.md", "(issue 3, item 2)", "issue #350", "Issue 7", "(issue: Foundation)"]
    passed = ["Contract: mediacore.h, region `srtp`", "the contract (what decodable means)",
              "https://learn.microsoft.com/graph/api/resources/call", "RFC 3550 section 6.7",
              "tests/fixtures/graph/README.md", "an issue with the kernel", "shared memory"]
    for text in caught:
        assert any(p.search(text) for p, _ in FORBIDDEN), text
    for text in passed:
        assert not any(p.search(text) for p, _ in FORBIDDEN), text


def test_scripts_and_makefile_stay_inside_the_repository():
    """`make` targets, scripts/ and .ci/ run in a clone with nothing beside it: no path
    climbs above the repository (``cd "$(dirname "$0")/.."`` to its root is fine)."""
    candidates = [ROOT / "Makefile", *sorted((ROOT / "scripts").glob("*")),
                  *sorted((ROOT / ".ci").glob("*"))]
    climbing = re.compile(r"\.\./")
    problems = []
    for path in candidates:
        text = _text(path) if path.is_file() else None
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if climbing.search(line):
                problems.append(f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}")
    assert (ROOT / "Makefile").is_file()
    assert not problems, "paths above the repository:\n" + "\n".join(problems)
