"""The lead's page and the agent's workspace in a real browser (Debian's chromium through Playwright), on
the whole system as real processes (conftest.py): live updates without a reload, an agent's reply reaching
the customer's eXpress chat, read-your-writes after each action, one desk's token seeing nothing of the
other desk, accessibility (axe-core), and bad input answered with a clear message and at most one command."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from dashboard_world import AGENT, Running, Token, axe_violations, eventually, screenshot, signed_in
from playwright.async_api import Browser, Locator, Page, expect
from support.agents import agent_event
from support.system import EXPRESS_BOTS, PUBLIC_BOT

from ticketflow.contracts import commands as c
from ticketflow.contracts.commands import CommandEnvelope, command_envelope_decoder
from ticketflow.contracts.roster_events import AgentJoinedQueue

pytestmark = [pytest.mark.e2e, pytest.mark.pg, pytest.mark.kafka, pytest.mark.timeout(600)]
ACME_BOT = next(bot for bot in EXPRESS_BOTS if bot != PUBLIC_BOT)  # a customer under contract: SLA clocks
ACME_HOST = "cts.customer.example.ru"


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


async def ticket_with(running: Running, words: str, *statuses: str, timeout_s: float = 90) -> dict[str, Any]:
    """The ticket whose conversation has `words`, once its status is one of `statuses` (the lead's token)."""

    async def found() -> dict[str, Any] | None:
        page = await running.query(running.tokens.lead, "/tickets", q=words, limit=5)
        matching = [t for t in page["tickets"] if not statuses or t["status"] in statuses]
        return matching[0] if matching else None

    ticket: dict[str, Any] = await eventually(found, timeout_s)
    return ticket


async def commands_on_topic(running: Running, ticket_id: str) -> list[CommandEnvelope]:
    """Every command this run's `ticket.commands` holds for the ticket (read from the start to the end)."""
    topic = running.topics.ticket_commands
    producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap)
    await producer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=running.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[CommandEnvelope] = []
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found += [command_envelope_decoder.decode(r.value or b"") for r in records]
        return [e for e in found if str(e.command.ticket_id) == ticket_id]
    finally:
        await consumer.stop()


async def send_command(running: Running, command: c.TicketCommand, actor: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap)
    await producer.start()
    try:
        envelope = CommandEnvelope(uuid.uuid4(), datetime.now(UTC), actor, command)
        await producer.send_and_wait(
            running.topics.ticket_commands, msgspec.json.encode(envelope), key=str(command.ticket_id).encode()
        )
    finally:
        await producer.stop()


def status_of(page: Page) -> Locator:
    """The ticket page's status (its name in the system; the page shows it in its language)."""
    return page.locator("dd[data-field='status']")


async def act(page: Page, action: str, text: str | None = None, **selects: str) -> str:
    """Fill and send one action's form on the ticket page; the notice's outcome (data-outcome)."""
    form = page.locator(f"form[data-action='{action}']")
    if text is not None:
        await form.locator("textarea").fill(text)
    for name, value in selects.items():
        await form.locator(f"select[name='{name}']").select_option(value)
    await page.locator("#notice").evaluate("notice => notice.replaceChildren()")  # the answer's, not the last
    await form.locator("button").click()
    notice = page.locator("#notice .notice")
    await expect(notice).to_be_visible(timeout=30_000)
    outcome = await notice.get_attribute("data-outcome")
    return outcome or ""


async def test_a_message_posted_as_express_appears_on_the_leads_page_without_a_reload(
    running: Running, browser: Browser
) -> None:
    context, page = await signed_in(browser, running, running.tokens.lead)
    try:
        await expect(page.locator("section[data-desk='express']")).to_be_visible()
        await page.evaluate("window.__notReloaded = true")
        words = unique("Не приходят push-уведомления на Android")
        await running.post_as_express(words)
        await expect(page.get_by_text(words)).to_be_visible(timeout=90_000)
        assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        await screenshot(page, "lead-page")
        assert await axe_violations(page) == []
    finally:
        await context.close()


