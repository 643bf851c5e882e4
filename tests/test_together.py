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
    with anyio.fail_after(0.5):  # one after another would take 0.6 s
        found = await together([lambda: _after(0.3, "a"), lambda: _after(0.1, "b"),
                                lambda: _after(0.2, "c")])  # fmt: skip
    assert found == ["a", "b", "c"]


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
