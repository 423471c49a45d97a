"""The pages: sign in (the token goes into an HttpOnly, SameSite=Strict cookie), the lead's page, the ticket
page, the agent's actions (htmx form posts answered with a notice and the refreshed ticket) and the live
streams (server-sent events). Every refusal is a page or a notice that says why, with its HTTP status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ticketflow.dashboard.adapters.query_api import QueryRefused
from ticketflow.dashboard.app import DEFAULT_PERIOD, PERIODS, Dashboard, Outcome
from ticketflow.dashboard.domain import texts
from ticketflow.dashboard.domain.actions import ActionRefused
from ticketflow.dashboard.pages import Pages

TOKEN_COOKIE, LANG_COOKIE = "tf_token", "tf_lang"
YEAR = 365 * 24 * 3600


def routes(dashboard: Dashboard, pages: Pages, *, live_wait_ms: int, secure_cookie: bool) -> list[BaseRoute]:
    def lang_of(request: Request) -> str:
        return texts.language(
            request.query_params.get("lang") or request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
        )

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = lang_of(request)
        response = HTMLResponse(pages.render(template, lang, **context), status)
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=YEAR, samesite="strict", secure=secure_cookie)
        return response

    def sign_in(request: Request, key: str, status: int, **values: str) -> HTMLResponse:
        response = page(request, "login.html", status, me=None, message=texts.text(lang_of(request), key, **values))
        if status == 401:
            response.delete_cookie(TOKEN_COOKIE)
        return response

    def refused(request: Request, problem: QueryRefused) -> HTMLResponse:
        """A page the query API refused: sign in again (401), or say why (403, 404, 503)."""
        if problem.status == 401:
            return sign_in(request, "token_refused", 401, reason=problem.reason)
        key = {403: "cannot_act", 404: "not_found"}.get(problem.status, "unavailable")
        status = problem.status if problem.status in (403, 404) else 503
        message = texts.text(lang_of(request), key, desk="", reason=problem.reason)
        return page(request, "error.html", status, me=None, message=message)

    async def board(request: Request) -> Response:
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return RedirectResponse("/login", 303)
        try:
            view = await dashboard.board(token, period_days=period_of(request))
        except QueryRefused as problem:
            return refused(request, problem)
        return page(request, "lead.html", me=view["me"], view=view)

    async def ticket(request: Request) -> Response:
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return RedirectResponse("/login", 303)
        try:
            view = await dashboard.ticket(token, _ticket_id(request))
        except QueryRefused as problem:
            return refused(request, problem)
        return page(request, "ticket.html", me=view["me"], view=view)

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", me=None, message=None)

    async def login(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", "")).strip()
        if not token:
            return sign_in(request, "token_missing", 400)
        try:
            await dashboard.me(token)
        except QueryRefused as problem:
            return refused(request, problem)
        response = RedirectResponse("/", 303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookie)
        return response

    async def logout(_: Request) -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(TOKEN_COOKIE)
        return response

    async def act(request: Request) -> Response:
        lang = lang_of(request)
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return _notice(pages, lang, "token_missing", {}, 401)
        if request.headers.get("hx-request") != "true":
            # Only the page's own script sends this header; a form posted from another site cannot.
            return _notice(pages, lang, "not_from_page", {}, 400)
        ticket_id = _ticket_id(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        action = request.path_params["action"]
        try:
            outcome = await dashboard.act(token, ticket_id, action, form)
        except ActionRefused as problem:
            status = 403 if problem.key in ("cannot_act", "no_agent") else 400
            return _notice(pages, lang, problem.key, problem.values, status)
        except QueryRefused as problem:
            key = {401: "token_refused", 403: "cannot_act", 404: "not_found"}.get(problem.status, "unavailable")
            status = problem.status if problem.status in (401, 403, 404) else 503
            return _notice(pages, lang, key, {"reason": problem.reason, "desk": ""}, status)
        return await _acted(dashboard, pages, lang, token, ticket_id, action, outcome)

    async def live_board(request: Request) -> Response:
        token = request.cookies.get(TOKEN_COOKIE) or ""
        lang, period = lang_of(request), period_of(request)

        async def render(min_position: int | None, wait_ms: int | None) -> tuple[int, str]:
            view = await dashboard.board(token, min_position, wait_ms, period)
            return view["position"], pages.render("_board.html", lang, view=view)

        return _stream("board", dashboard.changes(render, live_wait_ms), pages, lang)

    async def live_ticket(request: Request) -> Response:
        token = request.cookies.get(TOKEN_COOKIE) or ""
        lang, ticket_id = lang_of(request), _ticket_id(request)

        async def render(min_position: int | None, wait_ms: int | None) -> tuple[int, str]:
            view = await dashboard.ticket(token, ticket_id, min_position, wait_ms)
            return view["position"], pages.render("_ticket.html", lang, view=view)

        return _stream("ticket", dashboard.changes(render, live_wait_ms), pages, lang)

    return [
        Route("/", board, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/live", live_board, methods=["GET"]),
        Route("/tickets/{ticket_id:uuid}", ticket, methods=["GET"]),
        Route("/tickets/{ticket_id:uuid}/live", live_ticket, methods=["GET"]),
        Route("/tickets/{ticket_id:uuid}/actions/{action}", act, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("ticketflow.dashboard", "static")]), name="static"),
    ]


def period_of(request: Request) -> int:
    """The days of the first-response distribution (`?days=`: one of `PERIODS`; anything else: the default)."""
    asked = request.query_params.get("days", "")
    return int(asked) if asked in {str(days) for days in PERIODS} else DEFAULT_PERIOD


def _ticket_id(request: Request) -> uuid.UUID:
    value: uuid.UUID = request.path_params["ticket_id"]
    return value


def _notice(pages: Pages, lang: str, key: str, values: dict[str, str], status: int) -> HTMLResponse:
    message = texts.text(lang, key, **values)
    return HTMLResponse(pages.render("_notice.html", lang, key=key, message=message, error=True, view=None), status)


async def _acted(
    dashboard: Dashboard, pages: Pages, lang: str, token: str, ticket_id: uuid.UUID, action: str, outcome: Outcome
) -> HTMLResponse:
    """The notice, and the ticket read at the action's position (its own write), with fresh forms after a
    command that was sent."""
    label = texts.text(lang, f"act_{action}")
    message = texts.text(lang, outcome.key, action=label, position=str(outcome.position), **outcome.values)
    view = None
    if outcome.status < 300:
        try:
            view = await dashboard.ticket(token, ticket_id, outcome.position, 5000 if outcome.position else None)
        except QueryRefused:
            view = None  # the action was done; the page's live stream shows the ticket when it can
    error = outcome.status >= 400 and outcome.status != 409
    body = pages.render(
        "_notice.html",
        lang,
        key=outcome.key,
        message=message,
        error=error or outcome.key == "refused_by_ticket",
        view=view,
        refresh_forms=outcome.status < 300,
    )
    return HTMLResponse(body, outcome.status)


def _stream(event: str, fragments: AsyncIterator[str], pages: Pages, lang: str) -> StreamingResponse:
    """Server-sent events: each fragment as one `event: <name>` (its lines as `data:` lines). A refusal
    mid-stream (the token expired, the API away) is sent as a notice, and the stream ends."""

    async def events() -> AsyncIterator[str]:
        try:
            async for fragment in fragments:
                yield _sse(event, fragment)
        except QueryRefused as problem:
            key = "token_refused" if problem.status == 401 else "unavailable"
            notice = pages.render("_notice.html", lang, key=key, message=texts.text(lang, key, reason=problem.reason),
                                  error=True, view=None)  # fmt: skip
            yield _sse(event, notice)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"
