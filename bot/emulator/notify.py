"""Notification delivery: signed POSTs of ``commsNotifications`` to each call's callbackUri, one
ordered queue per call (calls never wait for each other), with injectable delivery faults."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

NOTIFICATIONS_TYPE = "#microsoft.graph.commsNotifications"
NOTIFICATION_TYPE = "#microsoft.graph.commsNotification"

# Members whose enum values get their first letter upper-cased by the enum-casing quirk
# (the documented drift: "Running", "Busy", "Established").
ENUM_MEMBERS = frozenset({"state", "status", "direction", "mediaType", "completionReason", "recordingStatus"})


def envelope(
    change_type: str,
    resource_url: str,
    resource_data: Any = None,
    *,
    callback_uri: str | None = None,
    legacy_resource: bool = False,
) -> dict:
    """One ``commsNotifications`` body carrying exactly one notification, as every example does."""
    item: dict[str, Any] = {"@odata.type": NOTIFICATION_TYPE, "changeType": change_type}
    if legacy_resource:
        item["resource"] = resource_url.replace("/communications/calls/", "/app/calls/", 1)
    item["resourceUrl"] = resource_url
    if callback_uri is not None:
        item["callbackUri"] = callback_uri
    if resource_data is not None:
        item["resourceData"] = resource_data
    return {"@odata.type": NOTIFICATIONS_TYPE, "value": [item]}


def legacy_body(body: dict) -> dict | None:
    """The legacy (Skype) shape of a call notification, as a user report shows it (top-level id,
    participants, isMultiparty, presentedModalityTypes, callState, tenantId; no @odata.type).
    None for notifications that are not about the call resource."""
    item = body["value"][0]
    data = item.get("resourceData")
    if not isinstance(data, dict) or "call" not in str(data.get("@odata.type", "")).lower():
        return None
    call_id = item["resourceUrl"].rstrip("/").rsplit("/", 1)[-1]
    participants = []
    source = data.get("source") or {}
    if source.get("identity"):
        participants.append(
            {"identity": source["identity"], "languageId": source.get("languageId"), "originator": True}
        )
    for target in data.get("targets") or []:
        participants.append({"identity": target.get("identity"), "originator": False})
    return {
        "id": data.get("id") or call_id,
        "participants": participants,
        "isMultiparty": data.get("chatInfo") is not None,
        "presentedModalityTypes": data.get("requestedModalities") or ["audio"],
        "callState": data.get("state") or ("terminated" if item.get("changeType") == "deleted" else None),
        "tenantId": data.get("tenantId"),
    }


def _pascal_odata(value: str) -> str:
    # "#microsoft.graph.playPromptOperation" -> "#Microsoft.Graph.PlayPromptOperation"
    prefix = "#" if value.startswith("#") else ""
    parts = value.lstrip("#").split(".")
    return prefix + ".".join(p[:1].upper() + p[1:] for p in parts)


def apply_quirks(body: Any, *, pascal_odata_type: bool, enum_case: bool) -> Any:
    """A copy of ``body`` with ``@odata.type`` in upper camel case and/or enum values capitalised."""
    if isinstance(body, list):
        return [apply_quirks(v, pascal_odata_type=pascal_odata_type, enum_case=enum_case) for v in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        if key == "@odata.type" and isinstance(value, str) and pascal_odata_type:
            out[key] = _pascal_odata(value)
        elif key in ENUM_MEMBERS and isinstance(value, str) and enum_case:
            out[key] = value[:1].upper() + value[1:]
        else:
            out[key] = apply_quirks(value, pascal_odata_type=pascal_odata_type, enum_case=enum_case)
    return out


@dataclass
class NotificationFaults:
    """How deliveries misbehave. Defaults deliver every notification once, in order, at once."""

    delay_s: float = 0.0  # before every delivery
    duplicate_rate: float = 0.0  # probability that a notification is delivered twice
    reorder_window: int = 0  # >= 2: deliver batches of up to this many of a call's notifications reversed
    reorder_wait_s: float = 0.05  # how long to wait to fill a reorder batch
    pascal_odata_type: bool = False  # "#Microsoft.Graph.Call" instead of "#microsoft.graph.call"
    enum_case: bool = False  # "Established", "Completed", "Running"
    # Send call notifications first in the legacy (Skype) format; a 204 reply asks for the Graph
    # format, which then follows (Teams "incoming call notifications" page, "Protocol determination").
    legacy_first: bool = False
    seed: int = 0


@dataclass
class Delivery:
    """One POST attempt of one notification."""

    call_id: str
    url: str
    body: dict
    headers: dict
    status: int | None
    error: str | None
    sequence: int  # enqueue order within the emulator
    duplicate: bool = False
    time_s: float = field(default_factory=time.monotonic)

    @property
    def legacy(self) -> bool:
        return "value" not in self.body

    @property
    def notification(self) -> dict:
        """The (Graph-format) notification item; for a legacy body, a stand-in with its state."""
        if self.legacy:
            return {
                "changeType": "legacy",
                "resourceUrl": f"/communications/calls/{self.body.get('id')}",
                "resourceData": {"legacyState": self.body.get("callState")},
            }
        return self.body["value"][0]

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Pending:
    call_id: str
    body: dict
    sequence: int
    app_id: str
    tenant_id: str
    scenario_id: str | None
    chain_id: str | None


class Notifier:
    """Delivers notifications; one worker task per call keeps that call's order."""

    def __init__(
        self,
        sign: Callable[[str, str], str],
        resolve_url: Callable[[str], str | None],
        on_redirect: Callable[[str, str], None],
        faults: NotificationFaults | None = None,
        ssl_context: Any = None,
        retries: int = 3,
    ) -> None:
        self._sign = sign
        self._resolve_url = resolve_url
        self._on_redirect = on_redirect
        self.faults = faults or NotificationFaults()
        self._ssl = ssl_context
        self._retries = retries
        self._queues: dict[str, asyncio.Queue[_Pending]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._sequence = 0
        self._session: aiohttp.ClientSession | None = None
        self._random = random.Random(self.faults.seed)
        self.deliveries: list[Delivery] = []
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def set_faults(self, faults: NotificationFaults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)

    def enqueue(
        self,
        call_id: str,
        body: dict,
        *,
        app_id: str,
        tenant_id: str,
        scenario_id: str | None = None,
        chain_id: str | None = None,
    ) -> None:
        self._sequence += 1
        pending = _Pending(call_id, body, self._sequence, app_id, tenant_id, scenario_id, chain_id)
        queue = self._queues.get(call_id)
        if queue is None:
            queue = self._queues[call_id] = asyncio.Queue()
        queue.put_nowait(pending)
        worker = self._workers.get(call_id)
        if worker is None or worker.done():
            self._workers[call_id] = asyncio.get_running_loop().create_task(
                self._run(call_id, queue), name=f"emulator-notify-{call_id}"
            )

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued notification has been attempted."""

        async def _join() -> None:
            for queue in list(self._queues.values()):
                await queue.join()

        await asyncio.wait_for(_join(), timeout_s)

    async def wait_for(self, predicate: Callable[[Delivery], bool], timeout_s: float = 5.0) -> Delivery:
        """The first delivery (past or future) that satisfies ``predicate``."""

        async def _wait() -> Delivery:
            async with self._changed:
                while True:
                    for d in self.deliveries:
                        if predicate(d):
                            return d
                    await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout_s)

    async def _run(self, call_id: str, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            first = await queue.get()
            batch = [first]
            window = self.faults.reorder_window
            if window >= 2:
                deadline = time.monotonic() + self.faults.reorder_wait_s
                while len(batch) < window:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), remaining))
                    except asyncio.TimeoutError:
                        break
                batch.reverse()
            try:
                for pending in batch:
                    await self._deliver(pending, duplicate=False)
                    if self.faults.duplicate_rate > 0 and self._random.random() < self.faults.duplicate_rate:
                        await self._deliver(pending, duplicate=True)
            except asyncio.CancelledError:
                raise
            except Exception:  # a delivery bug must not kill the call's queue
                log.exception("notification delivery failed for call %s", call_id)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _deliver(self, pending: _Pending, *, duplicate: bool) -> None:
        assert self._session is not None, "Notifier not started"
        if self.faults.delay_s > 0:
            await asyncio.sleep(self.faults.delay_s)
        body = pending.body
        if self.faults.pascal_odata_type or self.faults.enum_case:
            body = apply_quirks(
                body, pascal_odata_type=self.faults.pascal_odata_type, enum_case=self.faults.enum_case
            )
        data = json.dumps(body).encode()
        legacy = legacy_body(body) if self.faults.legacy_first else None
        if legacy is not None:
            status = await self._post(pending, legacy, duplicate)
            if status != 204:  # the bot took the legacy body (or failed): nothing more is sent
                return
        await self._post(pending, body, duplicate, data)

    async def _post(
        self, pending: _Pending, body: dict, duplicate: bool, data: bytes | None = None
    ) -> int | None:
        """POST one body (following 302s, retrying connection errors); returns the last status."""
        assert self._session is not None, "Notifier not started"
        data = data if data is not None else json.dumps(body).encode()
        redirects = 0
        attempt = 0
        while True:
            url = self._resolve_url(pending.call_id)
            if url is None:
                await self._record(
                    Delivery(
                        pending.call_id,
                        "",
                        copy.deepcopy(body),
                        {},
                        None,
                        "no callbackUri",
                        pending.sequence,
                        duplicate,
                    )
                )
                return None
            headers = {
                "Content-Type": "application/json",
                "Authorization": "Bearer " + self._sign(pending.app_id, pending.tenant_id),
                "request-id": str(uuid.uuid4()),
            }
            if pending.scenario_id:
                headers["Scenario-Id"] = pending.scenario_id
            if pending.chain_id:
                headers["X-Microsoft-Skype-Chain-ID"] = pending.chain_id
            status: int | None = None
            error: str | None = None
            location: str | None = None
            try:
                async with self._session.post(url, data=data, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    location = resp.headers.get("Location")
                    await resp.read()
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            await self._record(
                Delivery(
                    pending.call_id,
                    url,
                    copy.deepcopy(body),
                    headers,
                    status,
                    error,
                    pending.sequence,
                    duplicate,
                )
            )
            if status == 302 and location and redirects < 3:
                # Region/instance redirect: later notifications of this call go to Location too.
                redirects += 1
                self._on_redirect(pending.call_id, location)
                continue
            if error is not None and attempt < self._retries:
                attempt += 1
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            return status

    async def _record(self, delivery: Delivery) -> None:
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()


def resource_matches(delivery: Delivery, pattern: str) -> bool:
    return re.search(pattern, delivery.notification.get("resourceUrl", "")) is not None
