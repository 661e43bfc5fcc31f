"""The ``Bot`` application object: handlers for call events, the webhook, and shutdown.

Subclass and override ``on_*`` methods, or register handlers::

    bot = Bot(config, media=my_media_factory)

    @bot.on("incoming_call")
    async def policy(call):
        return Answer() if call.resource.source else Reject("forbidden")

    @bot.on("participants_changed")
    async def roster(call, change): ...

    asyncio.run(bot.run())

Media goes through one typed seam: ``media`` is a :class:`bot.media.MediaProvider` (the stock
one, :class:`bot.media.CallMediaProvider`, binds each call to :mod:`mediacore`): it gives the
appHostedMediaConfig blob of each call and hears which call got it, every roster change, the
call's media state and its end. Without ``media`` the bot answers with service-hosted media.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from .calls import Call, RosterChange
from .config import BotConfig
from .graph import models as m
from .graph.api import CallsApi
from .graph.auth import MsalTokenProvider, StaticTokenProvider, TokenProvider
from .graph.client import GraphClient, RetryPolicy
from .graph.errors import CallTerminated
from .media import MediaProvider
from .webhook import CallbackAuthenticator, NotificationContext, WebhookServer

log = logging.getLogger("bot.app")

EVENTS = (
    "incoming_call",
    "call_established",
    "call_state_changed",
    "participants_changed",
    "tone_received",
    "call_ended",
    "content_sharing_changed",
)


@dataclass
class Answer:
    """Answer the call. ``media_config`` overrides the media provider."""

    modalities: Sequence[str] | None = None
    media_config: m.MediaConfig | None = None
    callback_uri: str | None = None
    call_options: m.CallOptions | None = None
    participant_capacity: int | None = None


@dataclass
class Reject:
    reason: str = "busy"


@dataclass
class Redirect:
    targets: Sequence[m.InvitationParticipantInfo | m.IdentitySet]
    timeout_s: int | None = None


Decision = Answer | Reject | Redirect


class Bot:
    def __init__(
        self,
        config: BotConfig,
        *,
        media: MediaProvider | None = None,
        graph: GraphClient | None = None,
        token_provider: TokenProvider | None = None,
        authenticator: CallbackAuthenticator | None | bool = True,
    ) -> None:
        if media is not None and not isinstance(media, MediaProvider):
            raise TypeError(f"media must implement bot.media.MediaProvider, not {type(media).__name__}")
        self.config = config
        self.media = media
        self._handlers: dict[str, list[Callable[..., Awaitable[Any]]]] = collections.defaultdict(list)
        if graph is None:
            graph = GraphClient(
                token_provider=token_provider or self._token_provider(),
                base_url=config.graph.base_url,
                beta_base_url=config.graph.beta_base_url,
                scenario_id=config.graph.scenario_id,
                timeout_s=config.graph.timeout_s,
                retry=RetryPolicy(
                    max_retries=config.graph.max_retries, max_total_s=config.graph.max_retry_total_s
                ),
            )
        self.graph = graph
        self.api = CallsApi(graph)
        w = config.webhook
        if authenticator is True:
            authenticator = (
                CallbackAuthenticator(
                    app_id=config.app_id,
                    openid_configuration_url=w.openid_configuration_url,
                    issuers=w.issuers,
                    leeway_s=w.leeway_s,
                    refresh_interval_s=w.key_refresh_interval_s,
                )
                if w.authenticate
                else None
            )
        elif authenticator is False:
            authenticator = None
        self.webhook = WebhookServer(
            authenticator=authenticator,
            handler=self.handle_notification,
            path=w.path,
            health_path=w.health_path,
            host=w.host,
            port=w.port,
            max_body_bytes=w.max_body_bytes,
            health=self._health,
        )
        self.calls: dict[str, Call] = {}
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.accepting = True
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def _token_provider(self) -> TokenProvider:
        g = self.config.graph
        if g.static_token:
            return StaticTokenProvider(g.static_token)
        return MsalTokenProvider(
            app_id=self.config.app_id,
            tenant_id=self.config.tenant_id,
            client_secret=g.client_secret,
            certificate_pem=g.certificate_pem,
            certificate_thumbprint=g.certificate_thumbprint,
            authority_host=g.authority_host,
            instance_discovery=g.instance_discovery,
            ca_bundle=g.ca_bundle,
        )

    # ---- handler registration ------------------------------------------------------------------

    def on(self, event: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Decorator registering an async handler for ``event`` (see EVENTS)."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events are {', '.join(EVENTS)}")

        def register(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError(f"handler for {event} must be an async function")
            self._handlers[event].append(fn)
            return fn

        return register

    async def _fire(self, event: str, *args: Any) -> list[Any]:
        results = []
        for fn in self._handlers.get(event, []):
            results.append(await fn(*args))
        return results

    # ---- overridable handlers --------------------------------------------------------------------

    async def on_incoming_call(self, call: Call) -> Decision | None:
        """Return Answer/Reject/Redirect; None applies the configured policy."""
        for result in await self._fire("incoming_call", call):
            if result is not None:
                return result
        return None

    async def on_call_established(self, call: Call) -> None:
        await self._fire("call_established", call)

    async def on_call_state_changed(self, call: Call, old: str | None, new: str) -> None:
        await self._fire("call_state_changed", call, old, new)

    async def on_participants_changed(self, call: Call, change: RosterChange) -> None:
        await self._fire("participants_changed", call, change)

    async def on_tone_received(self, call: Call, tone: m.ToneInfo) -> None:
        await self._fire("tone_received", call, tone)

    async def on_call_ended(self, call: Call) -> None:
        await self._fire("call_ended", call)

    async def on_content_sharing_changed(self, call: Call, note: m.CommsNotification) -> None:
        await self._fire("content_sharing_changed", call, note)

    # ---- CallListener (called from each call's event task, in order) ---------------------------------

    async def call_state_changed(self, call: Call, old: str | None, new: str) -> None:
        if new == "established" and self.media is not None:
            try:
                await self.media.media_state_changed(call, call.resource.media_state)
            except Exception:
                log.exception("call %s: the media provider failed on the media state", call.id)
        await self.on_call_state_changed(call, old, new)
        if new == "established":
            await self.on_call_established(call)

    async def participants_changed(self, call: Call, change: RosterChange) -> None:
        if self.media is not None:
            try:
                await self.media.participants_changed(call, change)
            except Exception:
                log.exception("call %s: the media provider failed on a roster change", call.id)
        await self.on_participants_changed(call, change)

    async def tone_received(self, call: Call, tone: m.ToneInfo) -> None:
        await self.on_tone_received(call, tone)

    async def content_sharing_changed(self, call: Call, note: m.CommsNotification) -> None:
        await self.on_content_sharing_changed(call, note)

    async def call_ended(self, call: Call) -> None:
        if self.media is not None:
            try:
                await self.media.call_ended(call)
            except Exception:
                log.exception("call %s: the media provider failed at the call's end", call.id)
        try:
            await self.on_call_ended(call)
        finally:
            key = m.id_key(call.id)
            if self.calls.get(key) is call:
                del self.calls[key]
            self._ended[key] = None
            while len(self._ended) > 4096:
                self._ended.popitem(last=False)

    async def incoming_call(self, call: Call) -> None:
        """Apply the incoming-call policy (runs in the call's event task)."""
        if not self.accepting:
            decision: Decision | None = Reject("busy")
        else:
            try:
                decision = await asyncio.wait_for(
                    self.on_incoming_call(call), self.config.calls.incoming_decision_timeout_s
                )
            except asyncio.TimeoutError:
                log.warning("call %s: incoming-call handler too slow; applying the default policy", call.id)
                decision = None
            except Exception:
                log.exception("call %s: incoming-call handler failed; applying the default policy", call.id)
                decision = None
        if decision is None:
            decision = self._default_decision()
        try:
            if isinstance(decision, Answer):
                media_config = decision.media_config or await self.media_config(call)
                await self._media_started(call, media_config)
                await call.answer(
                    media_config=media_config,
                    accepted_modalities=decision.modalities or self.config.calls.modalities,
                    callback_uri=decision.callback_uri or self.config.webhook.public_url,
                    call_options=decision.call_options or self._incoming_options(),
                    participant_capacity=decision.participant_capacity,
                    wait=False,
                )
            elif isinstance(decision, Reject):
                await call.reject(decision.reason, wait=False)
            elif isinstance(decision, Redirect):
                await call.redirect(
                    decision.targets,
                    timeout_s=decision.timeout_s,
                    callback_uri=self.config.webhook.public_url,
                    wait=False,
                )
            else:
                raise TypeError(f"incoming-call handler returned {decision!r}")
        except Exception:
            log.exception("call %s: acting on the incoming call failed", call.id)

    def _default_decision(self) -> Decision:
        c = self.config.calls
        if c.incoming == "reject":
            return Reject(c.reject_reason)
        if c.incoming == "redirect":
            return Redirect([m.IdentitySet.of_user(u) for u in c.redirect_to])
        return Answer()

    def _incoming_options(self) -> m.CallOptions | None:
        c = self.config.calls
        if not (c.delta_roster or c.content_sharing_notifications):
            return None
        return m.IncomingCallOptions(
            is_delta_roster_enabled=c.delta_roster or None,
            is_content_sharing_notification_enabled=c.content_sharing_notifications or None,
        )

    def _outgoing_options(self) -> m.CallOptions | None:
        c = self.config.calls
        if not (c.delta_roster or c.content_sharing_notifications):
            return None
        return m.OutgoingCallOptions(
            is_delta_roster_enabled=c.delta_roster or None,
            is_content_sharing_notification_enabled=c.content_sharing_notifications or None,
        )

    async def media_config(self, call: Call | None) -> m.MediaConfig:
        """appHostedMediaConfig from the media provider, else serviceHostedMediaConfig."""
        if self.media is None:
            return m.ServiceHostedMediaConfig()
        blob = await self.media.media_config(call)
        if not isinstance(blob, str):
            raise TypeError("the media provider must return the media config blob as a string")
        return m.AppHostedMediaConfig(blob=blob)

    async def _media_hanging_up(self, call: Call) -> None:
        assert self.media is not None
        try:
            await asyncio.wait_for(self.media.hanging_up(call), self.config.calls.shutdown_timeout_s)
        except Exception:
            log.exception("call %s: the media provider failed before the hang-up", call.id)

    async def _media_unused(self, media_config: m.MediaConfig | None) -> None:
        if self.media is None or not isinstance(media_config, m.AppHostedMediaConfig):
            return
        if media_config.blob:
            try:
                await self.media.media_unused(media_config.blob)
            except Exception:
                log.exception("the media provider failed to release an unused document")

    async def _media_started(self, call: Call, media_config: m.MediaConfig | None) -> None:
        """Tell the media provider which call its document went to."""
        if self.media is None or not isinstance(media_config, m.AppHostedMediaConfig):
            return
        if media_config.blob:
            await self.media.call_started(call, media_config.blob)

    # ---- notifications -------------------------------------------------------------------------------

    def _new_call(
        self, call_id: str, resource: m.Call | None, tenant_id: str | None, scenario_id: str | None = None
    ) -> Call:
        c = self.config.calls
        call = Call(
            self.api,
            call_id,
            resource=resource,
            listener=self,
            operation_timeout_s=c.operation_timeout_s,
            keepalive_interval_s=c.keepalive_interval_s,
            roster_mode=c.roster,
            tenant_id=tenant_id,
            scenario_id=scenario_id or str(uuid.uuid4()),
        )
        self.calls[m.id_key(call_id)] = call
        return call

    async def handle_notification(self, note: m.CommsNotification, ctx: NotificationContext | None) -> None:
        """The webhook's per-call handler (notifications of one call arrive here in order)."""
        call_id = note.call_id
        if not call_id:
            log.info("notification without a call id ignored: %s", note.url)
            return
        key = m.id_key(call_id)
        call = self.calls.get(key)
        if call is None:
            if key in self._ended:
                log.debug("notification for ended call %s ignored", call_id)
                return
            data = note.resource_data if isinstance(note.resource_data, m.Call) else None
            incoming = note.change_type == "created" and data is not None and data.state == "incoming"
            resource = m.Call.parse(data.to_dict()) if incoming and data is not None else m.Call(id=call_id)
            resource.id = resource.id or call_id
            resource.state = None
            call = self._new_call(
                call_id, resource, ctx.tenant_id if ctx else None, ctx.scenario_id if ctx else None
            )
            await call.handle_notification(note)
            if incoming:
                call.owned = True
                call._emit("incoming_call")
            elif not call.is_terminated and self.config.calls.adopt_unknown_calls:
                self._spawn(self._adopt(call), f"adopt:{call_id}")
            return
        await call.handle_notification(note)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, call: Call, *, grace_s: float = 1.0) -> None:
        """A notification for a call this process did not create or answer: unless a racing
        create_call claims it within ``grace_s``, read it with GET (state, roster) so that it
        is kept alive and handled — how a restarted or standby instance takes calls over."""
        await asyncio.sleep(grace_s)
        if call.owned or call.is_terminated or self.calls.get(m.id_key(call.id)) is not call:
            return
        try:
            await call.refresh()
            if call.is_group_call and not call.is_terminated:
                await call.refresh_roster()
            log.info("adopted call %s in state %s", call.id, call.state)
        except Exception as exc:
            log.warning("could not adopt call %s: %r", call.id, exc)

    # ---- outgoing calls ------------------------------------------------------------------------------

    def _source(self) -> m.ParticipantInfo:
        return m.ParticipantInfo(identity=m.IdentitySet.of_application(self.config.app_id))

    async def _create(self, body: m.Call) -> Call:
        body.callback_uri = body.callback_uri or self.config.webhook.public_url
        if body.callback_uri is None:
            raise ValueError("webhook.public_url (the callbackUri) is required to place calls")
        if body.media_config is None:
            body.media_config = await self.media_config(None)
        if body.call_options is None:
            body.call_options = self._outgoing_options()
        scenario_id = str(uuid.uuid4())
        try:
            created = await self.api.create_call(body, scenario_id=scenario_id)
        except BaseException:
            await self._media_unused(body.media_config)
            raise
        if not created.id:
            raise ValueError("create call answered without a call id")
        key = m.id_key(created.id)
        call = self.calls.get(key)  # notifications may have raced the response
        if call is None:
            call = self._new_call(created.id, None, body.tenant_id, scenario_id)
        call.owned = True
        for attr in (
            "my_participant_id",
            "call_chain_id",
            "chat_info",
            "meeting_info",
            "direction",
            "tenant_id",
            "source",
            "targets",
            "subject",
        ):
            value = getattr(created, attr) or getattr(body, attr, None)
            if value is not None:
                setattr(call.resource, attr, value)
        if call.state is None:
            call.machine.apply(created.state or "establishing")
            call.resource.state = call.state
        await self._media_started(call, body.media_config)
        return call

    async def create_call(
        self,
        targets: Sequence[m.InvitationParticipantInfo | m.IdentitySet],
        *,
        modalities: Sequence[str] | None = None,
        subject: str | None = None,
        source: m.ParticipantInfo | None = None,
        tenant_id: str | None = None,
        media_config: m.MediaConfig | None = None,
        group: bool = False,
        wait: bool = True,
    ) -> Call:
        """Place a peer-to-peer call (one target) or a new group call (``group=True``, ≤5)."""
        infos = [
            t if isinstance(t, m.InvitationParticipantInfo) else m.InvitationParticipantInfo(identity=t)
            for t in targets
        ]
        if not infos or (not group and len(infos) != 1) or len(infos) > 5:
            raise ValueError("a P2P call has one target; a group call 1 to 5")
        body = m.Call(
            targets=infos,
            requested_modalities=list(modalities or self.config.calls.modalities),
            media_config=media_config,
            subject=subject,
            tenant_id=tenant_id,
            source=source or (self._source() if group else None),
            direction="outgoing" if group else None,
        )
        call = await self._create(body)
        if wait:
            await self._established(call)
        return call

    @staticmethod
    async def _established(call: Call) -> None:
        if await call.wait_for_state("established") != "established":
            raise CallTerminated(
                "the call ended before it was established", result_info=call.result_info, call_id=call.id
            )

    async def join_meeting(
        self,
        join_url: str | None = None,
        *,
        join_meeting_id: str | None = None,
        passcode: str | None = None,
        token: str | None = None,
        tenant_id: str | None = None,
        modalities: Sequence[str] | None = None,
        media_config: m.MediaConfig | None = None,
        wait: bool = True,
    ) -> Call:
        """Join a Teams meeting from its join URL, a join-meeting id (+passcode), or a token."""
        chat: m.ChatInfo | None = None
        if join_url:
            chat, meeting, url_tenant = m.parse_join_url(join_url)
            tenant_id = tenant_id or url_tenant
        elif join_meeting_id:
            meeting = m.JoinMeetingIdMeetingInfo(join_meeting_id=join_meeting_id, passcode=passcode)
        elif token:
            meeting = m.TokenMeetingInfo(token=token)
        else:
            raise ValueError("give join_url, join_meeting_id or token")
        body = m.Call(
            requested_modalities=list(modalities or self.config.calls.modalities),
            media_config=media_config,
            chat_info=chat,
            meeting_info=meeting,
            tenant_id=tenant_id or self.config.tenant_id,
        )
        call = await self._create(body)
        if wait:
            await self._established(call)
        return call

    # ---- lifecycle -----------------------------------------------------------------------------------

    def _health(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "accepting": self.accepting}

    async def start(self) -> None:
        await self.webhook.start()

    async def stop(self) -> None:
        """Stop accepting calls, hang up the active ones, then stop the webhook."""
        if self._stopping:
            return
        self._stopping = True
        self.accepting = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        active = [c for c in self.calls.values() if not c.is_terminated]
        if active and self.config.calls.on_shutdown == "keep":
            log.info("shutting down: leaving %d call(s) to be adopted by another instance", len(active))
        elif active:
            log.info("shutting down: hanging up %d call(s)", len(active))
            if self.media is not None:  # e.g. recorders report notRecording while they can
                await asyncio.gather(*(self._media_hanging_up(c) for c in active))
            results = await asyncio.gather(
                *(c.hang_up(timeout_s=self.config.calls.shutdown_timeout_s) for c in active),
                return_exceptions=True,
            )
            for c, r in zip(active, results):
                if isinstance(r, Exception):
                    log.warning("hang-up of %s failed: %r", c.id, r)
                    c.mark_terminated()
        for c in list(self.calls.values()):
            await c.drain_events()
        await self.webhook.stop()
        for c in list(self.calls.values()):
            await c.close()
        await self.graph.close()

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Serve until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # Windows: KeyboardInterrupt instead
                pass
        await self.start()
        try:
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()


__all__ = ["Bot", "Answer", "Reject", "Redirect", "Decision", "EVENTS"]
