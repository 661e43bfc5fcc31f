"""Benchmark runner: ``python -m benchmarks [--quick] [--json PATH] [-k EXPR] [files]``.

Runs the pytest-benchmark suites in this folder in one pytest session, then
prints and writes the comparisons. Each comparison pairs a mediabot path (the
subject) with an anchor measured in the same run:

* pytest-benchmark groups: tests tagged ``extra_info["role"] = "subject"`` and
  ``"anchor"`` in one group give one comparison per anchor, from the medians
  divided by ``extra_info["units"]`` (items per round);
* figures recorded with ``benchmarks._report.record_comparison``.

JSON: ``{"quick": bool, "machine": {...}, "comparisons": [{name, subject, anchor,
subject_ns, anchor_ns, ratio, ...}], "benchmarks": [raw pytest-benchmark rows]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _per_item_ns(bench: dict) -> float:
    units = float(bench.get("extra_info", {}).get("units", 1) or 1)
    return bench["stats"]["median"] * 1e9 / units


def comparisons_from_groups(benchmarks: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for b in benchmarks:
        if b.get("extra_info", {}).get("role") in ("subject", "anchor") and b.get("group"):
            groups.setdefault(b["group"], []).append(b)
    out = []
    for group, members in groups.items():
        subjects = [b for b in members if b["extra_info"]["role"] == "subject"]
        anchors = [b for b in members if b["extra_info"]["role"] == "anchor"]
        for s in subjects:
            for a in anchors:
                s_ns, a_ns = _per_item_ns(s), _per_item_ns(a)
                out.append({
                    "name": group,
                    "subject": s["extra_info"].get("label", s["name"]),
                    "anchor": a["extra_info"].get("label", a["name"]),
                    "subject_ns": s_ns,
                    "anchor_ns": a_ns,
                    "ratio": a_ns / s_ns if s_ns > 0 else float("inf"),
                    "source": "pytest-benchmark median",
                })
    return out


def machine() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("no comparisons")
        return
    headers = ("comparison", "subject", "anchor", "subject ns", "anchor ns", "ratio")
    table = [(r["name"], r["subject"], r["anchor"], f"{r['subject_ns']:.1f}",
              f"{r['anchor_ns']:.1f}", f"{r['ratio']:.2f}x") for r in rows]
    widths = [min(48, max(len(h), *(len(t[i]) for t in table))) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for t in table:
        print("  ".join(c[:w].ljust(w) for c, w in zip(t, widths)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shrink every suite (CI smoke run)")
    ap.add_argument("--json", metavar="PATH", help="write the report here")
    ap.add_argument("-k", metavar="EXPR", help="pytest -k expression to select benchmarks")
    ap.add_argument("files", nargs="*", help="bench_*.py files (default: all)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mediabot-bench-") as tmp:
        raw_path = Path(tmp) / "raw.json"
        record_path = Path(tmp) / "recorded.jsonl"
        env = dict(os.environ)
        env["MEDIABOT_BENCH_RECORD"] = str(record_path)
        env["MEDIABOT_BENCH_QUICK"] = "1" if args.quick else "0"
        targets = args.files or [str(HERE)]
        cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider",
               "-o", "python_files=bench_*.py", "-o", "testpaths=benchmarks",
               "-o", "filterwarnings=ignore::DeprecationWarning",
               "-o", "timeout=900",
               "--benchmark-only", f"--benchmark-json={raw_path}",
               "--benchmark-columns=median,iqr,rounds",
               "--benchmark-sort=name"]
        if args.quick:
            cmd.append("--benchmark-disable-gc")
        if args.k:
            cmd += ["-k", args.k]
        rc = subprocess.call(cmd, cwd=HERE.parent, env=env)
        raw = json.loads(raw_path.read_text()) if raw_path.exists() else {"benchmarks": []}
        recorded = []
        if record_path.exists():
            recorded = [json.loads(line) for line in record_path.read_text().splitlines() if line]

    rows = comparisons_from_groups(raw.get("benchmarks", [])) + recorded
    print()
    print_table(rows)
    report = {
        "quick": args.quick,
        "machine": machine(),
        "comparisons": rows,
        "benchmarks": [
            {"group": b.get("group"), "name": b["name"], "median_s": b["stats"]["median"],
             "iqr_s": b["stats"]["iqr"], "rounds": b["stats"]["rounds"],
             "extra_info": b.get("extra_info", {})}
            for b in raw.get("benchmarks", [])
        ],
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    if rc not in (0, 5):  # 5: nothing collected (e.g. -k matched nothing)
        return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
