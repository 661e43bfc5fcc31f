"""Notification delivery: order per call, signatures, and the injectable faults (quirk casing,
duplicates, reordering, delay, region redirect, key rotation)."""

from __future__ import annotations

import asyncio

from bot.emulator import NotificationFaults
from bot.emulator.notify import apply_quirks

from .conftest import example
from .test_graph import CALLS, create_p2p, with_callback


def test_apply_quirks_pascal_case_and_enum_case():
    body = example("playPrompt.notification.completed.json")
    quirky = apply_quirks(body, pascal_odata_type=True, enum_case=True)
    assert quirky["@odata.type"] == "#Microsoft.Graph.CommsNotifications"
    item = quirky["value"][0]
    assert item["@odata.type"] == "#Microsoft.Graph.CommsNotification"
    assert item["changeType"] == "deleted"  # not an enum the quirk touches
    assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.PlayPromptOperation"
    assert item["resourceData"]["resultInfo"]["@odata.type"] == "#Microsoft.Graph.ResultInfo"
    assert item["resourceData"]["status"] == "Completed"
    assert body["value"][0]["resourceData"]["status"] == "completed"  # the original is untouched


async def test_quirks_reach_the_bot(graph, receiver, emulator):
    emulator.notification_faults = NotificationFaults(pascal_odata_type=True, enum_case=True)
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    assert status == 201
    items = await receiver.wait(2, call["id"])
    assert [i["resourceData"]["state"] for i in items] == ["Establishing", "Established"]
    assert all(i["resourceData"]["@odata.type"] == "#Microsoft.Graph.Call" for i in items)
    assert receiver.received[0].body["@odata.type"] == "#Microsoft.Graph.CommsNotifications"


async def test_duplicates_are_delivered_twice_in_place(graph, receiver, emulator):
    emulator.notification_faults = NotificationFaults(duplicate_rate=1.0)
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    items = await receiver.wait(4, call["id"])
    assert [i["resourceData"]["state"] for i in items] == ["establishing"] * 2 + ["established"] * 2
    assert [d.duplicate for d in emulator.deliveries] == [False, True, False, True]


async def test_reorder_window_reverses_a_calls_notifications(graph, receiver, emulator):
    emulator.notification_faults = NotificationFaults(reorder_window=2, reorder_wait_s=0.5)
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    items = await receiver.wait(2, call["id"])
    assert [i["resourceData"]["state"] for i in items] == ["established", "establishing"]
    assert [d.sequence for d in emulator.deliveries] == sorted((d.sequence for d in emulator.deliveries),
                                                               reverse=True)


async def test_delay_holds_each_delivery(graph, receiver, emulator):
    emulator.notification_faults = NotificationFaults(delay_s=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    await asyncio.sleep(0.05)
    assert receiver.items(call["id"]) == []  # held back
    await receiver.wait(2, call["id"])
    assert emulator.deliveries[-1].time_s - emulator.deliveries[0].time_s >= 0.15
    assert loop.time() - start >= 0.35


async def test_each_call_keeps_its_order_while_calls_interleave(graph, receiver, emulator):
    ids = []
    for _ in range(8):
        status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json",
                                                                receiver.url))
        ids.append(call["id"])
    await emulator.settle()
    for call_id in ids:
        await graph.post(f"{CALLS}/{call_id}/playPrompt", example("playPrompt.request.json"))
        await graph.delete(f"{CALLS}/{call_id}")
    for call_id in ids:
        items = await receiver.wait(5, call_id)
        kinds = [(i["changeType"], i["resourceData"].get("state") or i["resourceData"]["status"]) for i in items]
        assert kinds[:2] == [("updated", "establishing"), ("updated", "established")]
        assert kinds[-2:] == [("updated", "terminating"), ("deleted", "terminated")]
        assert sum(1 for k in kinds if k[0] == "deleted") == 2  # the prompt's operation and the call


async def test_302_moves_the_call_to_another_instance(graph, receiver, emulator):
    other = receiver.url.replace("/api/calls", "/api/other")
    receiver.redirect_to = other
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    await receiver.wait(3)
    await emulator.settle()
    assert [(d.url.rsplit("/", 1)[-1], d.status) for d in emulator.deliveries] == [
        ("calls", 302), ("other", 202), ("other", 202)]
    assert [i["resourceData"]["state"] for i in receiver.items()] == ["establishing", "establishing", "established"]
    assert emulator.call(call["id"]).callback_uri == other


