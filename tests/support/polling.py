"""Waiting for something asynchronous to become true (a record consumed, a row written)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import pytest


async def eventually(check: Callable[[], object], what: str, seconds: float = 30) -> None:
    """Poll `check` (sync or async) until it returns something true; fail naming `what` after `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not seen within {seconds}s: {what}")
