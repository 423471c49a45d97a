"""The SLA timer engine: a numpy-backed hierarchical timing wheel (`TimerWheel`, over `slots.TimerSlots`)
and its asyncio firing loop (`TimerLoop`). Benchmark-driven machinery (`make bench-sla`,
tests/load/sla/bench_sla_timers.py; docs/sla-timers.md): the engine (`app.SlaEngine`) only schedules,
cancels, and gets due batches back."""

from ticketflow.sla.timers.loop import Clock, SystemClock, TimerLoop, TimerSource
from ticketflow.sla.timers.wheel import FiredTimers, TimerWheel

__all__ = ["Clock", "FiredTimers", "SystemClock", "TimerLoop", "TimerSource", "TimerWheel"]