async def test_callbacks_are_signed_with_a_rotated_key_the_jwks_publishes(graph, receiver, emulator):
    call_id = await create_p2p(graph, receiver)
    old_kid = emulator.auth.callback_key.kid
    emulator.auth.rotate_callback_key()
    await graph.post(f"{CALLS}/{call_id}/keepAlive", None)
    await graph.delete(f"{CALLS}/{call_id}")
    await receiver.wait(4, call_id)
    assert all(r.error is None for r in receiver.received)
    assert emulator.auth.callback_key.kid != old_kid
    assert emulator.jwks_fetches == 2  # fetched again for the unknown kid


async def test_failed_deliveries_are_recorded(graph, emulator):
    emulator.register_bot(webhook_url="http://127.0.0.1:9/nobody")
    emulator.notifier._retries = 1
    call = emulator.incoming_call()
    await emulator.settle()
    attempts = [d for d in emulator.deliveries if d.call_id == call.id]
    assert len(attempts) == 2 and all(d.error and d.status is None for d in attempts)


async def test_fifty_concurrent_calls_each_in_order(graph, receiver, emulator):
    async def one() -> str:
        status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json",
                                                                receiver.url))
        assert status == 201
        await receiver.wait(2, call["id"], timeout_s=20)
        status, _, _ = await graph.post(f"{CALLS}/{call['id']}/sendDtmfTones", example("sendDtmfTones.request.json"))
        assert status == 200
        await receiver.wait(3, call["id"], timeout_s=20)
        status, _, _ = await graph.delete(f"{CALLS}/{call['id']}")
        assert status == 204
        return call["id"]

    ids = await asyncio.gather(*(one() for _ in range(50)))
    for call_id in ids:
        items = await receiver.wait(5, call_id, timeout_s=20)
        assert [i["resourceData"].get("state") or i["resourceData"].get("status") for i in items] == [
            "establishing", "established", "completed", "terminating", "terminated"]
    assert len(emulator.service.ended) == 50 and not emulator.service.calls
    assert all(r.error is None for r in receiver.received)


async def test_legacy_format_first_then_graph_format_after_204(graph, receiver, emulator):
    emulator.notification_faults = NotificationFaults(legacy_first=True)
    call = emulator.incoming_call(display_name="Carol")
    items = await receiver.wait(1, call.id)
    assert items[0]["changeType"] == "created"
    legacy = receiver.received[0].body
    assert "@odata.type" not in legacy and legacy["id"] == call.id and legacy["callState"] == "incoming"
    assert legacy["participants"][0]["identity"]["user"]["displayName"] == "Carol"
    assert receiver.received[0].error is None  # signed like any notification
    assert [d.status for d in emulator.deliveries] == [204, 202]
    receiver.legacy_status = 202  # a bot that takes the legacy body gets no Graph one
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/reject", {"reason": "busy"})
    await emulator.settle()
    assert [d.legacy for d in emulator.deliveries] == [True, False, True]
    assert len(receiver.items(call.id)) == 1


async def test_invite_multiple_quirk_uses_operations_participants(graph, receiver, emulator):
    emulator.service.options.invite_multiple_quirk = True
    from .test_graph import join_meeting
    call_id, _ = await join_meeting(graph, receiver, emulator)
    body = example("invite.multiple.request.json")
    for p in body["participants"]:
        p.pop("replacesCallId")
    status, _, op = await graph.post(f"{CALLS}/{call_id}/participants/invite", body)
    assert status == 200
    items = await receiver.wait(6, call_id)
    from .conftest import assert_shape
    assert_shape(items[3], example("invite.multiple.notification.operationCompleted.json")["value"][0])
    assert_shape(items[4], example("invite.multiple.notification.roster.json")["value"][0])
    assert items[3]["resourceUrl"].endswith("/operations/participants") and items[3]["resourceData"]["id"] is None
    assert items[3]["resourceData"]["clientContext"] == body["clientContext"]
    assert items[4]["resourceUrl"].endswith("/operations/participants")
