"""`together`: several awaitables at once, failing as if they had run one after another."""

from __future__ import annotations

import anyio
import pytest

from videoarchiver.together import together


async def _after(seconds: float, value: str) -> str:
    await anyio.sleep(seconds)
    if value.startswith("fail"):
        raise ValueError(value)
    return value


@pytest.mark.anyio
async def test_results_in_order_and_side_by_side() -> None:
    started = {name: anyio.Event() for name in "abc"}
    ended = {name: anyio.Event() for name in "abc"}
    order: list[str] = []

    async def call(name: str, after: str | None) -> str:
        started[name].set()
        for each in started.values():  # one after another, the first would wait forever
            await each.wait()
        if after is not None:
            await ended[after].wait()
        order.append(name)
        ended[name].set()
        return name

    with anyio.fail_after(10):
        found = await together([lambda: call("a", "c"), lambda: call("b", None),
                                lambda: call("c", "b")])  # fmt: skip
    assert order == ["b", "c", "a"] and found == ["a", "b", "c"], "in order, not as they end"


@pytest.mark.anyio
async def test_the_first_failure_in_order_is_raised_as_it_is() -> None:
    ended: list[str] = []

    async def last() -> str:
        ended.append(await _after(0.2, "last"))
        return "last"

    with pytest.raises(ValueError, match=r"^fail first$"):  # not an ExceptionGroup
        await together([lambda: _after(0.1, "fail first"), lambda: _after(0.0, "fail second"),
                        last])  # fmt: skip
    assert ended == ["last"], "every call still ends"
