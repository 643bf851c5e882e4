"""Several awaitables at once, with the errors of one after another."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

T = TypeVar("T")


async def together(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run `calls` concurrently and return their results in order. When any fails, every
    call still ends, and the first failure in their order is raised as it is (not in an
    exception group): callers handle it as if the calls had run one after the other."""
    results: list[T | Exception] = []

    async def run(number: int, call: Callable[[], Awaitable[T]]) -> None:
        try:
            results[number] = await call()
        except Exception as exc:  # raised below, in order
            results[number] = exc

    results.extend(Exception("not run") for _ in calls)
    async with anyio.create_task_group() as group:
        for number, call in enumerate(calls):
            group.start_soon(run, number, call)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return [result for result in results if not isinstance(result, Exception)]
