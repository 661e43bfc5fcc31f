"""A scripted meeting hosted by the emulator: the Graph side of a meeting script.

The media side (speech, cameras, screen shares, key presses) is pre-encoded
(``simmedia.prepare_meeting``) and played by the conference of each bot call
(``conference.ConferenceHandler``); this module does what the script says
happens in the meeting's roster, on the meeting's clock:

* everyone gets their media source ids when the meeting is created (so the
  conference knows the SSRCs of people who join later); a sharer also gets a
  video-based screen-sharing stream, ``inactive`` until they share;
* people with ``join_s <= 0`` are in the meeting before any bot joins;
* the script's time zero is the conference start: ``lead_in_s`` after the first
  bot's call into the meeting is established (``begin``); from then on people
  join and leave (roster updates to every bot call in the meeting) and start
  and stop sharing (roster + contentSharingSession notifications where enabled);
* a DTMF press is in-band only: RFC 4733 telephone events on the presser's
  audio stream (in the pre-encoded media). No Graph notification follows it:
  subscribeToTone is for service-hosted media
  (https://learn.microsoft.com/graph/api/call-subscribetotone);
* when the script ends (``end_after_script``) every call in the meeting ends
  the way Graph ends a call when its meeting ends: ``terminated`` (deleted)
  with resultInfo 200/5001 "The conversation has ended."
  (https://learn.microsoft.com/graph/api/call-delete, "Call end reason codes").
  The meeting is then set up afresh: the next bot to join starts the script
  again from time zero (without ``end_after_script``, once the last call has
  left after the script's end).

Nothing here needs the bot's process: a bot sees the meeting only through Graph
notifications and the media plane.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .scenario import new_person
from .script import MeetingScript
from .simmedia import MeetingMedia, prepare_meeting
from .state import MediaStream, Participant

if TYPE_CHECKING:
    from .conference import ConferenceHandler
    from .server import GraphEmulator

log = logging.getLogger(__name__)

#: https://learn.microsoft.com/graph/api/call-delete, "Call end reason codes"
MEETING_ENDED = (200, 5001, "The conversation has ended.")


class ScriptedMeeting:
    """One meeting of the emulator that follows a script (see the module doc)."""

    def __init__(
        self,
        emulator: GraphEmulator,
        handler: ConferenceHandler,
        script: MeetingScript,
        media: MeetingMedia,
        *,
        end_after_script: bool = True,
        tail_s: float = 0.5,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        """``tail_s``: how long after the script's end the calls are ended (the
        last packets' way through the bot's jitter buffers). ``on_event``:
        called with a line for every roster event (the demo's live view)."""
        self.emu = emulator
        self.handler = handler
        self.script = script
        self.media = media
        self.end_after_script = end_after_script
        self.tail_s = tail_s
        self.on_event = on_event
        self.meeting = emulator.create_meeting(subject=script.title)
        self.people: dict[str, Participant] = {}
        #: name -> (audio, video) source ids, and a sharer's screen-sharing source id
        self.source_ids: dict[str, tuple[int, int | None]] = {}
        self.screen_ids: dict[str, int] = {}
        for pm in media.participants:
            p = pm.participant
            person = new_person(
                self.meeting, p.name, tenant_id=self.meeting.tenant_id, video=pm.video is not None
            )
            video, audio = person.stream("video"), person.stream("audio")
            assert audio is not None  # new_person gives everyone a microphone
            self.source_ids[p.name] = (
                int(audio.source_id),
                int(video.source_id) if video is not None else None,
            )
            if pm.screen is not None:
                stream = MediaStream("videoBasedScreenSharing", self.meeting.next_source_id(), "inactive")
                person.media_streams.append(stream)
                self.screen_ids[p.name] = int(stream.source_id)
            self.people[p.name] = person
        #: the script's time zero on ``time.monotonic_ns()``; None until a bot joins
        self.start_ns: int | None = None
        self.runs = 0  # how many times the script has started
        self._task: asyncio.Task | None = None
        self._join_initial()
        handler.meetings[self.meeting.id] = self

    @classmethod
    async def prepare(
        cls,
        emulator: GraphEmulator,
        handler: ConferenceHandler,
        script: MeetingScript,
        *,
        video: bool = True,
        **kw,
    ) -> ScriptedMeeting:
        """Encode the script's media (off the event loop: seconds of espeak-ng and
        x264 for the default meeting) and host the meeting."""
        media = await asyncio.get_running_loop().run_in_executor(
            None, lambda: prepare_meeting(script, video=video)
        )
        return cls(emulator, handler, script, media, **kw)

    @property
    def join_web_url(self) -> str:
        return self.meeting.join_web_url

    def describe(self) -> dict:
        """The meeting's addresses and people (the emulator process prints this)."""
        return {
            "id": self.meeting.id,
            "title": self.script.title,
            "joinWebUrl": self.meeting.join_web_url,
            "joinMeetingId": self.meeting.join_meeting_id,
            "durationS": self.script.duration_s,
            "participants": {
                name: {
                    "id": p.id,
                    "audioSourceId": self.source_ids[name][0],
                    "videoSourceId": self.source_ids[name][1],
                    "screenSharingSourceId": self.screen_ids.get(name),
                }
                for name, p in self.people.items()
            },
        }

    def _join_initial(self) -> None:
        for p in self.script.participants:
            if p.join_s <= 0:
                self.emu.service.join_meeting(self.meeting, self.people[p.name])

    def _line(self, text: str) -> None:
        log.info("meeting %r: %s", self.script.title, text)
        if self.on_event is not None:
            self.on_event(text)

    # ---- the script's clock --------------------------------------------------------------

    def begin(self, lead_in_s: float) -> int:
        """A bot's call into the meeting starts its media: the first one sets the
        script's time zero (``lead_in_s`` from now) and starts the roster side;
        returns time zero."""
        if self.start_ns is None:
            self.start_ns = time.monotonic_ns() + int(lead_in_s * 1e9)
            self.runs += 1
            self._task = asyncio.get_running_loop().create_task(self._run(self.start_ns))
            self._line(
                f"starts (run {self.runs}): {len(self.script.participants)} people, "
                f"{self.script.duration_s:g} s"
            )
        return self.start_ns

    def _events(self) -> list[tuple[float, int, str, str, str | None]]:
        video = bool(self.screen_ids)
        events = (
            [(p.join_s, 0, "join", p.name, None) for p in self.script.participants if p.join_s > 0]
            + [
                (p.leave_s, 1, "leave", p.name, None)
                for p in self.script.participants
                if p.leave_s is not None
            ]
            + [
                (sh.start_s, 2, "share", p.name, None)
                for p in self.script.participants
                for sh in p.screen_share
                if video and p.name in self.screen_ids
            ]
            + [
                (sh.end_s, 3, "unshare", p.name, None)
                for p in self.script.participants
                for sh in p.screen_share
                if video and p.name in self.screen_ids
            ]
            + [(d.at_s, 4, "dtmf", p.name, d.digits) for p in self.script.participants for d in p.dtmf]
        )
        return sorted((e for e in events if e[0] < self.script.duration_s), key=lambda e: (e[0], e[1]))

    async def _sleep_until(self, start_ns: int, at_s: float) -> None:
        delay = start_ns / 1e9 + at_s - time.monotonic_ns() / 1e9
        if delay > 0:
            await asyncio.sleep(delay)

    async def _run(self, start_ns: int) -> None:
        meeting = self.meeting
        for at, _, what, name, digits in self._events():
            await self._sleep_until(start_ns, at)
            person = self.people[name]
            if what == "join":
                self.emu.service.join_meeting(meeting, person)
                self._line(f"{name} joined")
            elif what == "leave":
                if person.id in meeting.participants:
                    self.emu.remove_participant(meeting.id, person.id)
                    self._line(f"{name} left")
            elif what in ("share", "unshare"):
                if person.id in meeting.participants:
                    self.emu.share_screen(meeting.id, person.id, what == "share")
                    self._line(f"{name} {'started' if what == 'share' else 'stopped'} sharing their screen")
            else:  # in-band only (RFC 4733 on their audio stream, in the conference's media)
                self._line(f"{name} pressed {digits}")
        await self._sleep_until(start_ns, self.script.duration_s + self.tail_s)
        self._line("the script has ended")
        if self.end_after_script:
            self.end()
        elif not self.emu.service.meeting_calls(self.meeting):
            self._reset()

    def call_left(self) -> None:
        """A bot's call into the meeting ended: once the script is over and no call is left, the
        meeting is set up afresh (without ``end_after_script`` the calls stay after the script;
        the next bot after them starts it again)."""
        if self.start_ns is None or self.emu.service.meeting_calls(self.meeting):
            return
        if time.monotonic_ns() >= self.start_ns + int((self.script.duration_s + self.tail_s) * 1e9):
            self._reset()

    def end(self) -> None:
        """End the meeting now: every call in it gets ``terminated`` (200/5001),
        and the meeting is set up afresh for the next bot."""
        code, subcode, message = MEETING_ENDED
        for call in self.emu.service.meeting_calls(self.meeting):
            self.emu.service.end_by_remote(call, message, code=code, subcode=subcode)
        self._line("ended: every call in it is terminated (200/5001)")
        self._reset()

    def _reset(self) -> None:
        self.meeting.participants.clear()
        self.meeting.sharing_session_id = None
        for person in self.people.values():
            stream = person.stream("videoBasedScreenSharing")
            if stream is not None:
                stream.direction, stream.label = "inactive", None
        self.start_ns = None
        self._task = None
        self._join_initial()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
