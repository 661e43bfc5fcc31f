"""Meeting scripts: who joins and leaves when, what each participant says
(espeak-ng speech or a WAV file), shows (a moving test pattern with their name,
or a video file), which DTMF digits they press and when they share a screen.

The format is TOML (``bot/emulator/meetings/default.toml`` is the default)::

    [meeting]
    title = "Weekly sync"
    duration_s = 20

    [[participant]]
    name = "Alice"
    voice = "en-us+f3"            # espeak-ng voice
    video = "pattern"             # "pattern", "none" or a path to a video file
    width = 640
    height = 360
    fps = 15
    join_s = 0.0
    leave_s = 20.0                # optional: stays to the end
    say = [ { at_s = 1.0, text = "good morning everyone" } ]
    dtmf = [ { at_s = 5.0, digits = "12#" } ]
    screen_share = [ { start_s = 8.0, end_s = 12.0 } ]

Every problem is reported with where it is (``participant[1].say[0].at_s``).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_SCRIPT = Path(__file__).parent / "meetings" / "default.toml"
_DTMF = re.compile(r"^[0-9*#A-Da-d]+$")


class ScriptError(ValueError):
    """A meeting script that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Utterance:
    at_s: float
    text: str = ""
    wav: Path | None = None


@dataclass(frozen=True)
class DtmfPress:
    at_s: float
    digits: str


@dataclass(frozen=True)
class ScreenShare:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Participant:
    name: str
    voice: str = "en-us"
    video: str = "pattern"
    width: int = 640
    height: int = 360
    fps: float = 15.0
    join_s: float = 0.0
    leave_s: float | None = None
    say: tuple[Utterance, ...] = ()
    dtmf: tuple[DtmfPress, ...] = ()
    screen_share: tuple[ScreenShare, ...] = ()

    @property
    def has_video(self) -> bool:
        return self.video != "none"

    def present_at(self, t_s: float) -> bool:
        return self.join_s <= t_s and (self.leave_s is None or t_s < self.leave_s)

    def words(self) -> list[str]:
        """Every word this participant is scripted to say (lower case)."""
        return [w for u in self.say for w in re.findall(r"[a-z']+", u.text.lower())]


@dataclass(frozen=True)
class MeetingScript:
    title: str
    duration_s: float
    participants: tuple[Participant, ...] = field(default_factory=tuple)
    source: Path | None = None

    def participant(self, name: str) -> Participant:
        for p in self.participants:
            if p.name == name:
                return p
        raise KeyError(name)

    def with_duration(self, duration_s: float) -> MeetingScript:
        """The script cut (or stretched) to ``duration_s``: what would happen
        after the end is left out, screen shares end with the meeting."""
        if duration_s <= 0:
            raise ScriptError(f"duration must be > 0, not {duration_s}")
        ps = []
        for p in self.participants:
            if p.join_s >= duration_s:
                continue
            shares = tuple(
                ScreenShare(sh.start_s, min(sh.end_s, duration_s))
                for sh in p.screen_share
                if sh.start_s < duration_s
            )
            ps.append(
                Participant(
                    **{
                        **p.__dict__,
                        "leave_s": p.leave_s if p.leave_s is not None and p.leave_s < duration_s else None,
                        "say": tuple(u for u in p.say if u.at_s < duration_s),
                        "dtmf": tuple(d for d in p.dtmf if d.at_s < duration_s),
                        "screen_share": shares,
                    }
                )
            )
        return MeetingScript(self.title, duration_s, tuple(ps), self.source)

    def without_video(self) -> MeetingScript:
        ps = tuple(Participant(**{**p.__dict__, "video": "none"}) for p in self.participants)
        return MeetingScript(self.title, self.duration_s, ps, self.source)


_REQUIRED = object()


def _num(d: dict, key: str, where: str, default: object = _REQUIRED, *, minimum: float = 0.0) -> float:
    v = d.get(key, default)
    if v is _REQUIRED:
        raise ScriptError(f"{where}.{key}: required")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScriptError(f"{where}.{key}: expected a number, got {v!r}")
    if v < minimum:
        raise ScriptError(f"{where}.{key}: must be >= {minimum}, got {v}")
    return float(v)


