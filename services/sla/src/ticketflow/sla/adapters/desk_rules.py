"""The desk configuration as the SLA domain sees it: `DeskRules` implements the domain's `Rules` port
(`domain.policies`) over `ticketflow.deskconfig`'s registry, with policies and calendars cached.

A calendar is built from its *version*: a definition (desk time zone, calendar config and, for a
calendar that follows a country's holidays, the dates of `PINNED_HOLIDAY_YEARS`) and its hash. Every
version seen stays available (`calendar_of_version`), so time used before a configuration change is
counted in the calendar it was used in; the service stores the definitions (`calendar_versions`).
No I/O: the registry is loaded by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import time
from collections.abc import Mapping

import msgspec

from ticketflow.calendar import BusinessCalendar, CalendarError, HolidayDates, holiday_dates
from ticketflow.deskconfig import DeskRegistry
from ticketflow.deskconfig.model import CalendarConfig
from ticketflow.sla.domain.policies import Calendar, Policy, RulesError

# The years whose public holidays and moved working days a calendar version records (the rest ask
# the `holidays` library): an upgrade of the library that changes a date in them gives the calendar
# a new version, so clocks are recalculated by the policy's rule and a replay still finds the old dates.
PINNED_HOLIDAY_YEARS = (2020, 2040)


class PinnedHolidays(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`HolidayDates` as stored in a calendar definition (sorted, so equal dates give equal bytes)."""

    first_year: int
    last_year: int
    public: tuple[datetime.date, ...]
    moved_working: tuple[datetime.date, ...]

    @classmethod
    def of(cls, dates: HolidayDates) -> PinnedHolidays:
        return cls(dates.first_year, dates.last_year, tuple(sorted(dates.public)), tuple(sorted(dates.moved_working)))

    def dates(self) -> HolidayDates:
        return HolidayDates(self.first_year, self.last_year, frozenset(self.public), frozenset(self.moved_working))


def version_of(name: str, definition: bytes) -> str:
    """A calendar version: its name and a hash of its definition (desk time zone + calendar config)."""
    return f"{name}@{hashlib.sha1(definition).hexdigest()[:12]}"


def definition_of(timezone: str, config: CalendarConfig) -> bytes:
    """The JSON a calendar version hashes: [time zone, config] plus, for a calendar that follows a
    country's holidays, the dates of `PINNED_HOLIDAY_YEARS` (raises CalendarError for an unknown country)."""
    if config.holiday_country is None:
        return msgspec.json.encode([timezone, config])
    first, last = PINNED_HOLIDAY_YEARS
    dates = holiday_dates(config.holiday_country, config.holiday_subdivision, first, last)
    return msgspec.json.encode([timezone, config, PinnedHolidays.of(dates)])


def calendar_of_definition(definition: bytes) -> BusinessCalendar:
    """Build a calendar from the JSON its version hash is computed from (raises ValueError). A
    definition stored before holiday dates were pinned ([time zone, config]) asks the library."""
    parts = msgspec.json.decode(definition, type=list[msgspec.Raw])
    if len(parts) not in (2, 3):
        raise ValueError(f"a calendar definition has 2 or 3 parts, not {len(parts)}")
    timezone = msgspec.json.decode(parts[0], type=str)
    spec = msgspec.json.decode(parts[1], type=CalendarConfig).to_spec(timezone)
    if len(parts) == 3:
        pinned = msgspec.json.decode(parts[2], type=PinnedHolidays)
        spec = dataclasses.replace(spec, pinned_holidays=pinned.dates())
    return BusinessCalendar(spec)


