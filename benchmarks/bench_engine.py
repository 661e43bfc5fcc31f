"""Engine receive-path benchmarks: the native receive path against aiortc's, and
the engine's receiver CPU per datagram against a bare recvmmsg loop, measured
side by side in one run (docs/engine.md, "Receive path vs aiortc").

1. ``engine-receive-path-vs-aiortc``: sockets excluded on both sides, the same
   SRTP datagrams (AES_CM_128_HMAC_SHA1_80, 172-byte Opus-sized packets, 20 ms
   apart, one SSRC) go through
   * subject: ``Engine.inject_prepared`` (the I/O thread's exact receive path
     minus recvmmsg: demux -> SRTP unprotect -> RTP parse -> stats -> audio
     jitter buffer, popped every 20 ms of simulated time -> ring) followed by
     the Python batch read of every record (``ReceiveStream.read_batch``);
   * anchor: aiortc 1.16's own receive path, driven through its real objects
     with the same datagrams: ``RTCDtlsTransport._recv_next`` (everything it
     does after ``RTCIceTransport._recv`` returns a datagram: rx counters,
     first-byte demux, ``is_rtcp``, arrival clock, pylibsrtp
     ``Session.unprotect``) -> ``_handle_rtp_data`` (``RtpPacket.parse`` with
     the header-extension map, ``RtpRouter.route_rtp``) -> a real
     ``RTCRtpReceiver._handle_rtp_packet`` (active-SSRC map, codec lookup,
     ``StreamStatistics.add``, Opus depayload, ``JitterBuffer.add`` with
     capacity 16 / prefetch 4, timestamp mapping, hand-off of each complete
     frame to the decoder queue) and the decoder thread's ``Queue.get`` of
     each frame, run on the calling thread. Left out on purpose: the socket
     and ICE layer (the datagram comes from an ``_recv`` that pops a list,
     as the subject's come from memory), asyncio scheduling between
     datagrams (the coroutine never suspends), the RTCP task and decoding.
     ``unprotect + await _handle_rtp_data`` alone took ~20 us on the
     development VM; ``_recv_next`` and the frame hand-off add a little on top.
   * second anchor, reported beside it (``anchor_inline_chain_ns``): the
     inline chain of aiortc's per-packet calls without its objects
     (pylibsrtp unprotect + ``RtpPacket.parse`` + ``StreamStatistics.add`` +
     depayload + ``JitterBuffer.add``), a lower bound for any aiortc-based
     receiver.
   Goal: ratio >= 20 against aiortc's path.
2. ``engine-loopback-receive-vs-recvmmsg``: real loopback sockets. A native
   sender (``mc_udp_blast``, sendmmsg batches) sends the same stream of
   distinct SRTP datagrams to
   * subject: the engine's I/O thread (recvmmsg -> SRTP -> parse -> stats ->
     video reorder buffer (in order: released at once) -> ring);
   * anchor: a bare C recvmmsg(64) loop (``mc_udp_sink_*``) that only counts.
   Figure: receiver thread CPU per received datagram (on loopback the kernel's
   receive work runs on the sending core, so receiver
   CPU is the comparable number); packets/s per core = 1e9 / that.
   Goal: ratio >= 0.8.
"""

from __future__ import annotations

import random
import statistics
import struct
import threading
import time

import asyncio
import queue

import numpy as np
import pytest
from aiortc import (RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport,
                    RTCRtpReceiver)
from aiortc.codecs import depayload
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import (RTCRtpCodecParameters, RTCRtpDecodingParameters,
                                     RTCRtpReceiveParameters)
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from benchmarks._report import QUICK, record_comparison
# the recvmmsg sink and sendmmsg blaster (mc_udp_*) are not in the shipped library: the testing module
# (native/tests/support, built by `make build`) has them and mediacore._native's API
from _mediacore_testing import ffi, lib
from mediacore.engine import Engine
from mediacore.srtp import SrtpSession

PROFILE = "AES_CM_128_HMAC_SHA1_80"
SSRC = 0x5EED5EED