def _participant(d: dict, where: str, base: Path, duration: float) -> Participant:
    if not isinstance(d, dict):
        raise ScriptError(f"{where}: expected a table")
    unknown = set(d) - {
        "name",
        "voice",
        "video",
        "width",
        "height",
        "fps",
        "join_s",
        "leave_s",
        "say",
        "dtmf",
        "screen_share",
    }
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ScriptError(f"{where}.name: required, a non-empty string")
    video = d.get("video", "pattern")
    if not isinstance(video, str):
        raise ScriptError(f'{where}.video: expected "pattern", "none" or a file path')
    if video not in ("pattern", "none"):
        path = (base / video) if not Path(video).is_absolute() else Path(video)
        if not path.exists():
            raise ScriptError(f"{where}.video: file not found: {path}")
        video = str(path)
    width = int(_num(d, "width", where, 640, minimum=16))
    height = int(_num(d, "height", where, 360, minimum=16))
    if width % 2 or height % 2:
        raise ScriptError(f"{where}: width and height must be even (yuv420p), got {width}x{height}")
    fps = _num(d, "fps", where, 15.0, minimum=1.0)
    join_s = _num(d, "join_s", where, 0.0)
    leave_s = None
    if "leave_s" in d:
        leave_s = _num(d, "leave_s", where)
        if leave_s <= join_s:
            raise ScriptError(f"{where}.leave_s: must be after join_s ({join_s})")
    say = []
    for i, u in enumerate(d.get("say", [])):
        w = f"{where}.say[{i}]"
        if not isinstance(u, dict):
            raise ScriptError(f"{w}: expected a table")
        at = _num(u, "at_s", w)
        text = u.get("text", "")
        wav = u.get("wav")
        if not text and not wav:
            raise ScriptError(f"{w}: needs text or wav")
        if wav is not None:
            wav = Path(wav) if Path(wav).is_absolute() else base / wav
            if not wav.exists():
                raise ScriptError(f"{w}.wav: file not found: {wav}")
        if at < join_s or (leave_s is not None and at >= leave_s) or at >= duration:
            raise ScriptError(f"{w}.at_s: {at} is outside the participant's time in the meeting")
        say.append(Utterance(at, str(text), wav))
    dtmf = []
    for i, p in enumerate(d.get("dtmf", [])):
        w = f"{where}.dtmf[{i}]"
        digits = p.get("digits", "") if isinstance(p, dict) else ""
        if not _DTMF.match(digits):
            raise ScriptError(f"{w}.digits: expected digits 0-9, *, #, A-D, got {digits!r}")
        dtmf.append(DtmfPress(_num(p, "at_s", w), digits.upper()))
    shares = []
    for i, s in enumerate(d.get("screen_share", [])):
        w = f"{where}.screen_share[{i}]"
        start, end = _num(s, "start_s", w), _num(s, "end_s", w)
        if end <= start:
            raise ScriptError(f"{w}: end_s must be after start_s")
        shares.append(ScreenShare(start, end))
    return Participant(
        name.strip(),
        str(d.get("voice", "en-us")),
        video,
        width,
        height,
        fps,
        join_s,
        leave_s,
        tuple(sorted(say, key=lambda u: u.at_s)),
        tuple(dtmf),
        tuple(shares),
    )


def parse_script(data: dict, source: Path | None = None) -> MeetingScript:
    base = source.parent if source else Path.cwd()
    meeting = data.get("meeting", {})
    if not isinstance(meeting, dict):
        raise ScriptError("meeting: expected a table")
    duration = _num(meeting, "duration_s", "meeting", 20.0, minimum=1.0)
    raw = data.get("participant", [])
    if not isinstance(raw, list) or not raw:
        raise ScriptError("participant: at least one [[participant]] is required")
    ps = tuple(_participant(p, f"participant[{i}]", base, duration) for i, p in enumerate(raw))
    names = [p.name for p in ps]
    if len(set(names)) != len(names):
        raise ScriptError(f"participant names must be unique: {names}")
    return MeetingScript(str(meeting.get("title", "mediabot demo")), duration, ps, source)


def load_script(path: str | Path | None = None) -> MeetingScript:
    """Load a meeting script (the default one when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_SCRIPT
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScriptError(f"meeting script not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScriptError(f"{path}: not valid TOML: {e}") from None
    return parse_script(data, path)


def dump_script(script: MeetingScript) -> str:
    """``script`` as TOML that :func:`load_script` reads back to the same
    script (file paths absolute, so the text can live anywhere)."""

    def s(v: object) -> str:
        return json.dumps(str(v))  # a TOML basic string

    def n(v: float) -> str:
        return repr(float(v))

    lines = ["[meeting]", f"title = {s(script.title)}", f"duration_s = {n(script.duration_s)}", ""]
    for p in script.participants:
        lines += [
            "[[participant]]",
            f"name = {s(p.name)}",
            f"voice = {s(p.voice)}",
            f"video = {s(p.video)}",
            f"width = {p.width}",
            f"height = {p.height}",
            f"fps = {n(p.fps)}",
            f"join_s = {n(p.join_s)}",
        ]
        if p.leave_s is not None:
            lines.append(f"leave_s = {n(p.leave_s)}")
        says = []
        for u in p.say:
            parts = [f"at_s = {n(u.at_s)}"]
            if u.text:
                parts.append(f"text = {s(u.text)}")
            if u.wav is not None:
                parts.append(f"wav = {s(Path(u.wav).resolve())}")
            says.append("{ " + ", ".join(parts) + " }")
        lines.append(f"say = [{', '.join(says)}]")
        lines.append(
            "dtmf = [" + ", ".join(f"{{ at_s = {n(d.at_s)}, digits = {s(d.digits)} }}" for d in p.dtmf) + "]"
        )
        lines.append(
            "screen_share = ["
            + ", ".join(f"{{ start_s = {n(sh.start_s)}, end_s = {n(sh.end_s)} }}" for sh in p.screen_share)
            + "]"
        )
        lines.append("")
    return "\n".join(lines)
