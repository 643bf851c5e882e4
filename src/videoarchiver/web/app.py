"""The web page's routes: pages, the event stream of live progress, JSON, metrics, media.

Everything shown is read from the store (any worker's progress is there, about 2 s old);
media are published outputs only, found by file id, never by a path from the request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from videoarchiver.config import load_config
from videoarchiver.display import clock_text
from videoarchiver.layout import Layout
from videoarchiver.output_kinds import names
from videoarchiver.pausing import PAUSED, pause_value
from videoarchiver.planning.paths import shown_name
from videoarchiver.state import (
    FileQuery,
    FileRow,
    FileState,
    IllegalMove,
    Listed,
    NoSuchFile,
    OutputState,
    Progress,
    StopAsked,
    Store,
    Summary,
)
from videoarchiver.state.steps import FROM_THE_PAGE
from videoarchiver.ui import clock_time, file_records, human_size, percent_saved
from videoarchiver.web.access import CSRF_FIELD, AccessGate, csrf_cookie, csrf_ok, csrf_value
from videoarchiver.web.descriptors import DescriptorResponse
from videoarchiver.web.fields import SEARCH_LIMIT, TooLong, text_field
from videoarchiver.web.gallery_form import (
    ORDER_LABELS,
    RESOLUTIONS,
    STATES,
    GalleryForm,
    read_form,
)
from videoarchiver.web.log_tail import FILTERS, LogFilter, LogVersion, last_lines, log_version
from videoarchiver.web.metrics import metrics_text
from videoarchiver.web.plot import Bar, saved_plot, summary_bars
from videoarchiver.web.published import PublishedFiles
from videoarchiver.web.scrub import sheet_of
from videoarchiver.web.settings import Settings
from videoarchiver.web.statistics import (
    TOP,
    container,
    failures_by_reason,
    largest_savings,
    saved_by,
    video_codec,
)
from videoarchiver.web.webm import WebmCache

HERE = Path(__file__).parent
PAGE = 60  # gallery thumbnails per page
LAST_PAGE = 100_000  # beyond any gallery (6 million files)
LARGEST_ID = 2**63 - 1  # what SQL integers hold
QUEUE = 200  # pending files listed, and failed ones (the latest)
MEDIA = {"montage.jpg": ("montage", "image/jpeg"), "preview.webm": ("preview", "video/webm")}
CACHED = {"cache-control": "private, max-age=3600"}
EVENT_SECONDS = 1.0  # how often the event stream sends what runs


def _file_json(row: FileRow) -> dict[str, Any]:
    return asdict(row) | {"name": shown_name(row.rel_path)}


def _listed_json(listed: Listed) -> dict[str, Any]:
    facts = {name: getattr(listed, name) for name in ("seconds", "codec", "width", "height")}
    return _file_json(listed.file) | facts | {"archive_bytes": listed.archive_bytes}


class WebApp:
    """The page of one root, over its store."""

    def __init__(self, store: Store, layout: Layout, demuxers: str, settings: Settings) -> None:
        self.store, self.layout, self.settings = store, layout, settings
        self._grouped: tuple[Hashable, tuple[list[Bar], list[Bar]]] | None = None
        self.published = PublishedFiles(store, layout)
        self.webm = WebmCache(layout, demuxers)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["size"] = human_size
        self.templates.env.filters["name"] = shown_name
        self.templates.env.filters["when"] = clock_time
        self.templates.env.filters["date"] = lambda day: date(1970, 1, 1) + timedelta(days=day)
        self.templates.env.filters["clock"] = clock_text
        self.templates.env.filters["age"] = age
        self.templates.env.filters["duration"] = duration
        self.templates.env.globals["search_limit"] = SEARCH_LIMIT

    async def _page(self, request: Request, template: str, **values: Any) -> Response:
        csrf = csrf_value(request.cookies)
        paused = await self.store.control(PAUSED)
        response = self.templates.TemplateResponse(
            request, template, {"csrf": csrf, "csrf_field": CSRF_FIELD, "paused": paused,
                                **values},
        )  # fmt: skip
        response.headers["set-cookie"] = csrf_cookie(csrf)
        return response

    # -- pages ---------------------------------------------------------------------------------

    async def now(self, request: Request) -> Response:
        summary = await self.store.summary()
        return await self._page(
            request, "now.html", summary=summary, **await self._running(),
            saved=_saved(summary),
        )  # fmt: skip

    async def _named(self, tasks: Sequence[Progress]) -> list[dict[str, Any]]:
        """Tasks as JSON with their file's name (one whose file was just forgotten is left
        out)."""
        names: dict[int, str] = {}
        named = []
        for task in tasks:
            if task.file_id not in names:
                try:
                    row = await self.store.get_file(task.file_id)
                except NoSuchFile:
                    continue
                names[task.file_id] = shown_name(row.rel_path)
            named.append(asdict(task) | {"name": names[task.file_id]})
        return named

    async def _stalled(self) -> list[dict[str, Any]]:
        lost = [task for task in await self.store.progress() if task.lost_since is not None]
        return await self._named(lost)

    async def queue(self, request: Request) -> Response:
        return await self._page(
            request, "queue.html", pending=await self.store.queue(QUEUE),
            failed=await self.store.failures(QUEUE), stalled=await self._stalled(),
        )  # fmt: skip

    async def _listing_page(self, request: Request) -> tuple[GalleryForm, int, list[Listed], bool]:
        """The gallery's form, page number, files of that page, and whether more follow."""
        try:
            form = read_form(request.query_params)
        except TooLong as exc:
            raise HTTPException(400, str(exc)) from exc
        page = _page_number(request)
        listed = await self.store.listing(form.query, PAGE + 1, page * PAGE)
        return form, page, listed[:PAGE], len(listed) > PAGE

    async def gallery(self, request: Request) -> Response:
        form, page, listed, more = await self._listing_page(request)
        ids = [each.file.id for each in listed]
        outputs = await self.store.all_outputs(ids)
        montages = {
            o.file_id for o in outputs if o.kind == "montage" and o.state is OutputState.DONE
        }
        jobs = await self.store.all_jobs(ids)
        return await self._page(
            request, "gallery.html", listed=listed, form=form, page=page, more=more,
            montages=montages, sheets={id: sheet_of(jobs.get(id, [])) for id in montages},
            states=STATES, orders=ORDER_LABELS, resolutions=RESOLUTIONS,
        )  # fmt: skip

    async def file(self, request: Request) -> Response:
        row = await self._row(request)
        tasks = [task for task in await self.store.progress() if task.file_id == row.id]
        jobs = {kind: await self.store.jobs(row.id, kind) for kind in names()}
        return await self._page(
            request, "file.html", file=row, outputs=await self.store.outputs(row.id),
            kinds=names(), tasks=await self._named(tasks), jobs=jobs,
            sheet=sheet_of([(kind, job) for kind, own in jobs.items() for job in own.values()]),
            history=await self.store.history(row.id),
        )  # fmt: skip

    async def statistics(self, request: Request) -> Response:
        summary, days = await self.store.summary(), await self.store.days()
        by_container, by_codec = await self._saved_by(summary)
        largest = await self.store.listing(FileQuery(order="saving"), TOP, 0)
        return await self._page(
            request, "statistics.html", summary=summary, days=days,
            saved=_saved(summary),
            hours=await self.store.encode_seconds() / 3600, plot=saved_plot(days),
            bars=summary_bars(summary) if summary.files else None,
            by_container=by_container, by_codec=by_codec,
            largest=largest_savings(largest),
            failures=failures_by_reason(await self.store.files([FileState.FAILED])),
        )  # fmt: skip

    async def _saved_by(self, summary: Summary) -> tuple[list[Bar], list[Bar]]:
        """Bytes saved by container and by codec. They read every done file's probe (seconds
        at 100,000 files), so they are kept until the store's totals change."""
        totals = (tuple(sorted(summary.files.items())), summary.raw_bytes, summary.archive_bytes)
        if self._grouped is None or self._grouped[0] != totals:
            done = summary.count(FileState.DONE)
            finished = await self.store.listing(FileQuery(), done, 0) if done else []
            grouped = (saved_by(finished, container), saved_by(finished, video_codec))
            self._grouped = (totals, grouped)
        return self._grouped[1]

    async def logs(self, request: Request) -> Response:
        wanted = _log_filter(request)
        return await self._page(
            request, "logs.html", levels=FILTERS, **await self._log_view(wanted)
        )

    async def _log_view(self, wanted: LogFilter) -> dict[str, Any]:
        lines = await anyio.to_thread.run_sync(last_lines, self.layout.root, wanted)
        return {"lines": lines, "wanted": wanted}

    async def settings_page(self, request: Request) -> Response:
        return await self._page(request, "settings.html", settings=self.settings)

    async def _row(self, request: Request) -> FileRow:
        file_id = int(request.path_params["file_id"])
        if file_id > LARGEST_ID:
            raise HTTPException(404, "no such file")
        try:
            return await self.store.get_file(file_id)
        except NoSuchFile as exc:
            raise HTTPException(404, "no such file") from exc

    # -- live progress -------------------------------------------------------------------------

    async def _running(self) -> dict[str, Any]:
        return {
            "tasks": await self._named(await self.store.progress()),
            "workers": [asdict(worker) for worker in await self.store.workers()],
            "paused": await self.store.control(PAUSED) is not None,
            "now": await self.store.clock(),
        }

    async def _live(self, csrf: str) -> dict[str, Any]:
        """What runs, with the Now page's markup of it (`html`: what `live.js` shows; its
        forms repeat `csrf`)."""
        running = await self._running()
        html = self.templates.get_template("now_live.html").render(
            running, csrf=csrf, csrf_field=CSRF_FIELD
        )
        return running | {"html": html}

    async def events(self, request: Request) -> Response:
        """Server-sent events: what runs on every worker, every EVENT_SECONDS."""
        csrf = csrf_value(request.cookies)
        return _event_stream(lambda: self._live(csrf))

    async def log_events(self, request: Request) -> Response:
        """Server-sent events: the log page's lines (its filter's), whenever the log changed
        (looked at every EVENT_SECONDS)."""
        wanted = _log_filter(request)
        seen: list[LogVersion | None] = []

        async def changed() -> dict[str, Any] | None:
            version = await anyio.to_thread.run_sync(log_version, self.layout.root)
            if seen == [version]:
                return None
            seen[:] = [version]
            view = await self._log_view(wanted)
            return {"html": self.templates.get_template("logs_live.html").render(view)}

        return _event_stream(changed)

    # -- JSON and metrics ----------------------------------------------------------------------

    async def api_summary(self, request: Request) -> Response:
        summary = await self.store.summary()
        return JSONResponse(asdict(summary) | {
            "saved_bytes": summary.raw_bytes - summary.archive_bytes,
            "encode_hours": await self.store.encode_seconds() / 3600,
        })  # fmt: skip

    async def api_progress(self, request: Request) -> Response:
        return JSONResponse(await self._running())

    async def api_queue(self, request: Request) -> Response:
        pending = await self.store.queue(QUEUE)
        failed = await self.store.failures(QUEUE)
        return JSONResponse({"pending": [_file_json(row) for row in pending],
                             "failed": [_file_json(row) for row in failed],
                             "stalled": await self._stalled()})  # fmt: skip

    async def api_files(self, request: Request) -> Response:
        _form, _page, listed, more = await self._listing_page(request)
        return JSONResponse({
            "files": [_listed_json(each) for each in listed],
            "more": more,
        })  # fmt: skip

    async def api_file(self, request: Request) -> Response:
        """The file as `status --json` shows it, with its name."""
        row = await self._row(request)
        [record] = file_records(
            [row], (await self.store.outputs(row.id)).values(),
            await self.store.all_jobs([row.id]), await self.store.progress(),
        )  # fmt: skip
        return JSONResponse(_file_json(row) | record)

    async def api_days(self, request: Request) -> Response:
        return JSONResponse([asdict(day) for day in await self.store.days()])

    async def metrics(self, request: Request) -> Response:
        return PlainTextResponse(
            metrics_text(
                await self.store.summary(),
                await self.store.progress(),
                await self.store.workers(),
                await self.store.clock(),
            ),
            media_type="text/plain; version=0.0.4",
        )

    # -- media ---------------------------------------------------------------------------------

    async def media(self, request: Request) -> Response:
        """A published montage, or a preview remuxed into WebM (what browsers play)."""
        row = await self._row(request)
        kind, media_type = MEDIA.get(request.path_params["what"], ("", ""))
        opened = await self.published.open(row.id, kind) if kind else None
        if opened is None:
            raise HTTPException(404, "not published, or no longer what was published")
        fd = opened.fd
        if kind == "preview":
            webm = await self.webm.of(row.id, opened.sha256, fd)  # it closes fd
            if webm is None:
                raise HTTPException(502, "the preview cannot be remuxed into WebM")
            fd = webm
        return DescriptorResponse(fd, media_type, CACHED)

    async def download(self, request: Request) -> Response:
        """A published output as it is, to keep: an attachment under its own name."""
        row = await self._row(request)
        kind = request.path_params["kind"]
        opened = await self.published.open(row.id, kind) if kind in names() else None
        if opened is None:
            raise HTTPException(404, "not published, or no longer what was published")
        return DescriptorResponse(opened.fd, None, CACHED, filename=opened.name)

    # -- actions -------------------------------------------------------------------------------

    async def _checked_form(self, request: Request) -> FormData:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        origin = request.headers.get("origin", "")
        if not csrf_ok(request.cookies, value if isinstance(value, str) else None, origin,
                       request.headers.get("host", "")):  # fmt: skip
            raise HTTPException(403, "this form did not come from this page")
        return form

    async def _on_file(
        self, request: Request, default: str, act: Callable[[FileRow], Awaitable[object]]
    ) -> Response:
        """An action on one file from a form (`act`), recorded in its history by the store;
        answered by a redirect back to the page it came from (its form's `back`: the file's
        page, the queue or the Now page; else `default`). 409 when the file is no longer in
        a state it applies to (it ended, say, since the page was drawn)."""
        form = await self._checked_form(request)
        row = await self._row(request)
        try:
            await act(row)
        except IllegalMove as exc:
            raise HTTPException(409, str(exc)) from exc
        except NoSuchFile as exc:  # forgotten (its raw file replaced) since the page was drawn
            raise HTTPException(404, "no such file") from exc
        pages = {"file": f"/files/{row.id}", "queue": "/queue", "now": "/"}
        back = form.get("back")
        return RedirectResponse(pages.get(back if isinstance(back, str) else "", default), 303)

    async def retry(self, request: Request) -> Response:
        return await self._on_file(
            request, "/queue", lambda row: self.store.retry([row.rel_path], by=FROM_THE_PAGE)
        )

    async def stop(self, request: Request) -> Response:
        """A running file goes back to pending, with its parts, once its worker stopped it."""
        return await self._on_file(
            request, "/", lambda row: self.store.ask_stop(row.id, StopAsked.RELEASE)
        )

    async def set_aside(self, request: Request) -> Response:
        """A running file is stopped and held as failed until retried."""
        return await self._on_file(
            request, "/", lambda row: self.store.ask_stop(row.id, StopAsked.SET_ASIDE)
        )

    async def front(self, request: Request) -> Response:
        """A pending file is claimed next."""
        return await self._on_file(request, "/queue", lambda row: self.store.move_to_front(row.id))

    async def pause(self, request: Request) -> Response:
        await self._checked_form(request)
        await self.store.set_control(PAUSED, pause_value(""))  # running ffmpegs finish
        return RedirectResponse("/", status_code=303)

    async def resume(self, request: Request) -> Response:
        await self._checked_form(request)
        await self.store.set_control(PAUSED, None)
        return RedirectResponse("/", status_code=303)

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.now),
            Route("/queue", self.queue),
            Route("/gallery", self.gallery),
            Route("/files/{file_id:int}", self.file),
            Route("/statistics", self.statistics),
            Route("/logs", self.logs),
            Route("/settings", self.settings_page),
            Route("/events", self.events),
            Route("/events/logs", self.log_events),
            Route("/api/summary", self.api_summary),
            Route("/api/progress", self.api_progress),
            Route("/api/queue", self.api_queue),
            Route("/api/files", self.api_files),
            Route("/api/files/{file_id:int}", self.api_file),
            Route("/api/days", self.api_days),
            Route("/metrics", self.metrics),
            Route("/media/{file_id:int}/{what}", self.media),
            Route("/files/{file_id:int}/download/{kind}", self.download),
            Route("/files/{file_id:int}/retry", self.retry, methods=["POST"]),
            Route("/files/{file_id:int}/stop", self.stop, methods=["POST"]),
            Route("/files/{file_id:int}/set-aside", self.set_aside, methods=["POST"]),
            Route("/files/{file_id:int}/front", self.front, methods=["POST"]),
            Route("/pause", self.pause, methods=["POST"]),
            Route("/resume", self.resume, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


def _saved(summary: Summary) -> str:
    return percent_saved(summary.raw_bytes, summary.archive_bytes) if summary.raw_bytes else "-"


def age(seconds: float) -> str:
    """How long ago, roughly: `4 s`, `3 min`, `2 h`, `5 days`."""
    seconds = max(0.0, seconds)
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} days"


