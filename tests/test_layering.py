"""The layers keep their boundaries (read from the source, with ``ast``):

* signaling (``bot/``) reaches the media stack only through ``bot/media.py``,
  and only through public names: no ``mediacore._native``, no private module
  or name anywhere in ``bot/`` (the emulator and the demo, separate programs
  inside the package, included);
* ``mediacore`` knows nothing of Graph or the bot;
* the emulator imports nothing of the demo, and the demo reaches the
  emulator only as a program a user could run does.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name, []))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:   # relative: resolve against the file's package
                pkg = path.relative_to(ROOT).parent.parts
                base = pkg[:len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                module = ".".join([*base, module] if module else base)
            out.append((node.lineno, module, [a.name for a in node.names]))
    return out


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_bot_uses_no_private_mediacore_name():
    bad = []
    for path in _files("bot"):
        rel = path.relative_to(ROOT)
        if "_native" in path.read_text():
            bad.append(f"{rel}: mentions _native")
        for line, module, names in _imports(path):
            if module == "mediacore" or module.startswith("mediacore."):
                parts = module.split(".")
                if any(p.startswith("_") for p in parts):
                    bad.append(f"{rel}:{line}: imports private module {module}")
                bad += [f"{rel}:{line}: imports private name {module}.{n}"
                        for n in names if n.startswith("_")]
    assert not bad, "\n".join(bad)


def _private_names(package: str) -> set[str]:
    """Single-underscore names a package defines (functions, methods, attributes)."""
    out: set[str] = set()
    for path in _files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                name = node.attr
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                name = node.id
            if name and name.startswith("_") and not name.startswith("__"):
                out.add(name)
    return out


def test_bot_reaches_no_private_attribute_of_mediacore():
    """``x._name`` in bot/ where only mediacore defines ``_name`` (e.g. a
    session's private statistics call)."""
    theirs = _private_names("mediacore") - _private_names("bot")
    bad = []
    for path in _files("bot"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in theirs:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {node.attr}")
    assert not bad, "\n".join(bad)


def test_only_the_media_seam_of_the_bot_imports_mediacore():
    programs = {"emulator", "demo"}   # separate programs that live in the package
    bad = []
    for path in _files("bot"):
        rel = path.relative_to(ROOT)
        if rel.parts[1] in programs or rel == Path("bot/media.py"):
            continue
        for line, module, _ in _imports(path):
            if module.split(".")[0] == "mediacore":
                bad.append(f"{rel}:{line}: imports {module} (only bot/media.py may)")
    assert not bad, "\n".join(bad)


def test_mediacore_knows_nothing_of_the_bot():
    bad = [f"{p.relative_to(ROOT)}:{line}: imports {module}"
           for p in _files("mediacore") for line, module, _ in _imports(p)
           if module.split(".")[0] == "bot"]
    assert not bad, "\n".join(bad)


def test_the_emulator_imports_nothing_of_the_demo():
    bad = [f"{p.relative_to(ROOT)}:{line}: imports {module}"
           for p in _files("bot/emulator") for line, module, _ in _imports(p)
           if module == "bot.demo" or module.startswith("bot.demo.")]
    assert not bad, "\n".join(bad)


def test_the_checks_see_imports():
    """The walker itself: relative imports resolve, private names are seen."""
    found = {m for _, m, _ in _imports(ROOT / "bot" / "media.py")}
    assert "mediacore" in found
    found = {m for _, m, _ in _imports(ROOT / "bot" / "app.py")}
    assert "bot.media" in found and "bot.graph.api" in found
