"""DTMF as RFC 4733 telephone events: payload parse/build, a receiver that
reports each digit once when it starts and once when it ends (redundant end
packets ignored), and a sender that turns a tone string into the packet
schedule, one call per 20 ms tick (like Graph's ``sendDtmfTones``)."""

from __future__ import annotations

from dataclasses import dataclass

from .._native import ffi, lib
from ..errors import check

PAYLOAD_BYTES = lib.MC_DTMF_PAYLOAD_BYTES
TONES = "0123456789*#ABCD"


@dataclass(frozen=True)
class TelephoneEvent:
    """One RFC 4733 payload (§2.3): event code, E bit, volume (-dBm0), duration (ticks)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        ev = ffi.new("mc_dtmf_event *")
        check(lib.mc_dtmf_parse(payload, len(payload), ev), "telephone-event parse")
        return cls(ev.event, bool(ev.end), ev.volume, ev.duration)

    def __bytes__(self) -> bytes:
        ev = ffi.new(
            "mc_dtmf_event *",
            {"event": self.event, "end": int(self.end), "volume": self.volume, "duration": self.duration},
        )
        out = ffi.new("uint8_t[4]")
        check(lib.mc_dtmf_build(ev, out, 4), "telephone-event build")
        return bytes(out)


@dataclass(frozen=True)
class DtmfDigit:
    """A digit event: ``end`` False when the tone started, True when it ended."""

    digit: str
    event: int
    end: bool
    duration_ticks: int
    rtp_timestamp: int
    volume: int


@dataclass(frozen=True)
class DtmfPacket:
    payload: bytes
    rtp_timestamp: int
    marker: bool


def _digit(d) -> DtmfDigit:
    return DtmfDigit(chr(d.digit), d.event, bool(d.end), d.duration_ticks, d.rtp_timestamp, d.volume)


class DtmfReceiver:
    def __init__(self) -> None:
        out = ffi.new("mc_dtmf_receiver **")
        check(lib.mc_dtmf_receiver_new(out), "DTMF receiver")
        self._h = ffi.gc(out[0], lib.mc_dtmf_receiver_free)
        self._out = ffi.new("mc_dtmf_digit[3]")
        self._count = ffi.new("uint32_t *")

    def push(self, payload: bytes, rtp_timestamp: int, marker: bool = False) -> list[DtmfDigit]:
        """Feed one telephone-event payload; returns the digit events it completes."""
        check(
            lib.mc_dtmf_receiver_push(
                self._h,
                payload,
                len(payload),
                rtp_timestamp & 0xFFFFFFFF,
                int(marker),
                self._out,
                self._count,
            ),
            "DTMF push",
        )
        return [_digit(self._out[i]) for i in range(self._count[0])]

    def flush(self) -> list[DtmfDigit]:
        """End an event whose end packets never arrived."""
        check(lib.mc_dtmf_receiver_flush(self._h, self._out, self._count), "DTMF flush")
        return [_digit(self._out[i]) for i in range(self._count[0])]

    def stats(self) -> dict[str, int]:
        st = ffi.new("mc_dtmf_receiver_stats *")
        check(lib.mc_dtmf_receiver_get_stats(self._h, st), "DTMF stats")
        return {
            "packets": st.packets,
            "digits": st.digits,
            "duplicates": st.duplicates,
            "malformed": st.malformed,
        }


class DtmfSender:
    def __init__(self, clock_rate_hz: int = 8000, packet_ms: int = 20) -> None:
        out = ffi.new("mc_dtmf_sender **")
        check(lib.mc_dtmf_sender_new(clock_rate_hz, packet_ms, out), "DTMF sender")
        self.clock_rate_hz = clock_rate_hz
        self.packet_ms = packet_ms
        self._h = ffi.gc(out[0], lib.mc_dtmf_sender_free)
        self._out = ffi.new("mc_dtmf_packet[]", lib.MC_DTMF_MAX_PACKETS_PER_TICK)
        self._u = ffi.new("uint32_t[2]")

    def start(self, tones: str, tone_ms: int = 100, gap_ms: int = 100, volume: int = 10) -> None:
        """Queue ``tones`` (0-9, *, #, A-D); each lasts ``tone_ms`` then ``gap_ms`` of pause."""
        check(
            lib.mc_dtmf_sender_start(self._h, tones.encode("ascii"), tone_ms, gap_ms, volume),
            f"DTMF start {tones!r}",
        )

    def tick(self, rtp_timestamp: int) -> tuple[list[DtmfPacket], bool]:
        """One packet interval: the packets to send now, and whether a tone
        occupies it (the audio stream must not send media then)."""
        check(
            lib.mc_dtmf_sender_tick(self._h, rtp_timestamp & 0xFFFFFFFF, self._out, self._u, self._u + 1),
            "DTMF tick",
        )
        packets = [
            DtmfPacket(bytes(self._out[i].payload), self._out[i].rtp_timestamp, bool(self._out[i].marker))
            for i in range(self._u[0])
        ]
        return packets, bool(self._u[1])

    @property
    def idle(self) -> bool:
        out = ffi.new("uint32_t *")
        check(lib.mc_dtmf_sender_idle(self._h, out), "DTMF idle")
        return bool(out[0])
