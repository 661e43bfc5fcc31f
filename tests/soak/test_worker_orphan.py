"""A media process that is killed (SIGKILL: no ``close``, no ``stop`` event) must not leave its
processors' worker processes polling their rings forever, nor their shared-memory segments in
/dev/shm (found by the soak: docs/soak.md, "Findings")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .runner import REPO

MEDIA_PROCESS = """
import sys, time
from mediacore import MediaHost
from tests.soak.runner import FrameCounter
host = MediaHost("127.0.0.1", 0, audio_workers=1)
media = host.create_call("orphan")
runner = media.add_processor(FrameCounter("process"))
print(runner._proc.pid, runner._ring.name, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"      # a zombie has exited
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and /dev/shm")
def test_worker_processes_leave_when_their_media_process_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", MEDIA_PROCESS], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, "the media process did not start its worker"
        worker, ring = int(line.split()[0]), line.split()[1]
        assert _alive(worker) and os.path.exists(f"/dev/shm/{ring}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30          # generous: a loaded machine
        while time.monotonic() < deadline and (_alive(worker) or
                                               os.path.exists(f"/dev/shm/{ring}")):
            time.sleep(0.1)
        assert not _alive(worker), "the worker process outlived its media process"
        # the last holder gone, multiprocessing's resource tracker unlinks the segment
        assert not os.path.exists(f"/dev/shm/{ring}"), f"/dev/shm/{ring} was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


DEAD_ON_ARRIVAL = """
import time
from mediacore import MediaHost, Processor

class OnlyHere(Processor):      # in -c's __main__: a spawned worker cannot unpickle it
    mode = "process"

host = MediaHost("127.0.0.1", 0, audio_workers=1)
media = host.create_call("doa")
t0 = time.monotonic()
try:
    media.add_processor(OnlyHere())
except RuntimeError as e:
    print("refused after", round(time.monotonic() - t0, 1), "s:", e, flush=True)
media.close()
host.close()
"""


def test_a_worker_that_dies_at_start_is_not_waited_for():
    """add_processor raises as soon as the worker process has exited, not after the
    60 s start timeout (a worker that cannot import or unpickle its processor)."""
    out = subprocess.run([sys.executable, "-c", DEAD_ON_ARRIVAL], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert "refused after" in out.stdout, out.stdout + out.stderr
    assert "exited (code 1) before it started" in out.stdout
    assert float(out.stdout.split("refused after")[1].split()[0]) < 45   # < the 60 s timeout
