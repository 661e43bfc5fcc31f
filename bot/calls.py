"""Call state: the state machine, the roster, the media source map, and every call operation.

A :class:`Call` is fed notifications in order (by the webhook's per-call queue) through
:meth:`Call.handle_notification`, and offers each Graph action as an async method that
returns when the action's outcome is known (a ``completed`` answer, or the later ``deleted``
operation notification; https://learn.microsoft.com/graph/api/resources/commsoperation) and
raises :class:`OperationFailed` with its resultInfo otherwise. User-facing events are delivered
from a separate per-call task, so a handler that awaits an operation never blocks the
notification that completes it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from .graph import models as m
from .graph.api import CallsApi
from .graph.errors import CallTerminated, GraphNotFound, InvalidCallState, OperationFailed
from .roster import Roster, RosterChange

log = logging.getLogger("bot.calls")

KEEPALIVE_INTERVAL_S = 15 * 60.0

# ---- state machine (call states: https://learn.microsoft.com/graph/api/resources/call) ----

EARLY_STATES = frozenset({"incoming", "ringing", "establishing"})
ACTIVE_STATES = frozenset({"established", "hold", "transferring", "transferAccepted", "redirecting"})
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset(
        {
            "incoming",
            "establishing",
            "ringing",
            "established",
            "hold",
            "transferring",
            "transferAccepted",
            "redirecting",
            "terminating",
            "terminated",
        }
    ),
    "incoming": frozenset(
        {"establishing", "ringing", "established", "redirecting", "terminating", "terminated"}
    ),
    "ringing": frozenset({"establishing", "established", "terminating", "terminated"}),
    "establishing": frozenset({"ringing", "established", "terminating", "terminated"}),
    "established": frozenset({"hold", "transferring", "redirecting", "terminating", "terminated"}),
    "hold": frozenset({"established", "transferring", "terminating", "terminated"}),
    "transferring": frozenset({"transferAccepted", "established", "terminating", "terminated"}),
    "transferAccepted": frozenset({"established", "terminating", "terminated"}),
    "redirecting": frozenset({"established", "terminating", "terminated"}),
    "terminating": frozenset({"terminated"}),
    "terminated": frozenset(),
}


class Transition:
    CHANGED = "changed"
    SAME = "same"
    STALE = "stale"  # an earlier state arriving late (establishing after established)
    INVALID = "invalid"


class CallStateMachine:
    """The call's ``state``: documented transitions only; late early-states ignored."""

    def __init__(self, state: str | None = None) -> None:
        self.state = state
        self.invalid_transitions = 0
        self.history: list[str] = [state] if state else []

    def apply(self, new: str | None) -> str:
        if new is None or new == self.state:
            return Transition.SAME
        if not isinstance(new, str):
            # the webhook refuses such bodies (400); a state read by GET gets the same care
            self.invalid_transitions += 1
            log.warning("call state %r is not a string: ignored", new)
            return Transition.INVALID
        new = m.CallState.canonical(new)
        if new == self.state:
            return Transition.SAME
        current = self.state
        if new in EARLY_STATES and (current in ACTIVE_STATES or current == "terminating"):
            log.debug("call state %s after %s: late notification ignored", new, current)
            return Transition.STALE
        if new not in TRANSITIONS.get(current, frozenset()):
            self.invalid_transitions += 1
            log.warning("invalid call state transition %s -> %s rejected", current, new)
            return Transition.INVALID
        self.state = new
        self.history.append(new)
        return Transition.CHANGED

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"


# ---- tones ---------------------------------------------------------------------------------------


