"""The soak, scaled for ``make test`` (docs/soak.md): both levels churn a few calls for
about a minute; every call ends, none fails, and file descriptors, threads, shared-memory
segments and child processes come back to the baseline once the last call has ended,
while RSS does not keep growing. The full run is ``make soak`` (30 minutes, 20 calls
per level).

No timing is asserted beyond generous bounds: a call's set-up may take seconds on a
loaded machine, and that only means fewer calls."""

from __future__ import annotations

import json
import os

from .runner import run_soak, summary

#: the scaled run's RSS bound. A minute of churn is the allocator's warm-up: glibc
#: keeps what the calls freed in its arenas (the RSS grew by about 30 MiB/min
#: here while the C heap in use came back to its baseline; docs/soak.md). The
#: scaled run's leak checks are the heap in use and the counts after it; the
#: 1 MiB/min of runner.THRESHOLDS is the full run's (``make soak``).
SCALED_RSS_MIB_PER_MIN = 96.0


def test_calls_churn_and_resources_come_back():
    report = run_soak(50.0, calls=4, levels=("media", "bot"), warmup_s=20.0, settle_s=45.0,
                      process_share=0.05, seed=7,
                      thresholds={"rss_mib_per_min": SCALED_RSS_MIB_PER_MIN})
    out = os.environ.get("MEDIABOT_SOAK_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=1)
    text = summary(report)
    counts = report["counts"]
    for level in ("media", "bot"):
        c = counts[level]
        assert c["failed"] == 0, f"{level}: failed calls: {c['failures']}\n{text}"
        assert c["started"] >= 4 and c["ended"] == c["started"], text
        # media flowed: a call that lived two seconds saw audio (a few may lose the race
        # against a set-up slowed by a loaded machine)
        assert c["silent"] <= max(1, c["ended"] // 10), text
    checks = report["checks"]
    for level in ("media", "bot"):     # no call, session or graph left behind
        assert checks[f"{level}_nothing_left"]["ok"], text
    for name in ("heap_used", "fds", "threads", "os_threads", "shm", "shm_mapped", "children"):
        c = checks.get(f"{name}_back_to_baseline")
        if c is None and name == "heap_used":
            continue                   # not glibc: no mallinfo2
        assert c is not None and c["ok"], f"{name}: {c['baseline']} before, {c['after']} after\n{text}"
    assert report["after"]["shm"] == 0 and report["after"]["shm_mapped"] == 0, text
    assert checks["rss_slope"]["ok"], text
    assert report["passed"], text
