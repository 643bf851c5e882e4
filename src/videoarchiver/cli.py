"""Command line: `videoarchiver run | status | retry | verify | config`.

Exit codes: 0 success; 1 a file failed (`run --once`), a retry matched nothing, or `verify`
found a missing or changed archive; 2 the configuration, the tools or the state stop the
command before it starts; 130 a second SIGINT/SIGTERM stopped `run` at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console

from videoarchiver import __version__
from videoarchiver.checking import problem, published_outputs, recorded_outputs
from videoarchiver.config import (
    Config,
    find_config_file,
    load_config,
    shown_settings,
    unknown_variables,
)
from videoarchiver.errors import ConfigError, VideoArchiverError, describe_error, first_of
from videoarchiver.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from videoarchiver.identity import Content, check_content
from videoarchiver.layout import Layout
from videoarchiver.logs import configure_logging
from videoarchiver.output_kinds import kinds
from videoarchiver.pausing import NOW, PAUSED, pause_value
from videoarchiver.planning.paths import rel_from_key, rel_key, shown_name
from videoarchiver.state import FileState, open_store
from videoarchiver.ui import Listing, plural, print_json, print_status

RECENT = 20  # finished files `status` lists without --all
CLI_PATIENCE = 10.0  # seconds a command waits for an unreachable state database
WHY = {  # what `verify` says of each problem (`checking.problem`)
    "changed": ": SHA-256 differs",
    "unrecorded": ": not the file its publishing recorded (SHA-256 differs); it is left as it is",
}
log = logging.getLogger("videoarchiver")


# Each command: its one-line description and an example.
COMMANDS = {
    "run": (
        "process raw/ and keep watching it (the daemon)",
        "videoarchiver run --root /srv/videos",
    ),
    "status": ("show every file's state", "videoarchiver status | grep failed"),
    "retry": ("make failed files pending again (all, or PATHs)", "videoarchiver retry raw/a.mp4"),
    "verify": ("check every published output against its recorded SHA-256", "videoarchiver verify"),
    "config": ("print the effective configuration and its sources", "videoarchiver config"),
    "pause": ("start no new ffmpeg (running ones finish) until resume", "videoarchiver pause"),
    "resume": ("let a paused daemon start work again", "videoarchiver resume"),
    "web": (
        "serve the web page: live progress, queue, gallery, statistics",
        "videoarchiver web --listen 0.0.0.0:8080",
    ),
}
AWAY = {  # why a raw file cannot give its outputs again
    Content.OTHER: "is no longer in raw/ as it was",
    Content.UNREADABLE: "cannot be read",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videoarchiver",
        description="Turn raw videos into verified archive MKVs, AV1 previews and montages.",
        epilog="Exit codes: 0 ok, 1 something failed, 2 could not start.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, help="root folder (default: current directory)")
    common.add_argument("--config", type=Path, help="config file (TOML)")
    commands = parser.add_subparsers(dest="command", required=True)
    parsers = {
        name: commands.add_parser(
            name,
            parents=[common],
            help=what,
            description=f"{what[0].upper()}{what[1:]}.",
            epilog=f"example: {example}",
        )
        for name, (what, example) in COMMANDS.items()
    }
    parsers["run"].add_argument(
        "--once", action="store_true", help="process what is settled now, then exit"
    )
    parsers["status"].add_argument(
        "--json", action="store_true", help="print JSON instead of a table"
    )
    parsers["status"].add_argument(
        "--all",
        action="store_true",
        help=f"list every file, not only those not done and the last {RECENT} done",
    )
    parsers["retry"].add_argument(
        "paths", nargs="*", type=Path, help="raw files (as in status, or paths)"
    )
    parsers["pause"].add_argument(
        "--now",
        action="store_true",
        help="also stop what runs (it goes on from its salvaged parts after resume)",
    )
    parsers["web"].add_argument(
        "--listen", help="HOST:PORT (default: web.listen, 127.0.0.1:8080; others need a token)"
    )
    parsers["retry"].add_argument(
        "--missing",
        action="store_true",
        help="make published outputs that are gone again, from their raw files",
    )
    return parser


def _resolve(args: argparse.Namespace) -> tuple[Layout, Config, Path | None]:
    start = args.root or Path.cwd()
    path = find_config_file(args.config, start)
    config = load_config(path)
    root = args.root or config.root or start
    if not root.is_dir():  # a typo is not a new archive: only what is inside is created
        raise ConfigError(f"root {root}: no such folder")
    return Layout(root.absolute(), config.state), config, path


def command_run(layout: Layout, config: Config, once: bool, console: Console) -> int:
    # Imported here: the daemon's modules (watchfiles, the pipelines) would slow `status`.
    from videoarchiver.daemon import run_daemon
    from videoarchiver.display import RichDisplay
    from videoarchiver.progress import ProgressHub

    layout.create()
    hub = ProgressHub()
    if console.is_terminal:
        with RichDisplay(console, hub) as display:
            configure_logging(layout.log, display.progress.console)
            return anyio.run(run_daemon, layout, config, once, hub)
    configure_logging(layout.log, None)
    return anyio.run(run_daemon, layout, config, once, hub)


async def _status(layout: Layout, console: Console, as_json: bool, everything: bool) -> None:
    async with open_store(layout.root, layout.state, CLI_PATIENCE) as state:
        if not as_json and (since := await state.control(PAUSED)) is not None:
            since = since.removeprefix(NOW)
            console.print(f"paused since {since}: `videoarchiver resume` to go on", highlight=False)
        if as_json:
            everything_now = Listing(
                await state.files(), await state.all_outputs(), await state.summary(),
                await state.progress(), await state.all_jobs(),
            )  # fmt: skip
            print_json(everything_now)
            return
        summary = await state.summary()
        files = await state.files() if everything else await state.attention_and_recent(RECENT)
        ids = [row.id for row in files]
        listing = Listing(
            files, await state.all_outputs(ids), summary, await state.progress(),
            await state.all_jobs(ids),
        )  # fmt: skip
        print_status(console, listing)


def _rel_keys(layout: Layout, path: Path) -> list[str]:
    """How the state may record a path given as `status` shows it or as a path to a file in
    raw/ (a name that is not UTF-8 is shown with `\\xNN` escapes, recorded with `/` first)."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return [rel_key(absolute.resolve().relative_to(layout.raw.resolve()).as_posix())]
    except ValueError:
        return [rel_key(path.as_posix()), "/" + path.as_posix()]