async def test_an_agent_replies_asks_and_resolves_and_the_chat_the_page_and_the_sla_board_follow(
    running: Running, browser: Browser
) -> None:
    await agent_event(running.dsn, AgentJoinedQueue(AGENT, "technical-l2", (), ("ru", "en"), 5))
    words = unique("Сервер CTS не отвечает после обновления")
    chat = await running.post_as_express(words, bot=ACME_BOT, host=ACME_HOST)
    ticket = await ticket_with(running, words, "routed", "assigned", "in_progress")
    ticket_id, number = ticket["ticket_id"], ticket["number"]

    lead_context, lead = await signed_in(browser, running, running.tokens.lead)
    context, page = await signed_in(browser, running, running.tokens.anna, lang="ru")
    try:
        await page.goto(f"{running.url}/tickets/{ticket_id}")
        await expect(page.locator("ol.conversation")).to_contain_text(words)

        reply = unique("Перезапустите сервис CTS и пришлите логи")
        assert await act(page, "reply", reply) == "done"
        # Read-your-writes: the notice comes with the ticket read at the command's position.
        await expect(page.locator("ol.conversation")).to_contain_text(reply, timeout=5_000)

        async def delivered() -> bool:
            return any(reply in n.body and n.chat_id == chat for n in running.platforms.botx.received)

        await eventually(delivered, 60)

        assert await act(page, "request_info", "Пришлите, пожалуйста, логи сервера") == "done"
        await expect(status_of(page)).to_have_attribute("data-status", "waiting_on_customer", timeout=5_000)
        paused = lead.locator("section[data-desk='express'] table.sla.paused")
        await expect(paused).to_contain_text(number, timeout=60_000)  # live, no reload

        await screenshot(page, "ticket-page")
        assert await axe_violations(page) == []

        assert await act(page, "resolve", "Логи получены, сервис перезапущен") == "done"
        await expect(status_of(page)).to_have_attribute("data-status", "resolved", timeout=5_000)
        express = lead.locator("section[data-desk='express']")
        await expect(express.locator("table.sla", has_text=number)).to_have_count(0, timeout=60_000)
        await expect(express.locator(f"tr[data-ticket='{ticket_id}'] td[data-status]")).to_have_attribute(
            "data-status", "resolved"
        )
        board = await running.query(running.tokens.lead, "/desks/express/sla-board")
        listed = [c["ticket_id"] for s in ("at_risk", "breached", "paused") for c in board[s]["clocks"]]
        assert ticket_id not in listed
        sent = await commands_on_topic(running, ticket_id)
        assert [type(e.command).__name__ for e in sent] == ["ReplyAsAgent", "WaitForCustomer", "ResolveTicket"]
        assert {e.actor for e in sent} == {AGENT}  # the token's agent, never a field of the form
    finally:
        await context.close()
        await lead_context.close()


async def test_an_agent_changes_priority_and_sets_a_feature_requests_outcome_which_the_requester_is_told(
    running: Running, browser: Browser
) -> None:
    words = unique("Добавьте возможность закреплять сообщения в чатах")
    request = (
        f"{words}. Платформа: мобильное приложение и web. Просят часто, около 40 обращений в месяц. Важность: высокая"
    )
    chat = await running.post_as_express(request)
    ticket = await ticket_with(running, words, "routed", "assigned", "in_progress")
    assert ticket["category"] == "feature_request"
    context, page = await signed_in(browser, running, running.tokens.anna)
    try:
        await page.goto(f"{running.url}/tickets/{ticket['ticket_id']}")
        assert await act(page, "priority", priority="high") == "done"
        await expect(page.locator("dd[data-field='priority']")).to_have_attribute(
            "data-priority", "high", timeout=5_000
        )
        assert await act(page, "feature_outcome", "", outcome="declined") == "text_required"
        reason = unique("Not on this year's roadmap")
        assert await act(page, "feature_outcome", reason, outcome="declined") == "done"
        await expect(page.locator("dd[data-field='feature']")).to_contain_text(reason, timeout=5_000)

        async def told() -> bool:
            return any(reason in n.body and n.chat_id == chat for n in running.platforms.botx.received)

        await eventually(told, 60)
        sent = await commands_on_topic(running, ticket["ticket_id"])
        assert [type(e.command).__name__ for e in sent] == ["ChangePriority", "SetFeatureRequestOutcome"]
        assert {e.actor for e in sent} == {AGENT}
    finally:
        await context.close()


async def stream(running: Running, token: Token, seconds: float) -> str:
    """What the lead's live stream sends a token's holder within `seconds`."""
    received: list[str] = []
    cookies = {"tf_token": token.token, "tf_lang": "en"}
    async with httpx.AsyncClient(base_url=running.url, cookies=cookies, timeout=seconds + 30) as client:
        try:
            async with asyncio.timeout(seconds):
                async with client.stream("GET", "/live") as answer:
                    assert answer.status_code == 200
                    async for chunk in answer.aiter_text():
                        received.append(chunk)
        except TimeoutError:
            pass
    return "".join(received)


