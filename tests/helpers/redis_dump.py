"""Everything a Redis holds, to compare before and after or to search for what must not be there."""

from __future__ import annotations

import redis


def dump_redis(client: redis.Redis) -> dict[str, object]:
    """Every key and its value, whatever its type (SCAN, so every node of a cluster too)."""
    readers = {"string": client.get, "hash": client.hgetall, "set": client.smembers,
               "list": lambda key: client.lrange(key, 0, -1),
               "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
               "stream": lambda key: client.xrange(key)}
    return {key: readers[client.type(key)](key) for key in client.scan_iter(count=1000)}