async def _retry(layout: Layout, paths: list[Path], console: Console) -> int:
    async with open_store(layout.root, layout.state, CLI_PATIENCE) as state:
        wanted = [key for path in paths for key in _rel_keys(layout, path)] if paths else None
        retried = await state.retry(wanted)
    for rel in retried:
        console.print(f"pending again: {shown_name(rel)}")
    if not retried:
        console.print("no failed file matched" if paths else "no failed files")
    return EXIT_OK if retried or not paths else EXIT_FAILED


async def _verify(layout: Layout, console: Console) -> int:
    async with open_store(layout.root, layout.state, CLI_PATIENCE) as state:
        files = {row.id: row for row in await state.files()}
        outputs = await recorded_outputs(state, layout)
    problems, checked = 0, Counter[str]()
    for output in outputs:
        found = await problem(output)
        if output.done or found is not None:
            checked[output.kind] += 1
        if found is not None:
            name = shown_name(files[output.file_id].rel_path)
            console.print(f"[red]{found}[/red] {output.kind} {output.path} (from {name})"
                          f"{WHY.get(found, '')}")  # fmt: skip
            problems += 1
    counted = ", ".join(plural(checked[kind.name], kind.label) for kind in kinds())
    console.print(f"{counted} checked, {plural(problems, 'problem')}")
    if problems:
        console.print("`videoarchiver retry --missing` makes missing outputs again.")
    return EXIT_FAILED if problems else EXIT_OK