def _srtp_stream(key: bytes, n: int, size: int = 172, start_seq: int = 0) -> list[bytes]:
    tx = SrtpSession(PROFILE, key, "outbound")
    payload = random.Random(size).randbytes(size - 12 - 10)
    return [tx.protect(struct.pack("!BBHII", 0x80, 111, (start_seq + i) & 0xFFFF, 960 * i, SSRC)
                       + payload) for i in range(n)]


# ---- 1. receive path, sockets excluded ------------------------------------------------------

N_PATH = 2_000
REPS_PATH = 5 if QUICK else 15
# Both sides run entirely on the calling thread (the engine has no I/O thread
# here), so thread CPU time measures them without the preemption noise of a
# shared 2-vCPU machine; wall time would charge other processes' slices to
# whichever side was running.
_clock = time.thread_time_ns


class _Subject:
    """One long-lived engine stream (steady state: warm buffers), fed a new
    slice of the same continuous SRTP stream each rep."""

    def __init__(self, key: bytes) -> None:
        self.e = Engine("127.0.0.1", thread=False)
        s = self.e.add_session(srtp_profile=PROFILE, tx_key=bytes(30), rx_key=key)
        self.rx = s.add_receive_stream(SSRC, jitter_min_ms=40, jitter_max_ms=200,
                                       ring_capacity=1 << 20)
        self.base_ns = 10**12

    def run(self, blob: bytes, lengths: np.ndarray) -> float:
        t0 = _clock()
        self.e.inject_prepared(blob, lengths, now_ns=self.base_ns, step_ns=20_000_000)
        got = 0
        while True:
            b = self.rx.read_batch(1024)
            if not len(b):
                break
            got += len(b)
            _ = b.sequence_number  # the metadata a consumer looks at
        elapsed = _clock() - t0
        self.base_ns += len(lengths) * 20_000_000
        assert got >= len(lengths) - 5
        return elapsed / len(lengths)

    def close(self) -> None:
        st = self.rx.stats()
        assert st.auth_failures == 0 and st.replays == 0, st
        self.e.close()


OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                             payloadType=111)


def _libsrtp_rx(key: bytes) -> Session:
    return Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                          srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))


class _Aiortc:
    """aiortc's receive path through its real objects (see the module doc).
    The DTLS handshake is replaced by installing the SRTP session it would
    derive; the receiver is registered as ``RTCRtpReceiver.receive`` does,
    minus starting the decoder thread and the RTCP task."""

    def __init__(self, key: bytes) -> None:
        self.loop = asyncio.new_event_loop()

        async def make():
            ice = RTCIceTransport(RTCIceGatherer())
            dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
            return ice, dtls, RTCRtpReceiver("audio", dtls)

        ice, self.dtls, self.receiver = self.loop.run_until_complete(make())
        self.dtls._rx_srtp = _libsrtp_rx(key)
        self.dtls._RTCDtlsTransport__handshake_done = True
        self.dtls.encrypted = True
        # what RTCRtpReceiver.receive() does besides starting threads/tasks
        self.receiver._RTCRtpReceiver__codecs[OPUS.payloadType] = OPUS
        self.dtls._register_rtp_receiver(self.receiver, RTCRtpReceiveParameters(
            codecs=[OPUS], encodings=[RTCRtpDecodingParameters(ssrc=SSRC,
                                                               payloadType=OPUS.payloadType)]))
        # frames are queued for the decoder thread only while one exists; the
        # queue is drained below as that thread would
        self.receiver._RTCRtpReceiver__decoder_thread = True
        self.decoder_queue: queue.Queue = self.receiver._RTCRtpReceiver__decoder_queue
        self._pending = iter(())

        async def recv() -> bytes:  # RTCIceTransport._recv without the socket
            return next(self._pending)

        ice._recv = recv

    def run(self, packets: list[bytes]) -> float:
        self._pending = iter(packets)
        recv_next, get, empty = (self.dtls._recv_next, self.decoder_queue.get_nowait,
                                 self.decoder_queue.empty)

        async def drive(n: int) -> int:
            frames = 0
            for _ in range(n):
                await recv_next()
                while not empty():
                    get()
                    frames += 1
            return frames

        t0 = _clock()
        frames = self.loop.run_until_complete(drive(len(packets)))
        elapsed = _clock() - t0
        assert frames >= len(packets) - 5, frames
        return elapsed / len(packets)

    def close(self) -> None:
        st = self.receiver._RTCRtpReceiver__remote_streams[SSRC]
        assert st.packets_received > 0
        self.loop.close()


