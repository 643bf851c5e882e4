"""The configuration: TOML file, then `VIDEOARCHIVER_*` environment overrides.

Unknown keys are errors that name the key, because a misspelt key silently ignored is a
setting the user believes in and does not have.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from videoarchiver.errors import ConfigError
from videoarchiver.planning.hours import parse_window
from videoarchiver.state.lock_wait import SAY_AFTER_SECONDS

CONFIG_ENV = "VIDEOARCHIVER_CONFIG"
CONFIG_NAME = "videoarchiver.toml"


def _words(value: object) -> object:
    """A list given as text (an environment variable): a JSON list, or words split as a
    shell splits them (`-crf 20`, `'ntfy://my topic' mailto://me@example.com`)."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list: {exc}") from exc
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"not a list of words: {exc}") from exc


# A list of strings: in TOML a list; in the environment a JSON list or shell-quoted words.
Words = Annotated[list[str], NoDecode, BeforeValidator(_words)]


def _window(window: str) -> str:
    try:
        parse_window(window)
    except ValueError as exc:
        raise ValueError(f"not two times of day HH:MM-HH:MM ({exc})") from exc
    return window


def _apprise_urls(urls: list[str]) -> list[str]:
    if urls:
        import apprise  # only for a root that notifies: its import costs a tenth of a second

        unusable = [url for url in urls if not apprise.Apprise().add(url)]
        if unusable:
            raise ValueError(f"not an Apprise URL Apprise can use: {', '.join(unusable)}")
    return urls


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveConfig(_Section):
    video_codec: str = "libx264"
    video_args: Words = Field(default_factory=lambda: ["-crf", "18", "-preset", "veryslow"])
    audio_codec: str = "libopus"
    audio_args: Words = Field(default_factory=lambda: ["-b:a", "128000"])
    ratio: float = Field(default=0.9, gt=0)
    grace_seconds: float = Field(default=10, ge=0)
    # `after_done` lets a raw file go only when every re-encoded video stream's mean SSIM
    # against it (sampled frames, `planning.quality`) is at least this. The shipped settings
    # gave 0.94 and more on every kind of footage tried, crf 51 0.82-0.87 on camera-like,
    # HDR and DV footage, a comparison one frame off 0.66-0.76 (bench/results.md).
    min_ssim: float = Field(default=0.90, ge=0, le=1)


class PreviewConfig(_Section):
    video_codec: str = "libsvtav1"
    video_args: Words = Field(default_factory=lambda: ["-crf", "63", "-preset", "8"])
    max_side: int = Field(default=1000, ge=2)
    audio_codec: str = "libopus"
    audio_args: Words = Field(default_factory=lambda: ["-b:a", "10000"])


class MontageConfig(_Section):
    min_n: int = Field(default=1, ge=1)
    max_n: int = Field(default=10, ge=1)
    max_tile_width: int = Field(default=0, ge=0)


