"""A second process for tests/test_hub_redis.py: publish N messages through a RedisHub.

Usage: ``python tests/redis_publisher.py URL PREFIX TOPIC N``. Publishes
``"msg 0"`` … ``"msg N-1"`` one after the other, prints the sequence numbers
``publish`` returned as a JSON list and exits (0 on success).
"""

from __future__ import annotations

import asyncio
import json
import sys

from pushbench.hub_redis import RedisHub


async def main(url: str, prefix: str, topic: str, n: int) -> list[int]:
    hub = RedisHub(url=url, prefix=prefix)
    await hub.start()
    try:
        return [await hub.publish(topic, f"msg {i}") for i in range(n)]
    finally:
        await hub.stop()


if __name__ == "__main__":
    url, prefix, topic, n = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(url, prefix, topic, int(n)))))
