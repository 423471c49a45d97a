"""The query API (docs/queries.md), asked with the visitor's own token: the dashboard holds no grants of its
own, so it can never show a visitor more than their token reads."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

_decode = msgspec.json.decode


class QueryRefused(Exception):
    """The query API refused (`status`: 400, 401, 403, 404) or could not answer (503; 0: unreachable)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


class QueryApi:
    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None) -> None:
        self.client = client or httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(70, connect=3))

    async def get(self, token: str, path: str, **params: Any) -> dict[str, Any]:
        """The answer of GET /v1<path>; raises `QueryRefused`."""
        shown = {k: v for k, v in params.items() if v is not None}
        try:
            answer = await self.client.get(f"/v1{path}", params=shown, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            raise QueryRefused(0, f"the query API is unreachable: {type(error).__name__}") from None
        body: dict[str, Any] = _decode(answer.content) if answer.content else {}
        if answer.status_code != 200:
            raise QueryRefused(answer.status_code, str(body.get("error", answer.reason_phrase)))
        return body

    async def close(self) -> None:
        await self.client.aclose()
