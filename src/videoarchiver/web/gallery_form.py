"""The gallery's form: query parameters (a GET form, no JavaScript needed) read into a
`FileQuery`, and the same fields handed back to the page to show and to page with.

A value that does not parse (a date of another shape, a word for a number) is left out,
as if not given; a text too long is refused (`fields.TooLong`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from videoarchiver.state import ORDERS, FileQuery, FileState
from videoarchiver.web.fields import text_field

DAY = timedelta(days=1)
# Resolutions by the main video's shorter side (a phone's portrait video as its landscape).
RESOLUTIONS = {"sd": ("SD", (None, 720)), "720p": ("720p", (720, 1080)),
               "1080p": ("1080p", (1080, 2160)), "4k": ("4K", (2160, None))}  # fmt: skip
STATES = ("done", "failed", "running", "pending", "any")
ORDER_LABELS = {"newest": "newest", "saving": "largest saving", "longest": "longest"}
FIELDS = ("q", "state", "from", "to", "min", "max", "resolution", "codec", "folder", "sort")
MORE = ("from", "to", "min", "max", "resolution", "codec", "folder")  # folded under "Filters"


@dataclass(frozen=True)
class GalleryForm:
    fields: dict[str, str]  # as the page shows them back (empty: not given, or not valid)
    query: FileQuery

    @property
    def more_set(self) -> int:
        """How many of the folded filters are set."""
        return sum(bool(self.fields[name]) for name in MORE)

    @property
    def filtered(self) -> bool:
        """Whether a filter beyond the search and the default state is set."""
        return bool(self.more_set) or self.fields["state"] != STATES[0]

    def link(self, **changes: str | int) -> str:
        """The gallery's address with these fields, changed as given (empty ones left out)."""
        values = self.fields | {name: str(value) for name, value in changes.items()}
        return "/gallery?" + urlencode({name: value for name, value in values.items() if value})


def _day(text: str) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    except ValueError:
        return None


def _minutes(text: str) -> float | None:
    try:
        minutes = float(text)
    except ValueError:
        return None
    return minutes * 60 if 0 <= minutes < 1e9 else None


def read_form(params: Mapping[str, str]) -> GalleryForm:
    """The form's fields and the query they make."""
    fields = {name: text_field(params, name) for name in FIELDS}
    fields["state"] = fields["state"] if fields["state"] in STATES else STATES[0]
    fields["sort"] = fields["sort"] if fields["sort"] in ORDERS else ORDERS[0]
    fields["resolution"] = fields["resolution"] if fields["resolution"] in RESOLUTIONS else ""
    start, end = _day(fields["from"]), _day(fields["to"])
    low, high = _minutes(fields["min"]), _minutes(fields["max"])
    for name, value in (("from", start), ("to", end), ("min", low), ("max", high)):
        if value is None:
            fields[name] = ""
    state = fields["state"]
    query = FileQuery(
        search=fields["q"],
        states=() if state == "any" else (FileState(state),),
        changed=(start.timestamp() if start else None, (end + DAY).timestamp() if end else None),
        seconds=(low, high),
        side=RESOLUTIONS[fields["resolution"]][1] if fields["resolution"] else (None, None),
        codec=fields["codec"].lower(),
        folder=fields["folder"],
        order=fields["sort"],
    )
    return GalleryForm(fields, query)
