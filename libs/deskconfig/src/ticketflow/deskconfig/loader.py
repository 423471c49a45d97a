"""Read desk files, report every problem as file:line: field: message, and answer lookups."""

from __future__ import annotations

import os
import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ticketflow.calendar import BusinessCalendar
from ticketflow.deskconfig.locate import LineIndex, Problem, format_path, parse_path
from ticketflow.deskconfig.model import Desk, Platform, Priority, SlaPolicy, Track
from ticketflow.deskconfig.validate import validate_desk

CONFIG_DIR_ENV = "TICKETFLOW_DESK_CONFIG_DIR"
PACKAGED_DESKS = Path(__file__).with_name("desks")

_MSGSPEC_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `(?P<name>[^`]+)`")
_TOML_LINE = re.compile(r"at line (\d+)")


class DeskConfigError(ValueError):
    """Every problem found, each with file, line and field."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def parse_desk(source: str, file: str = "<desk>") -> Desk:
    """Decode and validate one desk file's text; raise DeskConfigError listing the problems."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_LINE.search(str(error))
        raise DeskConfigError([Problem(file, int(match[1]) if match else 1, "", f"TOML: {error}")]) from None
    index = LineIndex(source)
    try:
        desk = msgspec.convert(data, Desk)
    except msgspec.ValidationError as error:
        raise DeskConfigError([_decode_problem(str(error), index, file)]) from None
    findings = validate_desk(desk)
    if findings:
        raise DeskConfigError(
            Problem(file, index.line_of(path), format_path(path), message) for path, message in findings
        )
    return desk


def _decode_problem(text: str, index: LineIndex, file: str) -> Problem:
    match = _MSGSPEC_AT.match(text)
    message, raw_path = (match["message"], match["path"]) if match else (text, None)
    path = parse_path(raw_path or "$")
    named = _NAMED_FIELD.search(message)
    field_path = (*path, named["name"]) if named else path
    return Problem(file, index.line_of(field_path), format_path(field_path), message)


def load_desk_file(path: Path) -> Desk:
    return parse_desk(path.read_text(encoding="utf-8"), str(path))


def config_directory(directory: Path | None = None) -> Path:
    if directory is not None:
        return directory
    configured = os.environ.get(CONFIG_DIR_ENV)
    return Path(configured) if configured else PACKAGED_DESKS


def load_desks(directory: Path | None = None) -> DeskRegistry:
    """Every `*.toml` in the directory (argument, else $TICKETFLOW_DESK_CONFIG_DIR, else the packaged
    default desks), all validated; problems of all files are reported together."""
    folder = config_directory(directory)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise DeskConfigError([Problem(str(folder), 1, "", "no desk files (*.toml) found")])
    problems: list[Problem] = []
    desks: dict[str, tuple[Desk, Path]] = {}
    for file in files:
        try:
            desk = load_desk_file(file)
        except DeskConfigError as error:
            problems += error.problems
            continue
        if desk.id in desks:
            problems.append(Problem(str(file), 1, "id", f"desk id {desk.id!r} is also used by {desks[desk.id][1]}"))
            continue
        desks[desk.id] = (desk, file)
    registry = DeskRegistry({desk_id: desk for desk_id, (desk, _) in desks.items()})
    problems += registry.tenant_conflicts({desk_id: file for desk_id, (_, file) in desks.items()})
    if problems:
        raise DeskConfigError(problems)
    return registry


@dataclass(frozen=True, slots=True)
class TenantRoute:
    """Where a chat tenant's messages go: its desk, its default track, its contract tier."""

    desk: Desk
    track: Track
    contract_tier: str | None


def tenant_keys(desk: Desk) -> list[tuple[Platform, str, str | None, str]]:
    """(platform, tenant key, contract tier, default track) for every tenant of a desk.

    Keys: eXpress bot_id; Bitrix24 member_id and portal domain (lower case); generic tenant_id."""
    keys: list[tuple[Platform, str, str | None, str]] = []
    for bot in desk.platforms.express:
        keys.append(("express", str(bot.bot_id), bot.contract_tier, bot.default_track))
    for portal in desk.platforms.bitrix24:
        for key in (*portal.member_ids, *portal.portal_domains):
            keys.append(("bitrix24", key.lower(), portal.contract_tier, portal.default_track))
    for tenant in desk.platforms.generic:
        keys.append(("generic", tenant.tenant_id, tenant.contract_tier, tenant.default_track))
    return keys


@dataclass
class DeskRegistry:
    desks: Mapping[str, Desk]
    _routes: dict[tuple[str, str], TenantRoute] = field(default_factory=dict, init=False)
    _calendars: dict[tuple[str, str], BusinessCalendar] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for desk in self.desks.values():
            tracks = {track.id: track for track in desk.tracks}
            for platform, key, tier, track_id in tenant_keys(desk):
                self._routes.setdefault((platform, key), TenantRoute(desk, tracks[track_id], tier))

    def tenant_conflicts(self, files: Mapping[str, Path]) -> list[Problem]:
        owners: dict[tuple[str, str], str] = {}
        problems = []
        for desk_id, desk in self.desks.items():
            for platform, key, _, _ in tenant_keys(desk):
                other = owners.setdefault((platform, key), desk_id)
                if other != desk_id:
                    message = f"{platform} tenant {key!r} also belongs to desk {other!r}"
                    problems.append(Problem(str(files[desk_id]), 1, f"platforms.{platform}", message))
        return problems

    def desk(self, desk_id: str) -> Desk:
        return self.desks[desk_id]

    def route(self, platform: Platform, tenant: str) -> TenantRoute | None:
        """The desk and default track of a chat tenant (bot id, member_id/domain, tenant id)."""
        key = tenant.lower() if platform == "bitrix24" else tenant
        return self._routes.get((platform, key))

    def desk_for(self, platform: Platform, tenant: str) -> Desk | None:
        route = self.route(platform, tenant)
        return None if route is None else route.desk

    def track(self, desk_id: str, track_id: str) -> Track:
        for track in self.desk(desk_id).tracks:
            if track.id == track_id:
                return track
        raise KeyError(f"desk {desk_id!r} has no track {track_id!r}")

    def calendar(self, desk_id: str, track_id: str) -> BusinessCalendar:
        """The business calendar of a track, built once and shared (its expansion cache is warm)."""
        return self.calendar_by_id(desk_id, self.track(desk_id, track_id).calendar)

    def calendar_by_id(self, desk_id: str, calendar_id: str) -> BusinessCalendar:
        cached = self._calendars.get((desk_id, calendar_id))
        if cached is None:
            desk = self.desk(desk_id)
            config = next((c for c in desk.calendars if c.id == calendar_id), None)
            if config is None:
                raise KeyError(f"desk {desk_id!r} has no calendar {calendar_id!r}")
            cached = BusinessCalendar(config.to_spec(desk.timezone))
            self._calendars[(desk_id, calendar_id)] = cached
        return cached

    def warm_calendars(self, at: int | None = None) -> None:
        """Build every track's calendar and expand the year around `at` (default now), so the first
        event after start-up does not pay for loading holiday data (0.3-1 s)."""
        instant = int(time.time()) if at is None else at
        for desk in self.desks.values():
            for track in desk.tracks:
                self.calendar(desk.id, track.id).is_open_ts(instant)

    def sla_policy(self, desk_id: str, track_id: str, priority: Priority) -> SlaPolicy | None:
        """None for a track without SLA (e.g. eXpress client support)."""
        for policy in self.desk(desk_id).sla_policies:
            if policy.track == track_id and policy.priority == priority:
                return policy
        return None