def duration(seconds: float) -> str:
    """A video's length: `4:05`, `1:02:03`."""
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _event_stream(next_event: Callable[[], Awaitable[dict[str, Any] | None]]) -> Response:
    """Server-sent events: what `next_event` gives every EVENT_SECONDS (None: nothing new)."""

    async def stream() -> AsyncIterator[str]:
        while True:
            event = await next_event()
            if event is not None:
                yield f"data: {json.dumps(event)}\n\n"
            await anyio.sleep(EVENT_SECONDS)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"cache-control": "no-store"}
    )


def _log_filter(request: Request) -> LogFilter:
    level = request.query_params.get("level", "").upper()
    try:
        name = text_field(request.query_params, "file")
    except TooLong as exc:
        raise HTTPException(400, str(exc)) from exc
    return LogFilter(level if level in FILTERS else FILTERS[0], name)


def _page_number(request: Request) -> int:
    try:
        return min(LAST_PAGE, max(0, int(request.query_params.get("page", "0"))))
    except ValueError:
        return 0


def create_app(store: Store, layout: Layout, token: str | None, demuxers: str,
               settings: Settings | None = None) -> AccessGate:  # fmt: skip
    """The ASGI application: the page, behind its gate (this machine only, or the token);
    ffmpeg reads previews as only `demuxers` (`tools.readable_demuxers`); the settings page
    shows `settings` (by default: no file, the environment's)."""
    web = WebApp(store, layout, demuxers, settings or Settings.of(load_config(None), None))
    return AccessGate(Starlette(routes=web.routes()), token)
