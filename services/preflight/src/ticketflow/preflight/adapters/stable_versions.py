"""The stable-versions feed of the updates check: the latest stable version of each Bitrix24 module.

Where it comes from, per desk: `TICKETFLOW_PREFLIGHT_STABLE_VERSIONS` (a file), else the desk's
`[preflight] stable_versions_feed`: a local file (read at start-up: a broken one stops it) or an https URL.

The format we support, in a file or at a URL, is JSON (a file may also be TOML): one object mapping a
module id to its version, `{"main": "25.100.300", "im": "25.0.100", ...}` (or the same object under a
`"modules"` key). A URL is fetched with the checks' SSRF-guarded client (`guarded_get`: public addresses
and the desk's ports only, certificate verified, redirects re-checked, body capped) when the updates check
first needs it and then every `ttl_s`; a failed fetch keeps the last good copy (the evidence says how old
it is) and is tried again after `retry_s`. With no copy at all the updates check is NOT_CHECKED with the
reason. 1C-Bitrix publishes no such feed: its download page (the packaged desk's URL) is HTML, which is
reported as `feed_unreadable`; docs/preflight.md says what a real source needs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ticketflow.deskconfig import Desk
from ticketflow.preflight.adapters.checks import ChecksConfig, ConfigError, Resolver
from ticketflow.preflight.adapters.checks.guarded_http import FetchFailure, FetchTrace, guarded_get
from ticketflow.preflight.adapters.checks.portal_info import parse_version
from ticketflow.preflight.adapters.checks.runner import StableFeed

log = logging.getLogger(__name__)


def parse_feed(data: Any) -> dict[str, str]:
    """`{"main": "25.100.300", ...}` or `{"modules": {...}}`; ValueError says what is wrong."""
    if isinstance(data, dict) and isinstance(data.get("modules"), dict):
        data = data["modules"]
    if not isinstance(data, dict) or not data:
        raise ValueError('expected a non-empty object of module = "version" pairs')
    for module, version in data.items():
        if not isinstance(version, str):
            raise ValueError(f"{module}: the version must be a string")
        parse_version(version)  # raises ValueError naming it
    return {str(k): v for k, v in data.items()}


def read_stable_versions(path: Path) -> dict[str, str]:
    """A .json file, or `main = "25.100.300"` lines of TOML."""
    text = path.read_text(encoding="utf-8")
    try:
        return parse_feed(json.loads(text) if path.suffix == ".json" else tomllib.loads(text))
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


class StableVersionsFeed:
    def __init__(
        self,
        *,
        versions: Mapping[str, str] | None = None,
        url: str | None = None,
        config: ChecksConfig | None = None,
        resolver: Resolver | None = None,
        ttl_s: float = 21_600.0,
        retry_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._fixed = dict(versions or {})
        self._config = config or ChecksConfig()
        self._resolver = resolver
        self.ttl_s, self.retry_s = ttl_s, retry_s
        self._clock = clock
        self._good: dict[str, str] = {}
        self._good_at: float | None = None
        self._next_try = 0.0
        self._problem: tuple[str, str] | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def current(self) -> StableFeed:
        if self.url is None:
            return StableFeed(self._fixed)
        async with self._lock:  # one fetch at a time; the others wait for its copy
            now = self._clock()
            stale = self._good_at is None or now - self._good_at >= self.ttl_s
            if stale and now >= self._next_try:
                await self._fetch(now)
        if not self._good:
            return StableFeed({}, self._problem or ("feed_unavailable", "not fetched yet"))
        return StableFeed(self._good)

    async def _fetch(self, now: float) -> None:
        assert self.url is not None and self._resolver is not None
        self.fetches += 1
        try:
            async with asyncio.timeout(self._config.timeout_s):
                answer = await guarded_get(
                    self.url, resolver=self._resolver, config=self._config, trace=FetchTrace(), verify_tls=True
                )
            if answer.status != 200 or answer.truncated:
                raise FetchFailure("feed_unavailable", f"HTTP {answer.status}" + (" (too large)" * answer.truncated))
            try:
                versions = parse_feed(json.loads(answer.body))
            except (ValueError, UnicodeDecodeError) as exc:
                raise FetchFailure("feed_unreadable", f"{self.url}: {exc}"[:200]) from exc
        except (FetchFailure, TimeoutError) as exc:
            reason, detail = (
                (exc.reason, exc.detail) if isinstance(exc, FetchFailure) else ("feed_unavailable", "timeout")
            )
            kept = f"; the copy of {self._age(now)} is kept" if self._good else ""
            log.warning("preflight: stable-versions feed %s: %s: %s%s", self.url, reason, detail, kept)
            self._problem = (reason, detail)
            self._next_try = now + self.retry_s
            return
        self._good, self._good_at, self._problem = versions, now, None

    def _age(self, now: float) -> str:
        return f"{(now - self._good_at) / 60:.0f} min ago" if self._good_at is not None else "never"


def stable_versions_feed(
    desk: Desk, configured: Path | None, config: ChecksConfig, resolver: Resolver, *, ttl_s: float, retry_s: float
) -> StableVersionsFeed:
    """The configured file, else the desk's `stable_versions_feed` (a local file, or a URL fetched later)."""
    if configured is not None:
        return StableVersionsFeed(versions=read_stable_versions(configured))
    feed = desk.preflight.stable_versions_feed
    if feed and feed.startswith(("https://", "http://")):
        return StableVersionsFeed(url=feed, config=config, resolver=resolver, ttl_s=ttl_s, retry_s=retry_s)
    if feed:
        return StableVersionsFeed(versions=read_stable_versions(Path(feed)))
    return StableVersionsFeed()
