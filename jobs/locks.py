"""One run at a time across workers for periodic jobs (each worker's cron scheduler
enqueues them; the first to take the Redis lock does the work, the others skip)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis import Redis
from redis.exceptions import RedisError


@contextlib.contextmanager
def once(connection: Redis, name: str, seconds: int) -> Iterator[bool]:
    """Yields True where the lock ``sgx:lock:{name}`` was free (Redis away: False)."""
    lock = connection.lock(f"sgx:lock:{name}", timeout=seconds, blocking=False)
    try:
        held = lock.acquire(blocking=False)
    except RedisError:
        held = False
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(RedisError):
                lock.release()
