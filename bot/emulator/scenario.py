"""Simulated people and the control API (``/emulator/...``) that tests and the demo use to drive
them: meetings, participants joining, leaving and muting, incoming calls, DTMF key presses,
fault injection, and the record of what the emulator received and sent."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import wave
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .notify import NotificationFaults
from .service import GraphError
from .state import MediaStream, Meeting, Participant, identity, new_id, next_source_id

if TYPE_CHECKING:
    from .server import GraphEmulator


def new_meeting(
    tenant_id: str,
    *,
    organizer_id: str | None = None,
    subject: str | None = None,
    join_meeting_id: str | None = None,
    passcode: str | None = None,
) -> Meeting:
    meeting_id = new_id()
    return Meeting(
        id=meeting_id,
        thread_id=f"19:meeting_{secrets.token_urlsafe(32).replace('-', 'A').replace('_', 'B')}@thread.v2",
        organizer_id=organizer_id or new_id(),
        tenant_id=tenant_id,
        join_meeting_id=join_meeting_id or str(secrets.randbelow(9 * 10**11) + 10**11),
        passcode=passcode,
        token=secrets.token_urlsafe(24),
        subject=subject,
    )


def new_person(
    meeting: Meeting | None,
    display_name: str,
    *,
    user_id: str | None = None,
    tenant_id: str | None = None,
    video: bool = False,
    muted: bool = False,
) -> Participant:
    def source_id() -> str:
        return meeting.next_source_id() if meeting is not None else next_source_id()

    streams = [MediaStream("audio", source_id(), "sendReceive", label="main-audio")]
    if video:
        streams.append(MediaStream("video", source_id(), "sendOnly"))
    return Participant(
        id=new_id(),
        identity=identity("user", user_id or new_id(), display_name, tenant_id),
        media_streams=streams,
        is_muted=muted,
        region="westus",
    )


def meeting_description(meeting: Meeting) -> dict:
    return {
        "id": meeting.id,
        "threadId": meeting.thread_id,
        "messageId": meeting.message_id,
        "organizerId": meeting.organizer_id,
        "tenantId": meeting.tenant_id,
        "joinWebUrl": meeting.join_web_url,
        "joinMeetingId": meeting.join_meeting_id,
        "passcode": meeting.passcode,
        "token": meeting.token,
        "participants": [p.to_graph() for p in meeting.participants.values()],
    }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


class ControlRoutes:
    def __init__(self, emulator: GraphEmulator) -> None:
        self.emu = emulator

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/emulator/meetings", self.create_meeting)
        r.add_get("/emulator/meetings/{meeting_id}", self.get_meeting)
        r.add_post("/emulator/meetings/{meeting_id}/participants", self.add_participant)
        r.add_delete("/emulator/meetings/{meeting_id}/participants/{participant_id}", self.remove_participant)
        r.add_post(
            "/emulator/meetings/{meeting_id}/participants/{participant_id}/mute", self.mute_participant
        )
        r.add_post(
            "/emulator/meetings/{meeting_id}/participants/{participant_id}/screen-sharing",
            self.screen_sharing,
        )
        r.add_post("/emulator/incoming-call", self.incoming_call)
        r.add_get("/emulator/calls", self.list_calls)
        r.add_post("/emulator/calls/{call_id}/tones", self.tones)
        r.add_post("/emulator/calls/{call_id}/hang-up", self.hang_up)
        r.add_get("/emulator/calls/{call_id}/media", self.call_media)
        r.add_get("/emulator/calls/{call_id}/bot-audio", self.bot_audio)
        r.add_post("/emulator/faults", self.set_faults)
        r.add_get("/emulator/requests", self.list_requests)
        r.add_get("/emulator/notifications", self.list_notifications)
        r.add_get("/emulator/recordings/{operation_id}", self.recording)

    def _meeting(self, request: web.Request) -> Meeting:
        meeting = self.emu.service.meetings.get(request.match_info["meeting_id"])
        if meeting is None:
            raise GraphError(404, "ItemNotFound", "meeting not found")
        return meeting

    async def _body(self, request: web.Request) -> dict:
        raw = await request.read()
        return json.loads(raw) if raw else {}

    async def create_meeting(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        meeting = self.emu.create_meeting(
            subject=body.get("subject"),
            join_meeting_id=body.get("joinMeetingId"),
            passcode=body.get("passcode"),
            organizer_id=body.get("organizerId"),
        )
        return _json(meeting_description(meeting), 201)

    async def get_meeting(self, request: web.Request) -> web.Response:
        return _json(meeting_description(self._meeting(request)))

    async def add_participant(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        person = self.emu.add_participant(
            self._meeting(request).id,
            body.get("displayName", "Participant"),
            user_id=body.get("id"),
            video=bool(body.get("video")),
            muted=bool(body.get("isMuted")),
        )
        return _json(person.to_graph(), 201)

    async def remove_participant(self, request: web.Request) -> web.Response:
        self.emu.remove_participant(self._meeting(request).id, request.match_info["participant_id"])
        return web.Response(status=204)

    async def mute_participant(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.emu.service.set_muted(
            self._meeting(request), request.match_info["participant_id"], bool(body.get("isMuted", True))
        )
        return web.Response(status=204)

    async def screen_sharing(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        session_id = self.emu.share_screen(
            self._meeting(request).id, request.match_info["participant_id"], bool(body.get("sharing", True))
        )
        return _json({"contentSharingSessionId": session_id})

    async def incoming_call(self, request: web.Request) -> web.Response:
        """Ring the bot. With ``script`` (a meeting script with one participant, as
        a file path or as the script's tables in JSON) the caller is that person:
        once the call is established they speak and press keys (RFC 4733, in-band)
        on the script's clock, which starts the emulator's lead-in after that."""
        body = await self._body(request)
        display_name = body.get("displayName", "Caller")
        media = None
        if body.get("script") is not None:
            display_name, media = await self._caller_media(body["script"])
        call = self.emu.incoming_call(
            display_name=display_name,
            user_id=body.get("id"),
            phone=body.get("phone"),
            modalities=body.get("modalities") or ["audio"],
            meeting_id=body.get("meetingId"),
            app_id=body.get("appId"),
            observed_participant_id=body.get("observedParticipantId"),
        )
        if media is not None:
            self._media_handler().play_for_call(call.id, media)
        return _json({"id": call.id, "state": call.state}, 201)

    def _media_handler(self):
        handler = self.emu.service.media_handler
        if not hasattr(handler, "play_for_call"):
            raise GraphError(400, "BadRequest", "this emulator has no media side to play a scripted caller")
        return handler

    async def _caller_media(self, script: Any):
        from .script import ScriptError, load_script, parse_script
        from .simmedia import prepare_meeting

        self._media_handler()
        try:
            if isinstance(script, str):
                parsed = load_script(script)
            elif isinstance(script, dict):
                parsed = parse_script(script)
            else:
                raise ScriptError("script: a file path or the script's tables")
        except ScriptError as exc:
            raise GraphError(400, "BadRequest", f"script: {exc}") from None
        if len(parsed.participants) != 1:
            raise GraphError(400, "BadRequest", "script: a caller's script has exactly one [[participant]]")
        parsed = parsed.without_video()
        media = await asyncio.get_running_loop().run_in_executor(
            None, lambda: prepare_meeting(parsed, video=False)
        )
        return parsed.participants[0].name, media

    async def call_media(self, request: web.Request) -> web.Response:
        report = self._media_handler().report(request.match_info["call_id"])
        if report is None:
            raise GraphError(404, "ItemNotFound", "no conference media for this call")
        return _json(report)

    async def bot_audio(self, request: web.Request) -> web.Response:
        """What the bot sent in a scripted caller's call, decoded: a 16 kHz mono WAV."""
        pcm = self._media_handler().bot_audio(request.match_info["call_id"])
        if pcm is None:
            raise GraphError(404, "ItemNotFound", "no conference media for this call")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm.tobytes())
        return web.Response(body=buf.getvalue(), content_type="audio/wav")

    async def list_calls(self, request: web.Request) -> web.Response:
        def status(c: Any) -> list[dict]:
            return [{"status": s, "time": t} for s, t in c.recording_status]

        calls = [
            {
                "id": c.id,
                "state": c.state,
                "kind": c.kind,
                "direction": c.direction,
                "participants": len(c.participants),
                "recordingStatus": status(c),
            }
            for c in self.emu.service.calls.values()
        ]
        ended = [
            {"id": c.id, "state": c.state, "recordingStatus": status(c)}
            for c in self.emu.service.ended.values()
        ]
        return _json({"active": calls, "ended": ended})

    async def tones(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        sent = self.emu.press_tones(request.match_info["call_id"], body.get("tones") or [])
        return _json({"sent": sent})

    async def hang_up(self, request: web.Request) -> web.Response:
        self.emu.end_call(request.match_info["call_id"])
        return web.Response(status=204)

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        for rule in body.get("http") or []:
            self.emu.fail_requests(
                rule["status"],
                count=rule.get("count", 1),
                retry_after=rule.get("retryAfter"),
                path=rule.get("path"),
                method=rule.get("method"),
            )
        if "notifications" in body:
            self.emu.notification_faults = NotificationFaults(**body["notifications"])
        return _json(
            {
                "http": [asdict(f) for f in self.emu.http_faults],
                "notifications": asdict(self.emu.notification_faults),
            }
        )

    async def list_requests(self, request: web.Request) -> web.Response:
        return _json([asdict(r) for r in self.emu.requests])

    async def list_notifications(self, request: web.Request) -> web.Response:
        return _json(
            [
                {
                    "callId": d.call_id,
                    "url": d.url,
                    "status": d.status,
                    "error": d.error,
                    "duplicate": d.duplicate,
                    "body": d.body,
                }
                for d in self.emu.deliveries
            ]
        )

    async def recording(self, request: web.Request) -> web.StreamResponse:
        entry = self.emu.service.recordings.get(request.match_info["operation_id"])
        if entry is None:
            raise GraphError(
                404, "ItemNotFound", "recording not found (recordings are discarded with the call)"
            )
        token, audio = entry
        supplied = request.headers.get("Authorization", "")
        if not secrets.compare_digest(supplied, f"Bearer {token}"):
            raise GraphError(401, "InvalidAuthenticationToken", "recordingAccessToken required")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for offset in range(0, len(audio), 16384):
            await response.write(audio[offset : offset + 16384])
        await response.write_eof()
        return response