class _AiortcInline:
    """The inline chain: aiortc's per-packet calls
    without its transport and receiver objects (a lower bound)."""

    def __init__(self, key: bytes) -> None:
        self.rx = _libsrtp_rx(key)
        self.jb = JitterBuffer(capacity=16, prefetch=4)
        self.stats = StreamStatistics(48000)

    def run(self, packets: list[bytes]) -> float:
        unprotect, parse, add, account = (self.rx.unprotect, RtpPacket.parse, self.jb.add,
                                          self.stats.add)
        codec = OPUS
        frames = 0
        t0 = _clock()
        for d in packets:
            p = parse(unprotect(d))
            account(p)
            p._data = depayload(codec, p.payload)
            _, frame = add(p)
            if frame is not None:
                frames += 1
        elapsed = _clock() - t0
        assert frames > 0
        return elapsed / len(packets)


@pytest.mark.benchmark(group="engine-receive-path-vs-aiortc")
def test_engine_receive_path_vs_aiortc(benchmark):
    key = random.Random(7).randbytes(30)
    packets = _srtp_stream(key, N_PATH * (REPS_PATH + 1))
    slices = [packets[i * N_PATH:(i + 1) * N_PATH] for i in range(REPS_PATH + 1)]
    prepared = [(b"".join(sl), np.array([len(p) for p in sl], dtype=np.uint32)) for sl in slices]

    def run():
        subj, anch, inline = [], [], []
        subject, anchor, chain = _Subject(key), _Aiortc(key), _AiortcInline(key)
        try:
            subject.run(*prepared[0])  # warm-up
            anchor.run(slices[0])
            chain.run(slices[0])
            for r in range(1, REPS_PATH + 1):
                subj.append(subject.run(*prepared[r]))
                anch.append(anchor.run(slices[r]))
                inline.append(chain.run(slices[r]))
        finally:
            subject.close()
            anchor.close()
        return subj, anch, inline

    subj, anch, inline = benchmark.pedantic(run, rounds=1, iterations=1)
    med = statistics.median
    record_comparison(
        "engine-receive-path-vs-aiortc",
        subject="engine inject: SRTP -> RTP -> stats -> audio jitter buffer -> ring -> Python "
                "batch read (172 B, AES_CM_128_HMAC_SHA1_80)",
        anchor="aiortc 1.16 receive path through its objects: RTCDtlsTransport._recv_next "
               "(pylibsrtp unprotect) -> _handle_rtp_data (RtpPacket.parse, RtpRouter) -> "
               "RTCRtpReceiver._handle_rtp_packet (stats, depayload, JitterBuffer.add) -> "
               "decoder queue; no socket/ICE, no asyncio scheduling, no decoding",
        subject_ns=med(subj), anchor_ns=med(anch),
        ratio_per_rep_median=med(a / s for a, s in zip(anch, subj)),
        subject_spread_ns=[min(subj), max(subj)], anchor_spread_ns=[min(anch), max(anch)],
        subject_min_ns=min(subj), anchor_min_ns=min(anch), ratio_of_mins=min(anch) / min(subj),
        anchor_inline_chain_ns=med(inline),
        ratio_vs_inline_chain=med(inline) / med(subj),
        reps=REPS_PATH, packets=N_PATH, clock="thread CPU time (time.thread_time_ns)",
        target="ratio >= 20 vs aiortc's receive path (anchor_inline_chain_ns: pylibsrtp "
               "unprotect + RtpPacket.parse + StreamStatistics.add + depayload + "
               "JitterBuffer.add inline, a lower bound for aiortc)")


