"""Shared pieces of the benchmark suites.

* ``QUICK`` is True under ``python -m benchmarks --quick``: suites shrink their
  work (fewer rounds, fewer records) but keep every comparison.
* ``record_comparison`` records a comparison that is not the timing of one
  function by pytest-benchmark (latency percentiles, packets/s over sockets,
  density). The runner merges these with the pytest-benchmark groups.

A comparison always holds both sides measured in the same run, and
``ratio = anchor_ns / subject_ns``: above 1 means mediabot is faster.
"""

from __future__ import annotations

import json
import os

QUICK = os.environ.get("MEDIABOT_BENCH_QUICK") == "1"
_RECORD_PATH = os.environ.get("MEDIABOT_BENCH_RECORD")


def record_comparison(name: str, *, subject: str, anchor: str, subject_ns: float,
                      anchor_ns: float, **extra: object) -> dict:
    """Record one comparison (both sides in ns per item, lower is better)."""
    if subject_ns <= 0 or anchor_ns <= 0:
        raise ValueError(f"{name}: times must be positive ({subject_ns}, {anchor_ns})")
    entry = {
        "name": name,
        "subject": subject,
        "anchor": anchor,
        "subject_ns": float(subject_ns),
        "anchor_ns": float(anchor_ns),
        "ratio": float(anchor_ns) / float(subject_ns),
        **extra,
    }
    if _RECORD_PATH:
        with open(_RECORD_PATH, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
    return entry


def percentile_ns(samples: list[int] | list[float], q: float) -> float:
    """The q-th percentile (0..100) of samples, nearest-rank."""
    if not samples:
        raise ValueError("no samples")
    s = sorted(samples)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return float(s[k])