class ToneSequencer:
    """Delivers a call's tone notifications once each, in ``toneInfo.sequenceId`` order.

    Notifications can arrive reordered and redelivered; each key press carries a sequence id
    (the documented tone notification starts at 1). A tone that is next in sequence is delivered
    at once, with any queued tones that follow it; a tone after a gap waits up to ``gap_wait_s``
    for the missing ones, then everything queued is delivered in order and the gap is given up
    (a tone arriving after that is late and dropped). A sequence id already delivered or queued
    is a duplicate and dropped. Tones without a sequence id are delivered as they come.
    """

    def __init__(self, deliver: Callable[[m.ToneInfo], None], *, gap_wait_s: float = 0.5) -> None:
        self._deliver = deliver
        self.gap_wait_s = gap_wait_s
        self.last: int | None = None  # the highest sequence id delivered
        self._pending: dict[int, m.ToneInfo] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._delivered: collections.deque[int] = collections.deque(maxlen=256)
        self.duplicates = 0
        self.late = 0
        self.gaps_skipped = 0

    def push(self, tone: m.ToneInfo) -> None:
        seq = tone.sequence_id
        if not isinstance(seq, int):
            self._deliver(tone)
            return
        if seq in self._pending or seq in self._delivered:
            self.duplicates += 1
            log.debug("tone %s (sequenceId %d) delivered again: dropped", tone.tone, seq)
            return
        if self.last is not None and seq < self.last:
            self.late += 1
            log.info("tone %s (sequenceId %d) came after its gap was given up: dropped", tone.tone, seq)
            return
        self._pending[seq] = tone
        self._release_in_order()
        if self._pending and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.gap_wait_s, self.flush)
        elif not self._pending and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release_in_order(self) -> None:
        # the documented sequence starts at 1; anything at or below the next expected id is due
        while self._pending:
            expected = 1 if self.last is None else self.last + 1
            first = min(self._pending)
            if first > expected:
                return
            self._emit(self._pending.pop(first))

    def _emit(self, tone: m.ToneInfo) -> None:
        assert isinstance(tone.sequence_id, int)
        self.last = tone.sequence_id
        self._delivered.append(tone.sequence_id)
        self._deliver(tone)

    def flush(self) -> None:
        """Give up on the missing sequence ids: deliver every queued tone in order."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            expected = 1 if self.last is None else self.last + 1
            first = min(self._pending)
            self.gaps_skipped += first - expected
            log.info(
                "tone sequenceIds %d..%d never arrived; delivering the %d tone(s) after them",
                expected,
                first - 1,
                len(self._pending),
            )
        for seq in sorted(self._pending):
            self._emit(self._pending.pop(seq))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# ---- the call object ---------------------------------------------------------------------------


class CallListener(Protocol):
    async def call_state_changed(self, call: Call, old: str | None, new: str) -> None: ...
    async def participants_changed(self, call: Call, change: RosterChange) -> None: ...
    async def tone_received(self, call: Call, tone: m.ToneInfo) -> None: ...
    async def call_ended(self, call: Call) -> None: ...
    async def content_sharing_changed(self, call: Call, note: m.CommsNotification) -> None: ...


def _context() -> str:
    return str(uuid.uuid4())


def _participants_info(
    targets: Iterable[m.InvitationParticipantInfo | m.IdentitySet],
) -> list[m.InvitationParticipantInfo]:
    out = []
    for t in targets:
        out.append(
            t if isinstance(t, m.InvitationParticipantInfo) else m.InvitationParticipantInfo(identity=t)
        )
    return out


class Call:
    """One call leg of the bot. Created by the ``Bot`` (incoming or outgoing)."""

    def __init__(
        self,
        api: CallsApi,
        call_id: str,
        *,
        resource: m.Call | None = None,
        listener: CallListener | None = None,
        operation_timeout_s: float | None = 300.0,
        keepalive_interval_s: float | None = KEEPALIVE_INTERVAL_S,
        roster_mode: str = "auto",
        tenant_id: str | None = None,
        scenario_id: str | None = None,
        tone_gap_wait_s: float = 0.5,
    ) -> None:
        self.scenario_id = scenario_id
        self.api = api.for_scenario(scenario_id) if scenario_id else api
        self.id = call_id
        self.resource = resource or m.Call(id=call_id)
        self.listener = listener
        self.operation_timeout_s = operation_timeout_s
        self.keepalive_interval_s = keepalive_interval_s
        self.tenant_id = tenant_id or (resource.tenant_id if resource else None)
        self.machine = CallStateMachine(self.resource.state)
        self.roster = Roster(mode=roster_mode)
        self.result_info: m.ResultInfo | None = None
        self.last_tone: m.ToneInfo | None = None
        #: tone notifications in sequenceId order, each once (reordered and redelivered ones too)
        self.tones = ToneSequencer(self._tone_in_order, gap_wait_s=tone_gap_wait_s)
        self.content_sharing_sessions: dict[str, m.ContentSharingSession] = {}
        self.escalated = False
        #: created or answered by this process (False: adopted from notifications)
        self.owned = False
        self._transfer_outcome: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._ops_by_id: dict[str, asyncio.Future[m.CommsOperation]] = {}
        self._ops_by_context: dict[str, asyncio.Future[m.CommsOperation]] = {}
        self._early_ops: collections.OrderedDict[str, m.CommsOperation] = collections.OrderedDict()
        self._state_waiters: list[tuple[frozenset[str], asyncio.Future[str]]] = []
        self._events: asyncio.Queue[tuple[str, tuple[Any, ...]]] | None = None
        self._event_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._terminated = asyncio.Event()
        self.keepalives_sent = 0

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.state}>"

    # ---- properties ---------------------------------------------------------------------

    @property
    def state(self) -> str | None:
        return self.machine.state

    @property
    def my_participant_id(self) -> str | None:
        return self.resource.my_participant_id

    @property
    def is_terminated(self) -> bool:
        return self.machine.terminated

    @property
    def source_map(self) -> dict[str, m.Participant]:
        return self.roster.source_map

    @property
    def participants(self) -> list[m.Participant]:
        return list(self.roster)

    @property
    def is_group_call(self) -> bool:
        return self.resource.chat_info is not None or self.resource.meeting_info is not None

    async def wait_terminated(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._terminated.wait(), timeout)

    # ---- events (delivered in order, off the notification queue) --------------------------

    def _emit(self, name: str, *args: Any) -> None:
        if self.listener is None:
            return
        if self._events is None:
            self._events = asyncio.Queue()
            self._event_task = asyncio.get_running_loop().create_task(
                self._event_loop(), name=f"events:{self.id}"
            )
        self._events.put_nowait((name, args))

    async def _event_loop(self) -> None:
        assert self._events is not None
        while True:
            name, args = await self._events.get()
            try:
                if name == "__stop__":
                    return
                await getattr(self.listener, name)(self, *args)
            except Exception:
                log.exception("%s handler failed for call %s", name, self.id)
            finally:
                self._events.task_done()
            if name == "call_ended":
                return  # nothing follows the end of a call

    async def drain_events(self) -> None:
        if self._events is not None:
            await self._events.join()

    # ---- notifications --------------------------------------------------------------------

    async def handle_notification(self, note: m.CommsNotification) -> None:
        kind = note.kind
        if kind == "call":
            self._on_call_resource(note)
        elif kind == "participants":
            self._on_roster(note.resource_data)
        elif kind == "operation":
            self._on_operation(note)
        elif kind == "contentSharing":
            self._on_content_sharing(note)
        else:
            log.info("call %s: unhandled notification %s %s", self.id, note.change_type, note.url)

    def _merge_resource(self, data: m.Call) -> None:
        """Copy the members present in a notification onto our view of the call."""
        present = data._present or ()
        members, _ = m.Call._schema()
        for key in present:
            if key in members:
                attr = members[key][0]
                if attr in ("state",):
                    continue
                value = getattr(data, attr)
                if value is not None:
                    setattr(self.resource, attr, value)

    def _on_call_resource(self, note: m.CommsNotification) -> None:
        data = note.resource_data if isinstance(note.resource_data, m.Call) else m.Call()
        was_p2p_active = not self.is_group_call and self.state in ACTIVE_STATES
        self._merge_resource(data)
        if was_p2p_active and self.is_group_call and note.change_type != "deleted":
            self._on_escalated()
        if isinstance(data.result_info, m.ResultInfo):
            self.result_info = data.result_info
        new_state = data.state
        if note.change_type == "deleted":
            new_state = "terminated"
        old = self.state
        result = self.machine.apply(new_state)
        if result == Transition.CHANGED:
            self.resource.state = self.state
            self._resolve_state_waiters()
            self._emit("call_state_changed", old, self.state)
            if self.state == "established":
                self._start_keepalive()
        if isinstance(data.tone_info, m.ToneInfo) and data.tone_info.tone is not None:
            self.tones.push(data.tone_info)
        if self._transfer_outcome is not None:
            self._transfer_progress(data)
        if self.state == "terminated" and not self._terminated.is_set():
            self._finish()

    def _tone_in_order(self, tone: m.ToneInfo) -> None:
        self.last_tone = tone
        self._emit("tone_received", tone)

    def _on_escalated(self) -> None:
        """A P2P call became a group call. Roster notifications may then be missing (a known
        platform limitation), so the roster is read once with GET, off the notification queue."""
        self.escalated = True
        log.info("call %s escalated to a group call; refreshing the roster", self.id)

        self._refresh_roster_soon()

    def _refresh_roster_soon(self, delays_s: Sequence[float] = (0.0, 1.0, 3.0, 10.0)) -> None:
        """Re-read the roster a few times in the background: after an escalation the roster
        may lag the operation's completion, and no notification will tell us when it settles."""

        async def refresh() -> None:
            for delay in delays_s:
                await asyncio.sleep(delay)
                if self.is_terminated:
                    return
                try:
                    await self.refresh_roster()
                except Exception as exc:
                    log.warning("call %s: roster refresh after escalation failed: %r", self.id, exc)

        task = asyncio.get_running_loop().create_task(refresh(), name=f"roster-refresh:{self.id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_roster(self, data: Any) -> None:
        change = self.roster.apply(data, my_participant_id=self.my_participant_id)
        if change:
            self._emit("participants_changed", change)

    def _on_content_sharing(self, note: m.CommsNotification) -> None:
        data = note.resource_data if isinstance(note.resource_data, list) else []
        for s in data:
            if isinstance(s, m.ContentSharingSession) and s.id:
                if note.change_type == "deleted":
                    self.content_sharing_sessions.pop(s.id, None)
                else:
                    self.content_sharing_sessions[s.id] = s
        if note.change_type == "deleted" and not data:
            self.content_sharing_sessions.clear()
        self._emit("content_sharing_changed", note)

    def _on_operation(self, note: m.CommsNotification) -> None:
        op = note.resource_data if isinstance(note.resource_data, m.CommsOperation) else None
        if op is None:
            op = m.CommsOperation(
                id=note.operation_id, status="completed" if note.change_type == "deleted" else None
            )
        if op.id is None and note.operation_id:
            op.id = note.operation_id
        if note.change_type != "deleted" and not op.is_final:
            return
        fut = None
        if op.id:
            fut = self._ops_by_id.pop(m.id_key(op.id), None)
        if fut is None and op.client_context:
            fut = self._ops_by_context.pop(op.client_context, None)
        if fut is not None and not fut.done():
            fut.set_result(op)
            return
        key = m.id_key(op.id) if op.id else f"ctx:{op.client_context}"
        self._early_ops[key] = op
        while len(self._early_ops) > 256:
            self._early_ops.popitem(last=False)

    def _resolve_state_waiters(self) -> None:
        for states, fut in list(self._state_waiters):
            if not fut.done() and (self.state in states or self.state == "terminated"):
                fut.set_result(self.state)
        self._state_waiters = [(s, f) for s, f in self._state_waiters if not f.done()]

    def _finish(self) -> None:
        self.tones.flush()  # tones still waiting for a gap come before the end of the call
        self._terminated.set()
        for task in list(self._background):
            task.cancel()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        for fut in [*self._ops_by_id.values(), *self._ops_by_context.values()]:
            if not fut.done():
                fut.set_exception(
                    CallTerminated(
                        "call ended before the operation completed",
                        result_info=self.result_info,
                        call_id=self.id,
                    )
                )
        self._ops_by_id.clear()
        self._ops_by_context.clear()
        self._resolve_state_waiters()
        self._emit("call_ended")

    def mark_terminated(self, result_info: m.ResultInfo | None = None) -> None:
        """Record that the call is gone without a notification (keepAlive 404, shutdown)."""
        if self.is_terminated:
            return
        if result_info is not None:
            self.result_info = result_info
        old = self.state
        self.machine.state = "terminated"
        self.machine.history.append("terminated")
        self.resource.state = "terminated"
        self._emit("call_state_changed", old, "terminated")
        self._finish()

    async def close(self) -> None:
        """Stop the call's background tasks (after it ended or at shutdown)."""
        self.tones.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            await asyncio.gather(self._keepalive_task, return_exceptions=True)
        if self._event_task is not None and self._events is not None:
            self._events.put_nowait(("__stop__", ()))
            try:
                await asyncio.wait_for(asyncio.shield(self._event_task), 5.0)
            except asyncio.TimeoutError:
                self._event_task.cancel()

    # ---- waiting helpers ----------------------------------------------------------------------

    async def wait_for_state(self, *states: str, timeout: float | None = None) -> str:
        """Wait until the call reaches one of ``states`` (or ends). Returns the state."""
        wanted = frozenset(states)
        if self.state in wanted or self.is_terminated:
            return self.state  # type: ignore[return-value]
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._state_waiters.append((wanted, fut))
        return await asyncio.wait_for(fut, timeout if timeout is not None else self.operation_timeout_s)

    async def _operation(
        self, send: Callable[[str], Awaitable[m.CommsOperation | None]], client_context: str | None, what: str
    ) -> m.CommsOperation:
        """Send an action and wait for its commsOperation to finish (resources/commsoperation)."""
        self._require_alive(what)
        ctx = client_context or _context()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[m.CommsOperation] = loop.create_future()
        self._ops_by_context[ctx] = fut
        try:
            op = await send(ctx)
            if op is None:  # 200 without a body: nothing to wait for
                return m.CommsOperation(client_context=ctx, status="completed")
            if not op.is_final:
                early = None
                if op.id:
                    early = self._early_ops.pop(m.id_key(op.id), None)
                early = early or self._early_ops.pop(f"ctx:{ctx}", None)
                if early is not None:
                    op = early
                else:
                    if op.id:
                        self._ops_by_id[m.id_key(op.id)] = fut
                    log.debug("call %s: %s operation %s running", self.id, what, op.id)
                    op = await asyncio.wait_for(fut, self.operation_timeout_s)
        finally:
            self._ops_by_context.pop(ctx, None)
            if not fut.done():
                fut.cancel()
            for key, f in list(self._ops_by_id.items()):
                if f is fut:
                    del self._ops_by_id[key]
        if op.status == "failed" or (
            isinstance(op.result_info, m.ResultInfo)
            and isinstance(op.result_info.code, int)
            and op.result_info.code >= 400
        ):
            raise OperationFailed(f"{what} failed", operation=op, result_info=op.result_info, call_id=self.id)
        return op

    def _require_alive(self, what: str) -> None:
        if self.is_terminated:
            raise InvalidCallState(f"cannot {what}: call {self.id} has ended")

    async def _until(self, states: Iterable[str], what: str, wait: bool) -> str | None:
        if not wait:
            return None
        state = await self.wait_for_state(*states)
        return state

    # ---- incoming-call actions ---------------------------------------------------------------

    async def answer(
        self,
        *,
        media_config: m.MediaConfig | None = None,
        accepted_modalities: Sequence[str] = ("audio",),
        callback_uri: str | None = None,
        call_options: m.CallOptions | None = None,
        participant_capacity: int | None = None,
        wait: bool = True,
    ) -> None:
        """Answer an incoming call; with ``wait`` return once it is established."""
        if self.state not in ("incoming", None):
            raise InvalidCallState(f"cannot answer a call in state {self.state}")
        body = m.AnswerRequest(
            callback_uri=callback_uri,
            accepted_modalities=list(accepted_modalities),
            media_config=media_config or m.ServiceHostedMediaConfig(),
            call_options=call_options,
            participant_capacity=participant_capacity,
        )
        await self.api.answer(self.id, body)
        if wait:
            state = await self.wait_for_state("established")
            if state != "established":
                raise CallTerminated(
                    "call ended before it was established", result_info=self.result_info, call_id=self.id
                )

    async def reject(
        self, reason: str = "none", *, callback_uri: str | None = None, wait: bool = True
    ) -> None:
        if self.state not in ("incoming", None):
            raise InvalidCallState(f"cannot reject a call in state {self.state}")
        await self.api.reject(
            self.id, m.RejectRequest(reason=m.RejectReason.canonical(reason), callback_uri=callback_uri)
        )
        await self._until(("terminated",), "reject", wait)

    async def redirect(
        self,
        targets: Sequence[m.InvitationParticipantInfo | m.IdentitySet],
        *,
        timeout_s: int | None = None,
        callback_uri: str | None = None,
        mask_callee: bool | None = None,
        mask_caller: bool | None = None,
        routing_policies: Sequence[str] | None = None,
        wait: bool = True,
    ) -> None:
        if self.state not in ("incoming", None):
            raise InvalidCallState(f"cannot redirect a call in state {self.state}")
        if timeout_s is not None and not 15 <= timeout_s <= 90:
            raise ValueError("redirect timeout must be 15-90 s")
        body = m.RedirectRequest(
            targets=_participants_info(targets),
            timeout=timeout_s,
            callback_uri=callback_uri,
            mask_callee=mask_callee,
            mask_caller=mask_caller,
            routing_policies=list(routing_policies) if routing_policies else None,
        )
        await self.api.redirect(self.id, body)
        await self._until(("terminated",), "redirect", wait)

    # ---- established-call actions ---------------------------------------------------------------

    async def transfer(
        self,
        target: m.InvitationParticipantInfo | m.IdentitySet,
        *,
        transferee: m.ParticipantInfo | None = None,
        client_context: str | None = None,
        wait: bool = True,
    ) -> None:
        """Blind transfer, or consultative with ``target.replaces_call_id``. With ``wait``,
        returns when the call ended by the transfer; raises OperationFailed when the call
        comes back to ``established`` with a failure resultInfo."""
        self._require_alive("transfer")
        tgt = (
            target
            if isinstance(target, m.InvitationParticipantInfo)
            else m.InvitationParticipantInfo(identity=target)
        )
        self.result_info = None
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[None] = loop.create_future()
        self._transfer_outcome = outcome if wait else None
        try:
            await self.api.transfer(
                self.id,
                m.TransferRequest(transfer_target=tgt, transferee=transferee, client_context=client_context),
            )
            if wait:
                await asyncio.wait_for(outcome, self.operation_timeout_s)
        finally:
            self._transfer_outcome = None
            if not outcome.done():
                outcome.cancel()

    def _transfer_progress(self, data: m.Call) -> None:
        """Success is the end of the call; failure is an update (back to, or still in,
        ``established``) carrying a resultInfo — which can come before ``transferring``."""
        fut = self._transfer_outcome
        if fut is None or fut.done():
            return
        if self.is_terminated:
            fut.set_result(None)
        elif self.state == "established" and isinstance(data.result_info, m.ResultInfo):
            fut.set_exception(
                OperationFailed("transfer failed", result_info=data.result_info, call_id=self.id)
            )

    async def hang_up(self, *, wait: bool = True, timeout_s: float | None = 30.0) -> None:
        """DELETE the call (only the bot's leg in a group call)."""
        if self.is_terminated:
            return
        try:
            await self.api.delete_call(self.id)
        except GraphNotFound:
            self.mark_terminated()
            return
        if wait:
            try:
                await asyncio.wait_for(self._terminated.wait(), timeout_s)
            except asyncio.TimeoutError:
                log.warning("call %s: no terminated notification after hang-up", self.id)
                self.mark_terminated()

    async def keep_alive(self) -> None:
        """POST keepAlive. A 404 means the call has ended: it is marked terminated."""
        try:
            await self.api.keep_alive(self.id)
            self.keepalives_sent += 1
        except GraphNotFound:
            log.info("call %s: keepAlive 404, the call has ended", self.id)
            self.mark_terminated()
            raise

    def _start_keepalive(self) -> None:
        if self.keepalive_interval_s and self._keepalive_task is None:
            self._keepalive_task = asyncio.get_running_loop().create_task(
                self._keepalive_loop(self.keepalive_interval_s), name=f"keepalive:{self.id}"
            )

    async def _keepalive_loop(self, interval_s: float) -> None:
        while not self.is_terminated:
            await asyncio.sleep(interval_s)
            try:
                await self.keep_alive()
            except GraphNotFound:
                return
            except Exception:
                log.exception("call %s: keepAlive failed; retrying at the next interval", self.id)

    async def mute(self, *, client_context: str | None = None) -> m.CommsOperation:
        return await self._operation(
            lambda ctx: self.api.mute(self.id, m.ClientContextRequest(client_context=ctx)),
            client_context,
            "mute",
        )

    async def unmute(self, *, client_context: str | None = None) -> m.CommsOperation:
        return await self._operation(
            lambda ctx: self.api.unmute(self.id, m.ClientContextRequest(client_context=ctx)),
            client_context,
            "unmute",
        )

    async def update_recording_status(
        self, status: str, *, client_context: str | None = None
    ) -> m.CommsOperation:
        canonical = m.RecordingStatus.canonical(status)
        if canonical not in ("notRecording", "recording", "failed"):
            raise ValueError("recording status must be notRecording, recording or failed")
        return await self._operation(
            lambda ctx: self.api.update_recording_status(
                self.id, m.UpdateRecordingStatusRequest(client_context=ctx, status=canonical)
            ),
            client_context,
            "updateRecordingStatus",
        )

    async def change_screen_sharing_role(self, role: str) -> None:
        canonical = m.ScreenSharingRole.canonical(role)
        if canonical not in ("viewer", "sharer"):
            raise ValueError("role must be viewer or sharer")
        self._require_alive("changeScreenSharingRole")
        await self.api.change_screen_sharing_role(self.id, m.ChangeScreenSharingRoleRequest(role=canonical))

    async def update_metadata(self, metadata: str, *, client_context: str | None = None) -> m.CommsOperation:
        """Beta ``call: updateMetadata``: the application's metadata for this call (shown as its
        participant's ``metadata`` in the roster). Returns once Graph has accepted it (``202``):
        the operation from the ``Location`` header, with no status — the page documents no
        completion notification to wait for."""
        if not isinstance(metadata, str):
            raise TypeError("metadata is a string (a blob of data)")
        self._require_alive("updateMetadata")
        return await self.api.update_metadata(
            self.id, m.UpdateMetadataRequest(metadata=metadata, client_context=client_context or _context())
        )

    # ---- media operations (service-hosted media) -----------------------------------------------

    async def play_prompt(
        self,
        prompts: Sequence[m.MediaPrompt | str],
        *,
        loop: bool | None = None,
        client_context: str | None = None,
    ) -> m.CommsOperation:
        items = [p if isinstance(p, m.MediaPrompt) else m.MediaPrompt.of_uri(p) for p in prompts]
        if not 1 <= len(items) <= 20:
            raise ValueError("playPrompt takes 1 to 20 prompts")
        return await self._operation(
            lambda ctx: self.api.play_prompt(
                self.id, m.PlayPromptRequest(prompts=items, loop=loop, client_context=ctx)
            ),
            client_context,
            "playPrompt",
        )

    async def record_response(
        self,
        *,
        prompts: Sequence[m.MediaPrompt | str] = (),
        barge_in_allowed: bool | None = None,
        initial_silence_timeout_s: int | None = None,
        max_silence_timeout_s: int | None = None,
        max_record_duration_s: int | None = None,
        play_beep: bool | None = None,
        stop_tones: Sequence[str] | None = None,
        client_context: str | None = None,
    ) -> m.RecordOperation:
        items = [p if isinstance(p, m.MediaPrompt) else m.MediaPrompt.of_uri(p) for p in prompts]
        if len(items) > 1:
            raise ValueError("recordResponse takes at most one prompt")
        for name, v in (
            ("initial_silence_timeout_s", initial_silence_timeout_s),
            ("max_silence_timeout_s", max_silence_timeout_s),
            ("max_record_duration_s", max_record_duration_s),
        ):
            if v is not None and not 1 <= v <= 120:
                raise ValueError(f"{name} must be 1-120")
        body = lambda ctx: m.RecordResponseRequest(  # noqa: E731
            prompts=items or None,
            barge_in_allowed=barge_in_allowed,
            initial_silence_timeout_in_seconds=initial_silence_timeout_s,
            max_silence_timeout_in_seconds=max_silence_timeout_s,
            max_record_duration_in_seconds=max_record_duration_s,
            play_beep=play_beep,
            stop_tones=list(stop_tones) if stop_tones else None,
            client_context=ctx,
        )
        op = await self._operation(
            lambda ctx: self.api.record_response(self.id, body(ctx)), client_context, "recordResponse"
        )
        if not isinstance(op, m.RecordOperation):
            op = m.RecordOperation.parse(op.to_dict())
        return op

    async def download_recording(self, op: m.RecordOperation, destination: Any = None) -> bytes | int:
        """Fetch a recordResponse recording with its ``recordingAccessToken``.

        Returns the bytes, or writes them to ``destination`` (a path or a binary file) and
        returns the byte count. Download promptly: the platform discards recordings.
        """
        if not op.recording_location or not op.recording_access_token:
            raise ValueError("the record operation has no recordingLocation/recordingAccessToken")
        chunks = self.api.download_recording(op.recording_location, op.recording_access_token)
        if destination is None:
            return b"".join([c async for c in chunks])
        if isinstance(destination, (str, bytes)) or hasattr(destination, "__fspath__"):
            loop = asyncio.get_running_loop()
            f = await loop.run_in_executor(None, open, destination, "wb")
            close = True
        else:
            f, close = destination, False
        total = 0
        try:
            async for chunk in chunks:
                f.write(chunk)
                total += len(chunk)
        finally:
            if close:
                f.close()
        return total

    async def subscribe_to_tone(self, *, client_context: str | None = None) -> m.CommsOperation:
        return await self._operation(
            lambda ctx: self.api.subscribe_to_tone(self.id, m.ClientContextRequest(client_context=ctx)),
            client_context,
            "subscribeToTone",
        )

    async def cancel_media_processing(self, *, client_context: str | None = None) -> m.CommsOperation:
        return await self._operation(
            lambda ctx: self.api.cancel_media_processing(self.id, m.ClientContextRequest(client_context=ctx)),
            client_context,
            "cancelMediaProcessing",
        )

    async def send_dtmf_tones(
        self,
        tones: Sequence[str],
        *,
        delay_between_tones_ms: int | None = None,
        client_context: str | None = None,
    ) -> m.CommsOperation:
        canon = [m.Tone.canonical(_TONE_ALIASES.get(t, t)) for t in tones]
        bad = [t for t in canon if t not in m.Tone.values]
        if bad:
            raise ValueError(f"unknown DTMF tones {bad}")
        return await self._operation(
            lambda ctx: self.api.send_dtmf_tones(
                self.id,
                m.SendDtmfTonesRequest(
                    tones=canon, delay_between_tones_ms=delay_between_tones_ms, client_context=ctx
                ),
            ),
            client_context,
            "sendDtmfTones",
        )

    # ---- participants --------------------------------------------------------------------------

    async def list_participants(self) -> list[m.Participant]:
        return await self.api.list_participants(self.id)

    async def get_participant(self, participant_id: str) -> m.Participant:
        return await self.api.get_participant(self.id, participant_id)

    async def refresh(self) -> m.Call:
        """Re-read the call with ``GET`` and apply it as an update (state, myParticipantId …);
        used to adopt a call this process did not create (after a restart or a hand-over)."""
        current = await self.api.get_call(self.id)
        note = m.CommsNotification(
            change_type="updated", resource_url=f"/communications/calls/{self.id}", resource_data=current
        )
        self._on_call_resource(note)
        return current

    async def refresh_roster(self) -> RosterChange:
        """Re-read the roster with ``GET …/participants`` (roster notifications may be
        missing after a P2P call was escalated to a group call)."""
        change = self.roster.replace_all(await self.list_participants())
        if change:
            self._emit("participants_changed", change)
        return change

    async def invite(
        self,
        participants: Sequence[m.InvitationParticipantInfo | m.IdentitySet],
        *,
        client_context: str | None = None,
    ) -> m.CommsOperation:
        """Invite into this group call. With ``replaces_call_id`` on the first participant this
        escalates that P2P call into this one; the roster is then refreshed by GET, because
        roster notifications may not follow an escalation."""
        infos = _participants_info(participants)
        if not 1 <= len(infos) <= 5:
            raise ValueError("invite takes 1 to 5 participants")
        op = await self._operation(
            lambda ctx: self.api.invite(
                self.id, m.InviteParticipantsRequest(participants=infos, client_context=ctx)
            ),
            client_context,
            "invite",
        )
        if any(i.replaces_call_id for i in infos):
            self.escalated = True
            self._refresh_roster_soon()
        return op

    async def mute_participant(
        self, participant_id: str, *, client_context: str | None = None
    ) -> m.CommsOperation:
        return await self._operation(
            lambda ctx: self.api.mute_participant(
                self.id, participant_id, m.ClientContextRequest(client_context=ctx)
            ),
            client_context,
            "mute participant",
        )

    async def mute_all(
        self, participant_ids: Sequence[str] = ("",), *, client_context: str | None = None
    ) -> m.CommsOperation:
        """Beta, deprecated: mute every participant (the documented body lists ``[""]``)."""
        return await self._operation(
            lambda ctx: self.api.mute_all(
                self.id, m.MuteAllRequest(participants=list(participant_ids), client_context=ctx)
            ),
            client_context,
            "muteAll",
        )

    async def delete_participant(self, participant_id: str) -> None:
        self._require_alive("remove a participant")
        await self.api.delete_participant(self.id, participant_id)
        p = self.roster.get(participant_id)
        if p is not None:
            self.roster.participants.pop(m.id_key(participant_id), None)
            self.roster._rebuild_source_map()
            self._emit("participants_changed", RosterChange(removed=[p]))


_TONE_ALIASES = {str(d): f"tone{d}" for d in range(10)} | {"*": "star", "#": "pound"}

__all__ = [
    "Call",
    "CallStateMachine",
    "Roster",
    "RosterChange",
    "ToneSequencer",
    "Transition",
    "TRANSITIONS",
    "KEEPALIVE_INTERVAL_S",
    "CallListener",
]