async def test_a_token_for_one_desk_sees_nothing_of_the_other_desk_on_the_page_or_in_its_live_stream(
    running: Running, browser: Browser
) -> None:
    box, express = running.tokens.box_wallboard, running.tokens.express_wallboard
    words = unique("Не открывается чат в веб-версии")
    box_stream = asyncio.create_task(stream(running, box, 25))
    express_stream = asyncio.create_task(stream(running, express, 25))
    await asyncio.sleep(2)
    await running.post_as_express(words)
    ticket = await ticket_with(running, words)
    box_seen, express_seen = await box_stream, await express_stream
    assert words in express_seen, "the express desk's own stream shows the new ticket (the check can fail)"
    for forbidden in (words, ticket["number"], 'data-desk="express"'):
        assert forbidden not in box_seen

    context, page = await signed_in(browser, running, box)
    try:
        await expect(page.locator("section[data-desk='bitrix24-box']")).to_be_visible()
        assert await page.locator("section[data-desk='express']").count() == 0
        assert words not in await page.content()
        answer = await page.goto(f"{running.url}/tickets/{ticket['ticket_id']}")
        assert answer is not None and answer.status == 404
        await expect(page.locator("[role=alert]")).to_contain_text("No such ticket")
    finally:
        await context.close()


async def test_bad_input_gets_a_clear_message_and_at_most_one_command(running: Running, browser: Browser) -> None:
    words = unique("Не работает вход по QR-коду")
    await running.post_as_express(words)
    ticket = await ticket_with(running, words, "routed", "assigned", "in_progress")
    ticket_id = ticket["ticket_id"]
    url = f"{running.url}/tickets/{ticket_id}"

    # A double click, and the same form sent twice at once: one command.
    context, page = await signed_in(browser, running, running.tokens.anna)
    try:
        await page.goto(url)
        text = unique("Update the app, please")
        form = page.locator("form[data-action='reply']")
        await form.locator("textarea").fill(text)
        await form.locator("button").dblclick()
        await expect(page.locator("#notice .notice")).to_have_attribute("data-outcome", "done", timeout=30_000)
        same = str(uuid.uuid4())
        answers = await page.evaluate(
            """async ([url, id]) => {
                const send = () => fetch(url + '/actions/resolve', {method: 'POST',
                    headers: {'HX-Request': 'true', 'Content-Type': 'application/x-www-form-urlencoded'},
                    body: new URLSearchParams({command_id: id, text: 'fixed'})}).then(r => r.status);
                return await Promise.all([send(), send()]);
            }""",
            [url, same],
        )
        assert answers == [200, 200]
        sent = await commands_on_topic(running, ticket_id)
        assert [type(e.command).__name__ for e in sent] == ["ReplyAsAgent", "ResolveTicket"]
        await expect(status_of(page)).to_have_attribute("data-status", "resolved", timeout=30_000)  # live
        assert (await page.locator("ol.conversation").inner_text()).count(text) == 1

        # A reply to a closed ticket: refused on the page, nothing sent.
        await send_command(running, c.CloseTicket(uuid.UUID(ticket_id), "confirmed by the customer", "lead"), "lead")
        await ticket_with(running, words, "closed")
        # The page was open all along: its live stream shows the ticket closed; its forms are the old ones.
        await expect(status_of(page)).to_have_attribute("data-status", "closed", timeout=30_000)
        assert await act(page, "reply", "one more thing") == "refused_by_ticket"
        await expect(page.locator("#notice .notice")).to_contain_text("not allowed in state closed")
        assert len(await commands_on_topic(running, ticket_id)) == 3  # the reply, the resolution, the close
        # A post that did not come from the page's own script (no HX-Request header): refused.
        status = await page.evaluate(
            """async (url) => (await fetch(url + '/actions/reopen', {method: 'POST',
                headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                body: new URLSearchParams({command_id: crypto.randomUUID(), text: 'again'})})).status""",
            url,
        )
        assert status == 400
    finally:
        await context.close()

    # An action without the scope: a reading token sees no forms, and a post is refused.
    context, page = await signed_in(browser, running, running.tokens.express_wallboard)
    try:
        await page.goto(url)
        await expect(page.locator("#actions")).to_contain_text("does not act on it")
        status = await page.evaluate(
            """async (url) => (await fetch(url + '/actions/reopen', {method: 'POST',
                headers: {'HX-Request': 'true', 'Content-Type': 'application/x-www-form-urlencoded'},
                body: new URLSearchParams({command_id: crypto.randomUUID(), text: 'again'})})).status""",
            url,
        )
        assert status == 403
        assert len(await commands_on_topic(running, ticket_id)) == 3
    finally:
        await context.close()

    # An expired token: refused at sign-in, saying so.
    context = await browser.new_context(locale="en")
    try:
        page = await context.new_page()
        await page.goto(f"{running.url}/login?lang=en")
        await page.fill("#token", running.tokens.expired.token)
        await page.click("form[action='/login'] button")
        await expect(page.locator("[role=alert]")).to_contain_text("expired")
        assert "tf_token" not in {cookie["name"] for cookie in await context.cookies()}
    finally:
        await context.close()


