"""Telling people what needs them (config `notify`, Apprise URLs: mail, ntfy, Discord,
Telegram, webhooks …): a file that failed (a stall included), and the queue drained.

Apprise is synchronous: it runs in a worker thread, so a slow server never holds the event
loop; a notification that cannot be sent is a warning in the log, never a failure. It is
imported when the first notification is sent: most roots configure none, and importing it
costs every start a tenth of a second.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from anyio import to_thread

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, urls: Sequence[str]) -> None:
        self._urls = list(urls)

    def _send(self, title: str, body: str, failure: bool) -> None:
        import apprise  # see the docstring

        targets = apprise.Apprise()
        for url in self._urls:
            if not targets.add(url):
                log.warning("notify: not an Apprise URL Apprise can use: %s", url)
        kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS
        if len(targets) and not targets.notify(body=body, title=title, notify_type=kind):
            log.warning("notify: %r could not be sent to every URL", title)

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    async def send(self, title: str, body: str, failure: bool = False) -> None:
        if self._urls:
            await to_thread.run_sync(self._send, title, body, failure)

    async def failed(self, name: str, reason: str) -> None:
        what = "stalled" if "stalled: no progress" in reason else "failed"
        await self.send(f"videoarchiver: {name} {what}", reason, failure=True)