class DeskRules:
    """`Rules` over the desk registry, with per-(desk, track, priority) policies cached.

    Every calendar version it has seen stays available by version (`calendar_of_version`): the
    definitions of the current configuration, those of a configuration replaced by `reload`, and
    those given by `remember` (the service loads them from PostgreSQL, `calendar_versions`)."""

    def __init__(self, registry: DeskRegistry, definitions: Mapping[str, bytes] | None = None) -> None:
        self.registry = registry
        self._policies: dict[tuple[str, str, str], Policy | None] = {}
        self._calendars: dict[tuple[str, str], Calendar] = {}
        self._queues: dict[tuple[str, str], str | None] = {}
        self._versions: dict[tuple[str, str], str] = {}
        self._definitions: dict[str, bytes] = {}  # version -> definition, kept across reloads
        self._by_version: dict[str, Calendar] = {}  # built calendars, kept across reloads
        self._fingerprint: str | None = None
        self.remember(definitions or {})

    def reload(self, registry: DeskRegistry) -> None:
        """A new desk configuration: current lookups start again, calendars by version stay."""
        self.registry = registry
        self._fingerprint = None
        self._policies.clear()
        self._calendars.clear()
        self._queues.clear()
        self._versions.clear()

    def remember(self, definitions: Mapping[str, bytes]) -> None:
        """Stored calendar definitions; one whose hash does not match its version is ignored."""
        for version, definition in definitions.items():
            name = version.rpartition("@")[0]
            if version_of(name, definition) == version:
                self._definitions.setdefault(version, definition)

    def definitions(self) -> dict[str, bytes]:
        """Every calendar version known (those of every track of the current configuration included),
        with its definition: what the service persists."""
        for desk_id, track_id in self._tracks():
            try:
                self.calendar_version(desk_id, track_id)
            except RulesError:
                continue
        return dict(self._definitions)

    def _tracks(self) -> list[tuple[str, str]]:
        return [(desk.id, track.id) for desk in self.registry.desks.values() for track in desk.tracks]

    def has_sla(self, desk_id: str, track_id: str) -> bool:
        try:
            return self.registry.track(desk_id, track_id).sla
        except KeyError as error:
            raise RulesError(f"unknown desk or track {desk_id!r}/{track_id!r}: {error}") from None

    def policy(self, desk_id: str, track_id: str, priority: str) -> Policy | None:
        key = (desk_id, track_id, priority)
        if key not in self._policies:
            self._policies[key] = self._resolve(desk_id, track_id, priority)
        return self._policies[key]

    def calendar(self, desk_id: str, track_id: str) -> Calendar:
        """The track's calendar, built from its version's definition: the dates it answers with are
        those its version names (pinned holidays included), not whatever the library says today."""
        cached = self._calendars.get((desk_id, track_id))
        if cached is None:
            version = self.calendar_version(desk_id, track_id)
            if version not in self._definitions:
                raise RulesError(f"desk {desk_id!r} has no calendar for track {track_id!r}")
            try:
                cached = self._built(version, self._definitions[version])
            except ValueError as error:  # CalendarError is a ValueError
                raise RulesError(f"no usable calendar for {desk_id!r}/{track_id!r}: {error}") from None
            self._calendars[(desk_id, track_id)] = cached
        return cached

    def warm_calendars(self, at: int | None = None) -> None:
        """Build every usable track calendar and expand the year around `at` (default now), so the
        first event after start-up does not pay for it."""
        instant = int(time.time()) if at is None else at
        for desk_id, track_id in self._tracks():
            try:
                self.calendar(desk_id, track_id).is_open_ts(instant)
            except RulesError:
                continue

    def fingerprint(self) -> str:
        """The desks' configuration and every track's calendar version (which names its holiday dates)."""
        if self._fingerprint is None:
            versions = []
            for desk_id, track_id in self._tracks():
                try:
                    versions.append(self.calendar_version(desk_id, track_id))
                except RulesError:
                    versions.append("")
            text = msgspec.json.encode([self.registry.desks, sorted(versions)], order="sorted")
            self._fingerprint = hashlib.sha1(text).hexdigest()
        return self._fingerprint

    def calendar_of_version(self, version: str) -> Calendar | None:
        definition = self._definitions.get(version)
        if definition is None:
            definition = self.definitions().get(version)  # a current one not looked up yet
        if definition is None:
            return None
        try:
            return self._built(version, definition)
        except ValueError:  # a stored definition this code cannot read (or without working time)
            return None

    def _built(self, version: str, definition: bytes) -> Calendar:
        """The calendar of a version, built once (raises ValueError for an unusable definition)."""
        built = self._by_version.get(version)
        if built is None:
            built = self._by_version[version] = calendar_of_definition(definition)
        return built

    def queue_track(self, desk_id: str, queue_id: str) -> str | None:
        key = (desk_id, queue_id)
        if key not in self._queues:
            try:
                queues = self.registry.desk(desk_id).queues
            except KeyError:
                return None
            self._queues[key] = next((q.track for q in queues if q.id == queue_id), None)
        return self._queues[key]

    def calendar_version(self, desk_id: str, track_id: str) -> str:
        key = (desk_id, track_id)
        version = self._versions.get(key)
        if version is None:
            try:
                desk = self.registry.desk(desk_id)
                name = self.registry.track(desk_id, track_id).calendar
            except KeyError as error:
                raise RulesError(f"unknown desk or track {desk_id!r}/{track_id!r}: {error}") from None
            config = next((c for c in desk.calendars if c.id == name), None)
            if config is None:
                text = msgspec.json.encode([desk.timezone, config])  # names no calendar: no definition
            else:
                try:
                    text = definition_of(desk.timezone, config)
                except CalendarError as error:
                    raise RulesError(f"no usable calendar for {desk_id!r}/{track_id!r}: {error}") from None
                self._definitions.setdefault(version_of(name, text), text)
            version = self._versions[key] = version_of(name, text)
        return version

    def _resolve(self, desk_id: str, track_id: str, priority: str) -> Policy | None:
        if not self.has_sla(desk_id, track_id):
            return None
        config = self.registry.sla_policy(desk_id, track_id, priority)  # type: ignore[arg-type]
        if config is None:
            return None

        def seconds(minutes: int | None) -> int | None:
            return None if minutes is None else minutes * 60

        escalation = () if config.escalation_queue is None else (f"queue:{config.escalation_queue}",)
        return Policy(
            policy_id=f"{desk_id}/{track_id}/{priority}",
            first_response=seconds(config.first_response_minutes),
            next_response=seconds(config.next_response_minutes),
            resolution=seconds(config.resolution_minutes),
            warnings=tuple(config.warnings),
            recalculation=config.recalculation,
            notify=tuple(config.notify),
            escalate_to=escalation,
        )