async def test_an_agent_resolves_then_reopens_and_the_page_shows_the_ticket_open_again_without_a_reload(
    running: Running, browser: Browser
) -> None:
    words = unique("Не приходят уведомления о звонках на iOS")
    await running.post_as_express(words)
    ticket = await ticket_with(running, words, "routed", "assigned", "in_progress")
    context, page = await signed_in(browser, running, running.tokens.anna)
    try:
        await page.goto(f"{running.url}/tickets/{ticket['ticket_id']}")
        await page.evaluate("window.__notReloaded = true")
        assert await act(page, "resolve", "Включите уведомления в настройках iOS") == "done"
        await expect(status_of(page)).to_have_attribute("data-status", "resolved", timeout=5_000)
        assert (
            await act(page, "reopen", "The customer says it still happens") == "done"
        )  # the form came with the answer
        await expect(status_of(page)).to_have_attribute("data-status", re.compile("^(in_progress|routed|ready)$"),
                                                        timeout=5_000)  # fmt: skip
        await expect(page.locator("ol.timeline li[data-type='TicketReopened']")).to_have_text(re.compile("Reopened"))
        await expect(page.locator("form[data-action='resolve']")).to_be_visible()  # workable again
        assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        sent = await commands_on_topic(running, ticket["ticket_id"])
        assert [type(e.command).__name__ for e in sent] == ["ResolveTicket", "ReopenTicket"]
        assert {e.actor for e in sent} == {AGENT}
    finally:
        await context.close()


async def test_an_agent_refers_a_ticket_to_partners_and_the_page_shows_it_referred_without_a_reload(
    running: Running, browser: Browser
) -> None:
    words = unique("Не работает поиск контактов в веб-версии")
    await running.post_as_express(words)
    ticket = await ticket_with(running, words, "routed", "assigned", "in_progress")
    context, page = await signed_in(browser, running, running.tokens.anna, lang="ru")
    try:
        await page.goto(f"{running.url}/tickets/{ticket['ticket_id']}")
        await page.evaluate("window.__notReloaded = true")
        assert await act(page, "refer", "Заказная доработка: к партнёрам") == "done"
        await expect(status_of(page)).to_have_attribute("data-status", "referred", timeout=5_000)
        await expect(status_of(page)).to_have_text("передано партнёрам")
        await expect(page.locator("ol.timeline li[data-type='TicketReferred']")).to_have_text(
            re.compile("Передано партнёрам")
        )
        await expect(page.locator("form[data-action='refer']")).to_have_count(0)  # nothing more to refer
        assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        [sent] = await commands_on_topic(running, ticket["ticket_id"])
        assert isinstance(sent.command, c.ReferTicket) and sent.actor == AGENT
        listed = await running.query(running.tokens.lead, "/tickets", q=words)
        assert [t["excluded_from_metrics"] for t in listed["tickets"]] == [True]  # referrals do not count
    finally:
        await context.close()


