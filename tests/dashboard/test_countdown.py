"""The SLA countdown in a real browser (Debian's chromium, Playwright's fake clock): the ticket page as the
server renders it on a Friday half an hour before the box desk closes, and static/countdown.js counting it
down every second in business time, standing still once the desk has closed, an overdue clock counting up,
a paused one not at all. No system needed: the page is the server's HTML, the clock the browser's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import pytest
from playwright.async_api import Browser, expect

from ticketflow.dashboard.pages import Pages
from ticketflow.deskconfig import load_desks

pytestmark = pytest.mark.timeout(120)
DESKS = load_desks(None)
FRIDAY_1830 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # Moscow: the box desk closes at 19:00
SCRIPT = files("ticketflow.dashboard").joinpath("static/countdown.js").read_text(encoding="utf-8")


def ticket_page(lang: str) -> str:
    calendar = DESKS.calendar("bitrix24-box", "box")
    due = calendar.add_business_seconds(FRIDAY_1830, 3600)  # Monday 10:30 Moscow
    clock = {"breached": False, "elapsed_seconds": None}
    ticket = {
        "ticket_id": str(uuid.uuid4()), "number": "TF-7", "desk_id": "bitrix24-box", "track_id": "box",
        "queue_id": "box-l1", "status": "in_progress", "priority": "normal", "category": "performance",
        "assignee": "ivan", "subject": "slow", "opened_at": FRIDAY_1830.isoformat(), "feature_request": None,
        "conversation": [], "deliveries": [], "timeline": [],
        "sla": [
            {**clock, "target": "resolution", "state": "running", "deadline": due.isoformat()},
            {**clock, "target": "first_response", "state": "running", "breached": True,
             "deadline": (FRIDAY_1830 - timedelta(minutes=10)).isoformat()},
            {**clock, "target": "next_response", "state": "paused", "deadline": None, "elapsed_seconds": 60},
        ],
    }  # fmt: skip
    view = {"me": {"name": "ivan", "agent_id": "ivan"}, "ticket": ticket, "position": 1, "can_act": False}
    return Pages(DESKS).render("ticket.html", lang, now=FRIDAY_1830, me=view["me"], view=view)


@pytest.mark.parametrize(("lang", "unit", "overdue"), [("en", "s", "overdue by"), ("ru", "с", "просрочено на")])
async def test_a_running_clock_counts_down_every_second_in_business_time_and_stands_still_when_closed(
    browser: Browser, lang: str, unit: str, overdue: str
) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.clock.install(time=FRIDAY_1830 - timedelta(seconds=1))
        await page.clock.pause_at(FRIDAY_1830)  # the page's time moves only when the test says so
        await page.route("**/*", lambda route: route.fulfill(body=ticket_page(lang), content_type="text/html"))
        await page.goto("http://dashboard.test/tickets/x")  # the server's page; its static files are not served
        await page.add_script_tag(content=SCRIPT)
        resolution = page.locator("tr[data-target='resolution'] td[data-field='left']")
        late = page.locator("tr[data-target='first_response'] td[data-field='left']")
        paused = page.locator("tr[data-target='next_response'] td[data-field='left']")
        await expect(resolution).to_have_text(
            f"1 {'h' if lang == 'en' else 'ч'} 00 {'min' if lang == 'en' else 'мин'} 00 {unit}"
        )
        await page.clock.run_for(5_000)
        await expect(resolution).to_have_attribute("data-seconds", "3595")
        assert (await resolution.inner_text()).endswith(f"59 {'min' if lang == 'en' else 'мин'} 55 {unit}")
        await expect(late).to_have_attribute("data-seconds", "-605")
        await expect(late).to_contain_text(overdue)
        await page.clock.run_for(30 * 60_000)  # to 19:00:05 Moscow: the desk closed at 19:00
        await expect(resolution).to_have_attribute("data-seconds", "1800")
        await page.clock.run_for(60 * 60_000)  # an hour later, still closed: nothing counts
        await expect(resolution).to_have_attribute("data-seconds", "1800")
        await expect(late).to_have_attribute("data-seconds", "-2400")  # overdue by 40 business minutes, no more
        await expect(paused).to_have_text("—")
        assert await paused.get_attribute("data-countdown") is None
    finally:
        await context.close()
