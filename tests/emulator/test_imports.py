"""The emulator stands alone: nothing in bot/emulator imports bot.demo (the demo may use the
emulator, never the reverse), neither in its source nor when all of it is loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EMULATOR = Path(__file__).resolve().parents[2] / "bot" / "emulator"


def _demo_imports(path: Path) -> list[str]:
    """Every import of bot.demo in ``path`` (absolute, or relative from bot/emulator), as
    ``file:line module``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = ["bot", "emulator"][:max(0, 2 - (node.level - 1))] if node.level else []
            base = ".".join(package + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n == "bot.demo" or n.startswith("bot.demo.")]
    return found


def test_the_walker_finds_demo_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import bot.demo.run\nfrom ..demo import botmedia\nfrom bot.demo.script import x\n"
                     "from .script import load_script\nimport importlib\nimportlib.import_module('bot.demo')\n")
    assert [f.split(" ", 1)[1] for f in _demo_imports(probe)] == [
        "bot.demo.run", "bot.demo", "bot.demo.botmedia", "bot.demo.script", "bot.demo.script.x", "bot.demo"]


def test_no_module_of_bot_emulator_imports_bot_demo():
    files = sorted(EMULATOR.rglob("*.py"))
    assert len(files) >= 15
    assert [f for path in files for f in _demo_imports(path)] == []


def test_loading_the_whole_emulator_loads_nothing_of_the_demo():
    modules = sorted(f"bot.emulator.{p.stem}" for p in EMULATOR.glob("*.py") if p.stem != "__main__")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'bot.demo' or m.startswith('bot.demo.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