# ---- 2. loopback sockets, receiver CPU per datagram -------------------------------------------

N_SOCK = 50_000 if QUICK else 200_000
REPS_SOCK = 3 if QUICK else 5


def _blast(port: int, blob, lengths, n: int) -> int:
    elapsed = ffi.new("int64_t *")
    st = lib.mc_udp_blast(b"127.0.0.1", port, blob, lengths, n, n, elapsed)
    assert st == 0, st
    return int(elapsed[0])


def _sink_once(blob, lengths, n: int) -> tuple[float, int]:
    port = ffi.new("uint16_t *", 0)
    sink = ffi.new("mc_udp_sink **")
    assert lib.mc_udp_sink_start(b"127.0.0.1", port, sink) == 0
    time.sleep(0.02)
    _blast(port[0], blob, lengths, n)
    time.sleep(0.1)
    dg, by, cpu = ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("int64_t *")
    assert lib.mc_udp_sink_stop(sink[0], dg, by, cpu) == 0
    return cpu[0] / max(1, dg[0]), int(dg[0])


def _engine_once(key: bytes, blob, lengths, n: int) -> tuple[float, int, int]:
    with Engine("127.0.0.1", rtcp_interval_ms=1000) as e:
        s = e.add_session(srtp_profile=PROFILE, tx_key=bytes(30), rx_key=key, replay_window=1024)
        rx = s.add_receive_stream(SSRC, media="video", clock_rate=48000,
                                  ring_capacity=1 << 26, payload_types=[111])
        time.sleep(0.12)  # the I/O thread has sampled its CPU clock at least once
        cpu0, dg0 = e.io_cpu_ns(), e.stats().datagrams_in
        _blast(e.port, blob, lengths, n)
        last = -1
        while True:  # until the engine has taken everything that arrived
            time.sleep(0.1)
            st = e.stats()
            if st.datagrams_in == last:
                break
            last = st.datagrams_in
        cpu1 = e.io_cpu_ns()
        rs = rx.stats()
        got = st.datagrams_in - dg0
        assert rs.auth_failures == 0 and rs.replays == 0
        return (cpu1 - cpu0) / max(1, got), int(got), int(rs.records)


@pytest.mark.benchmark(group="engine-loopback-receive-vs-recvmmsg")
def test_engine_loopback_receive_vs_recvmmsg(benchmark):
    key = random.Random(8).randbytes(30)
    packets = _srtp_stream(key, N_SOCK)
    blob = ffi.from_buffer(b"".join(packets))
    lengths = ffi.new("uint32_t[]", [len(p) for p in packets])

    def run():
        subj, anch, got_s, got_a = [], [], [], []
        for _ in range(REPS_SOCK):
            ns, dg = _sink_once(blob, lengths, N_SOCK)
            anch.append(ns)
            got_a.append(dg)
            ns, dg, _records = _engine_once(key, blob, lengths, N_SOCK)
            subj.append(ns)
            got_s.append(dg)
        return subj, anch, got_s, got_a

    subj, anch, got_s, got_a = benchmark.pedantic(run, rounds=1, iterations=1)
    med = statistics.median
    record_comparison(
        "engine-loopback-receive-vs-recvmmsg",
        subject="engine I/O thread: recvmmsg -> SRTP -> RTP -> stats -> reorder buffer -> ring "
                "(receiver CPU per datagram, 172 B SRTP)",
        anchor="bare C recvmmsg(64) loop counting datagrams (receiver CPU per datagram)",
        subject_ns=med(subj), anchor_ns=med(anch),
        ratio_per_rep_median=med(a / s for a, s in zip(anch, subj)),
        subject_pkts_per_core_s=1e9 / med(subj), anchor_pkts_per_core_s=1e9 / med(anch),
        subject_received=got_s, anchor_received=got_a, sent_per_rep=N_SOCK, reps=REPS_SOCK,
        target="ratio >= 0.8")