LISTEN_PATTERN = r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})"


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8080` for IPv6) → (host, port); ValueError otherwise."""
    match = re.fullmatch(LISTEN_PATTERN, listen)
    if not match or not 0 < int(match[2]) < 65536:
        raise ValueError("give HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8080")
    return match[1].strip("[]"), int(match[2])


def _listen(listen: str) -> str:
    split_listen(listen)
    return listen


class WebConfig(_Section):
    # Where `videoarchiver web` listens; any address but loopback needs the token.
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    # Unset: a new one at each start. URL-safe: the address printed at start carries it.
    token: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{16,}$")


class Config(BaseSettings):
    """Every setting with the seed's value as its default."""

    model_config = SettingsConfigDict(
        env_prefix="VIDEOARCHIVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    root: Path | None = None
    # The state's database: unset, SQLite in work/; `postgresql://user@host/db` for several
    # machines sharing one root folder.
    state: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    jobs: int = Field(default=0, ge=0)
    settle_seconds: float = Field(default=30, ge=0)
    scan_interval: float = Field(default=60, gt=0)
    after_done: Literal["keep", "move", "delete"] = "keep"
    stall_seconds: float = Field(default=300, gt=0)
    lease_seconds: float = Field(default=60, ge=2)
    # A write that finds the SQLite state locked by another process waits as long as it
    # takes; a wait this long is logged, naming the holder (then at doubling intervals).
    lock_warning_seconds: float = Field(default=SAY_AFTER_SECONDS, gt=0)
    notify: Annotated[Words, AfterValidator(_apprise_urls)] = Field(default_factory=list)
    active_hours: Annotated[str, AfterValidator(_window)] | None = Field(
        default=None, pattern=r"^\d\d:\d\d-\d\d:\d\d$"
    )
    # No new work starts while a disk the root writes to has less free (at most 5 % of it).
    min_free_space: ByteSize = Field(default=ByteSize(2 << 30), ge=0)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    preview: PreviewConfig = Field(default_factory=PreviewConfig)
    montage: MontageConfig = Field(default_factory=MontageConfig)
    web: WebConfig = Field(default_factory=WebConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init values; the environment must win over it.
        return env_settings, init_settings

    @property
    def effective_jobs(self) -> int:
        return self.jobs or os.cpu_count() or 1


def find_config_file(explicit: Path | None, root: Path) -> Path | None:
    """`--config`, then `$VIDEOARCHIVER_CONFIG`, then `<root>/videoarchiver.toml` if present."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    candidate = root / CONFIG_NAME
    return candidate if candidate.is_file() else None


def env_variable(key: str) -> str:
    """The environment variable that sets a dotted key: `archive.ratio` →
    `VIDEOARCHIVER_ARCHIVE__RATIO`."""
    return "VIDEOARCHIVER_" + key.upper().replace(".", "__")


def _set_in_environment(key: str) -> bool:
    return env_variable(key) in {name.upper() for name in os.environ}


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    where = f"environment variable {env_variable(key)}" if _set_in_environment(key) else key
    return f"{where}: {error['msg']} (got {error['input']!r})"


def load_config(path: Path | None) -> Config:
    """Read and validate the TOML file (if any) with environment overrides applied."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                values = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason} at byte"
                              f" {exc.start}") from exc  # fmt: skip
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        return Config(**values)
    except SettingsError as exc:  # a variable of a section that is not JSON
        field = str(exc).split('"')[1] if '"' in str(exc) else ""
        raise ConfigError(
            f"environment variable {env_variable(field)}: not a JSON object; set its keys"
            f" one by one ({env_variable(field)}__KEY)"
        ) from exc
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        if problems.startswith("environment variable"):
            raise ConfigError(problems) from exc
        raise ConfigError(
            f"{f'config file {path}' if path else 'configuration'}: {problems}"
        ) from exc


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


KNOWN_VARIABLES = frozenset({CONFIG_ENV, "VIDEOARCHIVER_TRACE"})


def unknown_variables() -> list[str]:
    """`VIDEOARCHIVER_*` variables that set nothing (a typo is a setting the user believes in
    and does not have)."""
    keys = _flatten(Config.model_construct().model_dump())  # no validation: env may be wrong
    known = KNOWN_VARIABLES | {env_variable(key) for key in keys}
    return sorted(name for name in os.environ if name.upper().startswith("VIDEOARCHIVER_")
                  and name.upper() not in known)  # fmt: skip


def config_sources(config: Config, path: Path | None) -> list[tuple[str, Any, str]]:
    """(dotted key, effective value, where it came from) for every setting."""
    in_file: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as handle:
            in_file = _flatten(tomllib.load(handle))
    rows = []
    for key, value in _flatten(config.model_dump(mode="json")).items():
        if _set_in_environment(key):
            source = f"environment {env_variable(key)}"
        elif key in in_file:
            source = f"file {path}"
        else:
            source = "default"
        rows.append((key, value, source))
    return rows


def without_password(url: str) -> str:
    """A database URL as it may be printed: its password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def private_notify_url(url: str) -> str:
    """An Apprise URL as it may be printed: Apprise's own privacy form (passwords and
    tokens cut to `****` or to their first and last letters), without its query (Apprise
    adds its defaults there; a token may be given there)."""
    import apprise  # as `_apprise_urls`: only for a root that notifies

    targets = apprise.Apprise()
    shown = targets.urls(privacy=True) if targets.add(url) else []
    return (shown[0] if shown else f"{urlsplit(url).scheme}://***").partition("?")[0]


def shown_settings(config: Config, path: Path | None) -> list[tuple[str, Any, str]]:
    """`config_sources` as it may be shown (`videoarchiver config`, the web page): `jobs`
    0 as the number it comes to, and no secret (the state's password, the notify URLs'
    passwords and tokens, the web token)."""
    rows = []
    for key, value, source in config_sources(config, path):
        if key == "jobs" and value == 0:
            value, source = config.effective_jobs, f"{source}: 0 = one per CPU"
        elif key == "state" and value is not None and (hidden := without_password(value)) != value:
            value, source = hidden, f"{source}; password not shown"
        elif key == "notify" and value:
            value = [private_notify_url(url) for url in value]
            source = f"{source}; secrets not shown"
        elif key == "web.token" and value is not None:
            value, source = "***", f"{source}; not shown"
        rows.append((key, value, source))
    return rows
