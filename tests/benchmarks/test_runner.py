"""The benchmark runner pairs subjects with anchors and writes the documented JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.__main__ import comparisons_from_groups

ROOT = Path(__file__).resolve().parents[2]

SYNTHETIC = '''
import time
import pytest
from benchmarks._report import record_comparison, QUICK

@pytest.mark.benchmark(group="demo-group")
def test_fast(benchmark):
    benchmark.extra_info.update(role="subject", units=10, label="fast thing")
    benchmark.pedantic(lambda: time.sleep(0.001), rounds=3, iterations=1)

@pytest.mark.benchmark(group="demo-group")
def test_slow(benchmark):
    benchmark.extra_info.update(role="anchor", units=10, label="slow thing")
    benchmark.pedantic(lambda: time.sleep(0.004), rounds=3, iterations=1)

def test_recorded(benchmark):
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    record_comparison("recorded-row", subject="s", anchor="a", subject_ns=50.0, anchor_ns=200.0,
                      quick=QUICK)
'''


def test_groups_become_comparisons_with_per_item_ratio():
    rows = comparisons_from_groups([
        {"group": "g", "name": "a", "stats": {"median": 2e-3}, "extra_info": {"role": "anchor", "units": 1000}},
        {"group": "g", "name": "s", "stats": {"median": 1e-3}, "extra_info": {"role": "subject", "units": 2000}},
        {"group": "g", "name": "other", "stats": {"median": 1.0}, "extra_info": {}},
    ])
    assert len(rows) == 1
    row = rows[0]
    assert row["subject_ns"] == 500.0 and row["anchor_ns"] == 2000.0
    assert row["ratio"] == 4.0


def test_runner_end_to_end(tmp_path):
    bench = ROOT / "benchmarks" / "bench_zz_synthetic_test.py"
    bench.write_text(SYNTHETIC)
    try:
        out = tmp_path / "out.json"
        proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out),
                               str(bench)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        bench.unlink()
    report = json.loads(out.read_text())
    assert report["quick"] is True
    by_name = {r["name"]: r for r in report["comparisons"]}
    assert set(by_name) == {"demo-group", "recorded-row"}
    demo = by_name["demo-group"]
    assert set(demo) >= {"name", "subject", "anchor", "subject_ns", "anchor_ns", "ratio"}
    assert demo["subject"] == "fast thing" and demo["anchor"] == "slow thing"
    # per item: the median divided by units=10 (no assertion on the timings themselves)
    assert demo["subject_ns"] > 0 and demo["anchor_ns"] > 0
    assert demo["ratio"] == demo["anchor_ns"] / demo["subject_ns"]
    assert by_name["recorded-row"]["ratio"] == 4.0 and by_name["recorded-row"]["quick"] is True
    assert "demo-group" in proc.stdout  # the table is printed
