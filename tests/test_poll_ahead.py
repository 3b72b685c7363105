"""A long poll whose ``since`` is ahead of this node is held until the client's next message.

Behind a load balancer over a broker hub, a long-poll client's next request can land on a
node that has not yet received the message the client got from another node. The
messages up to ``since`` must not wake that poll: an empty answer would only send the
client straight back (a wasted request per message). Checked on both ways a poll is held:
:meth:`Hub.wait` (aiohttp, Starlette) and the raw stack's :class:`HeldPoll`.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from pushbench.deadline import LazyDeadline
from pushbench.hub import Hub
from pushbench.servers.raw.polls import HeldPoll
from pushbench.service import PushService


async def _hub_wait(hub: Hub, since: int) -> list[int]:
    return [item.seq for item in await hub.wait("t", since, 5.0)]


async def _held_poll(hub: Hub, since: int) -> list[int]:
    answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    clock = LazyDeadline(asyncio.get_running_loop())
    HeldPoll(PushService(hub), "t", since, 5.0, answered.set_result, clock)
    return [int(m["s"]) for m in json.loads(await answered)["messages"]]


@pytest.mark.parametrize("hold", [_hub_wait, _held_poll], ids=["hub-wait", "raw-held-poll"])
def test_messages_up_to_since_do_not_answer_a_poll_from_ahead(hold: object) -> None:
    async def test() -> None:
        hub = Hub()
        await hub.publish("t", "m1")  # this node is at #1; the client already has #3
        poll = asyncio.ensure_future(hold(hub, 3))  # type: ignore[operator]
        await asyncio.sleep(0)
        for text in ("m2", "m3"):
            await hub.publish("t", text)
            await asyncio.sleep(0.01)
            assert not poll.done()  # #2 and #3: the client has them, keep holding
        await hub.publish("t", "m4")
        async with asyncio.timeout(5):
            assert await poll == [4]

    asyncio.run(test())
