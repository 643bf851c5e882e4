"""Text fields of a page's query: no NUL, at most SEARCH_LIMIT characters (SQLite refuses a
LIKE pattern of 50,000 bytes)."""

from __future__ import annotations

from collections.abc import Mapping

SEARCH_LIMIT = 200  # characters


class TooLong(ValueError):
    """A text field of more than SEARCH_LIMIT characters."""


def text_field(params: Mapping[str, str], name: str) -> str:
    text = params.get(name, "").replace("\0", "").strip()
    if len(text) > SEARCH_LIMIT:
        raise TooLong(f"a search is at most {SEARCH_LIMIT} characters")
    return text