async def test_an_agent_undoes_a_wrong_automatic_merge_and_the_page_follows_the_ticket_back_into_work(
    running: Running, browser: Browser
) -> None:
    """Two colleagues of one customer organisation (an eXpress bot under contract) report alike: preflight
    merges the second into the first; the agent says it is another problem, and the ticket goes back to
    preflight (which never merges it automatically again) and on into a queue, all shown live."""
    marker = uuid.uuid4().hex[:8]
    first = f"Ошибка: вылетает приложение при отправке видео больше 100 МБ {marker}"
    await running.post_as_express(first, bot=ACME_BOT, host=ACME_HOST)
    kept = await ticket_with(running, first, "routed", "assigned", "in_progress")
    second = f"Ошибка: вылетает приложение при отправке видео больше 100 МБ с Android {marker}"
    await running.post_as_express(second, bot=ACME_BOT, host=ACME_HOST)
    merged = await ticket_with(running, "Android " + marker, "merged")
    assert merged["ticket_id"] != kept["ticket_id"]
    context, page = await signed_in(browser, running, running.tokens.anna)
    try:
        await page.goto(f"{running.url}/tickets/{merged['ticket_id']}")
        await page.evaluate("window.__notReloaded = true")
        await expect(status_of(page)).to_have_attribute("data-status", "merged")
        await expect(page.locator("ol.timeline li[data-type='DuplicateSuspected']")).to_have_text(
            re.compile("Merged automatically as a duplicate")
        )
        assert await act(page, "undo_merge", "Another problem: only on Android") == "done"
        back = re.compile("^(opened|ready|routed|assigned|in_progress)$")  # preflight may be quick
        await expect(status_of(page)).to_have_attribute("data-status", back, timeout=5_000)
        await expect(page.locator("ol.timeline li[data-type='MergeUndone']")).to_have_text(re.compile("Merge undone"))
        # Preflight examines it again and it goes on to a queue: the live stream shows it, no reload.
        await expect(status_of(page)).to_have_attribute("data-status", re.compile("^(routed|assigned|in_progress)$"),
                                                        timeout=90_000)  # fmt: skip
        assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        [sent] = await commands_on_topic(running, merged["ticket_id"])
        assert isinstance(sent.command, c.UndoMerge) and sent.actor == AGENT
        await screenshot(page, "ticket-page-undone-merge")
        # The ticket it was merged into runs SLA clocks under the contract: they count down in the browser.
        await page.goto(f"{running.url}/tickets/{kept['ticket_id']}")
        ticking = page.locator("table.clocks td[data-countdown]")
        await expect(ticking.first).to_have_text(re.compile(r"\d\d s$"), timeout=60_000)
    finally:
        await context.close()


async def test_the_leads_page_plots_backlog_by_hour_and_the_first_response_distribution(
    running: Running, browser: Browser
) -> None:
    words = unique("Не работают реакции на сообщения в групповых чатах")
    await running.post_as_express(words)
    ticket = await ticket_with(running, words, "routed", "assigned", "in_progress")
    agent_context, agent = await signed_in(browser, running, running.tokens.anna)
    try:  # a first reply: the distribution has at least one ticket, and this one waits in the backlog
        await agent.goto(f"{running.url}/tickets/{ticket['ticket_id']}")
        assert await act(agent, "reply", "Обновите приложение до последней версии") == "done"
    finally:
        await agent_context.close()
    context, page = await signed_in(browser, running, running.tokens.lead)
    try:
        express = page.locator("section[data-desk='express']")
        history = express.locator("figure[data-chart='backlog-by-hour-express']")
        await expect(history.locator("rect.bar")).to_have_count(48)  # an hour without a ticket is a zero bar
        await expect(history.locator("text.tick").last).to_have_text(re.compile(r"^\d\d:00$"))
        last = history.locator("rect.bar").last.locator("title")

        async def the_last_bar_is_the_backlog_now() -> bool:
            answer = await running.query(running.tokens.lead, "/desks/express/backlog-history", hours=48)
            level = answer["total"]["backlog"][-1]
            return level > 0 and (await last.text_content() or "").endswith(f": {level}")  # live: may lag

        await eventually(the_last_bar_is_the_backlog_now, 60)
        per_queue = express.locator("details.per-queue")
        await per_queue.locator("> summary").click()
        await expect(
            per_queue.locator("figure[data-chart='backlog-by-hour-express-client-l1'] rect.bar")
        ).to_have_count(48)
        await express.locator("nav.periods a[href='/?days=7']").click()
        await expect(express.locator("nav.periods strong")).to_have_text("7 days")
        responses = express.locator("figure[data-chart='first-responses-express']")
        await expect(responses.locator("rect.bar")).to_have_count(10)

        async def the_bars_are_the_tickets_answered() -> bool:
            counted = await running.query(running.tokens.lead, "/desks/express/first-responses")
            titles = await responses.locator("rect.bar title").all_text_contents()
            shown = sum(int(title.rsplit(": ", 1)[1]) for title in titles)
            return bool(counted["responded"] > 0 and shown == counted["responded"])  # live: may lag

        await eventually(the_bars_are_the_tickets_answered, 60)
        await screenshot(page, "lead-page-plots")
        assert await axe_violations(page) == []
    finally:
        await context.close()