async def _retry_missing(layout: Layout, console: Console) -> int:
    """Published outputs that are gone are made again from their raw file, if it is there."""
    async with open_store(layout.root, layout.state, CLI_PATIENCE) as state:
        files = {row.id: row for row in await state.files()}
        gone = [o for o in await published_outputs(state, layout) if await problem(o) == "missing"]
        reopened = 0
        for file_id in sorted({output.file_id for output in gone}):
            row = files[file_id]
            mine = [output for output in gone if output.file_id == file_id]
            raw = layout.raw / rel_from_key(row.rel_path)
            why = None
            if row.state is not FileState.DONE:
                why = f"{shown_name(row.rel_path)} is {row.state}"
            elif (found := await check_content(raw, row.size, row.fingerprint)) in AWAY:
                why = f"{shown_name(row.rel_path)} {AWAY[found]}"
            if why is not None:
                for output in mine:
                    console.print(f"cannot make {output.path} again: {why}")
                continue
            await state.reopen(file_id, [(output.kind, output.stream) for output in mine])
            for output in mine:
                console.print(f"to be made again: {output.path}")
            reopened += len(mine)
    if not gone:
        console.print("no published output is missing")
    return EXIT_OK if reopened == len(gone) else EXIT_FAILED


async def _pause(layout: Layout, how: str | None, console: Console) -> int:
    """Pause (`how`: "" to let running work finish, NOW to stop it) or resume (None)."""
    async with open_store(layout.root, layout.state, CLI_PATIENCE) as state:
        was = await state.control(PAUSED)
        value = None if how is None else pause_value(how)
        await state.set_control(PAUSED, value)
        since = (value or "").removeprefix(NOW)
    if how is None:
        console.print("resumed" if was else "was not paused")
    else:
        running = "running work stops now" if how else "running ffmpeg processes finish"
        console.print(f"paused since {since}: {running}; no new one starts until"
                      " `videoarchiver resume` (a restart stays paused)")  # fmt: skip
    return EXIT_OK


def config_toml(config: Config, path: Path | None) -> str:
    """The configuration in effect as a TOML file one could use: each value with where it
    came from as a comment, as `shown_settings` shows them."""
    lines = [f"# videoarchiver configuration in effect; config file: {path or '(none)'}"]
    section = ""
    for key, value, source in shown_settings(config, path):
        table, _, name = key.rpartition(".")
        if table != section:
            lines += ["", f"[{table}]"]
            section = table
        if value is None:
            lines.append(f"# {name} is not set ({source})")
            continue
        # JSON's strings, numbers, booleans and lists of them are TOML's too.
        lines.append(f"{name} = {json.dumps(value, ensure_ascii=False)}  # {source}")
    return "\n".join(lines) + "\n"


def command_config(config: Config, path: Path | None, console: Console) -> int:
    """Print the effective settings; then refuse, as `run` would, encoders ffmpeg lacks."""
    from videoarchiver.tools import check_tools

    console.file.write(config_toml(config, path))
    anyio.run(check_tools, config)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = console or Console(stderr=args.command == "run")
    try:
        layout, config, path = _resolve(args)
        for name in unknown_variables():
            print(
                f"videoarchiver: warning: {name} is not a setting; it is ignored", file=sys.stderr
            )
        if args.command == "run":
            return command_run(layout, config, args.once, console)
        if args.command == "config":
            return command_config(config, path, console)
        if layout.state is None and not layout.state_db.exists():
            print(
                f"videoarchiver: no state in {layout.root} (no {layout.state_db}):"
                " run `videoarchiver run` there first, or give --root",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if args.command == "status":
            anyio.run(_status, layout, console, args.json, args.all)
            return EXIT_OK
        if args.command == "pause":
            return anyio.run(_pause, layout, NOW if args.now else "", console)
        if args.command == "resume":
            return anyio.run(_pause, layout, None, console)
        if args.command == "retry" and args.missing:
            return anyio.run(_retry_missing, layout, console)
        if args.command == "retry":
            return anyio.run(_retry, layout, args.paths, console)
        if args.command == "web":
            from videoarchiver.web.server import serve  # the web stack: only for `web`

            return anyio.run(serve, layout, config, path, args.listen or config.web.listen, console)
        return anyio.run(_verify, layout, console)
    except BaseException as exc:
        # A stop with a reason (damaged state, unusable folder) is a message, not a traceback.
        reason = first_of(exc, (VideoArchiverError, OSError))
        if reason is None:
            raise
        print(f"videoarchiver: {describe_error(reason)}", file=sys.stderr)
        return EXIT_USAGE
