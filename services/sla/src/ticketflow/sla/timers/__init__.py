"""SLA timer engine: a numpy-backed hierarchical timing wheel and its asyncio firing loop."""

from ticketflow.sla.timers.loop import Clock, ManualClock, SystemClock, TimerLoop, TimerSource
from ticketflow.sla.timers.wheel import FiredTimers, TimerWheel

__all__ = ["Clock", "FiredTimers", "ManualClock", "SystemClock", "TimerLoop", "TimerSource", "TimerWheel"]
