from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from fakes.bitrix24 import FakeBitrix24


@pytest_asyncio.fixture(loop_scope="session")
async def fake() -> AsyncIterator[FakeBitrix24]:
    async with FakeBitrix24().running() as platform:
        yield platform
