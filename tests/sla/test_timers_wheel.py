"""The timing wheel against a plain reference model (a dict scanned in order), under hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from ticketflow.sla.timers import TimerWheel

EPOCH_MS = 1_700_000_000_000  # realistic epoch-ms magnitudes exercise the upper tiers
DAY_MS = 86_400_000

# Deadlines relative to "now": in the past, near (tier 0/1), days away, and years away (top tiers).
offsets = st.one_of(
    st.integers(-5_000, 0),
    st.integers(0, 300),
    st.integers(0, 10 * DAY_MS),
    st.integers(0, 20 * 365 * DAY_MS),
)
advances = st.one_of(st.integers(0, 70), st.integers(0, 5_000), st.integers(0, 3 * DAY_MS))


class WheelMachine(RuleBasedStateMachine):
    """Reference: live timers as {handle: (key, due, kind, level)}; due when ceil(due/tick)*tick <= now."""

    handles = Bundle("handles")

    @initialize(
        tick_ms=st.sampled_from([1, 1, 7, 1000]),
        capacity=st.integers(1, 40),
        compact_slack=st.sampled_from([0, 3, 1 << 16]),
    )
    def start(self, tick_ms: int, capacity: int, compact_slack: int) -> None:
        self.tick_ms = tick_ms
        self.compact_slack = compact_slack
        self.now = EPOCH_MS
        self.wheel = TimerWheel(capacity, tick_ms=tick_ms, now_ms=self.now)
        self.wheel.compact_slack = compact_slack
        self.live: dict[int, tuple[int, int, int, int]] = {}
        self.next_key = 0

    def _is_due(self, due_ms: int) -> bool:
        return -(-due_ms // self.tick_ms) * self.tick_ms <= self.now

    def _key(self) -> int:
        self.next_key += 1
        return self.next_key

    @rule(target=handles, offset=offsets, kind=st.integers(-128, 127), level=st.integers(0, 3))
    def schedule(self, offset: int, kind: int, level: int) -> int:
        return self._add(offset, kind, level)

    def _add(self, offset: int, kind: int, level: int) -> int:
        key, due = self._key(), self.now + offset
        handle = self.wheel.schedule(key, due, kind, level)
        assert handle not in self.live
        self.live[handle] = (key, due, kind, level)
        return handle

    @rule(target=handles, batch=st.lists(offsets, max_size=40))
    def schedule_many(self, batch: list[int]) -> object:
        keys = np.array([self._key() for _ in batch], np.int64)
        dues = np.array([self.now + offset for offset in batch], np.int64)
        kinds = np.arange(len(batch), dtype=np.int8)
        handles = self.wheel.schedule_many(keys, dues, kinds=kinds)
        assert len(set(handles.tolist())) == len(batch)
        rows = zip(handles.tolist(), keys.tolist(), dues.tolist(), kinds.tolist(), strict=True)
        for handle, key, due, kind in rows:
            assert handle not in self.live
            self.live[handle] = (key, due, kind, 0)
        return multiple(*handles.tolist())

    @rule(handle=handles)
    def cancel(self, handle: int) -> None:
        assert self.wheel.cancel(handle) == (self.live.pop(handle, None) is not None)

    @rule(handle=st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**40)))
    def cancel_unknown(self, handle: int) -> None:
        assert self.wheel.cancel(handle) == (self.live.pop(handle, None) is not None)

    @rule(picked=st.lists(handles, max_size=20), unknown=st.lists(st.integers(0, 2**40), max_size=3))
    def cancel_many(self, picked: list[int], unknown: list[int]) -> None:
        batch = picked + picked[:3] + unknown  # duplicates within a batch count once
        expected = []
        for handle in batch:
            expected.append(self.live.pop(handle, None) is not None)
        cancelled = self.wheel.cancel_many(np.array(batch, np.int64))
        assert cancelled.tolist() == expected

    @rule(target=handles, handle=consumes(handles), offset=offsets)
    def reschedule(self, handle: int, offset: int) -> int:
        if handle not in self.live:
            assert not self.wheel.cancel(handle)
            return self._add(offset, 0, 0)
        key, _, kind, level = self.live.pop(handle)
        new = self.wheel.reschedule(handle, self.now + offset)
        self.live[new] = (key, self.now + offset, kind, level)
        return new

    @rule(delta=advances)
    def pop_due(self, delta: int) -> None:
        self.now += delta
        fired = self.wheel.pop_due_batch(self.now)
        columns = (fired.keys, fired.due_ms, fired.kinds, fired.levels)
        got = sorted(zip(*(column.tolist() for column in columns), strict=True))
        expected = sorted((k, d, kd, lv) for k, d, kd, lv in self.live.values() if self._is_due(d))
        assert got == expected
        self.live = {h: t for h, t in self.live.items() if not self._is_due(t[1])}

    @rule(back=st.integers(1, 10_000))
    def clock_steps_back(self, back: int) -> None:
        """Wheel time never goes back: an earlier now fires only what the latest now made due."""
        fired = self.wheel.pop_due(self.now - back)
        assert sorted(fired.tolist()) == sorted(k for k, d, _, _ in self.live.values() if self._is_due(d))
        self.live = {h: t for h, t in self.live.items() if not self._is_due(t[1])}

    @rule()
    def next_due(self) -> None:
        ticks = [-(-d // self.tick_ms) * self.tick_ms for _, d, _, _ in self.live.values()]
        # next_due_ms is exact, but never earlier than wheel time for overdue timers' buckets
        expected = max(min(ticks), self.now // self.tick_ms * self.tick_ms) if ticks else None
        assert self.wheel.next_due_ms() == expected

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.wheel) == len(self.live)


WheelMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWheelAgainstReference = WheelMachine.TestCase
