"""The web chat page in headless Chromium (Debian's), driven with Playwright, against the real
server and pipeline."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from bots.web.server import WebChat
from config import wiring

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMILE = Path(__file__).parent / "data" / "smiling_face.jpg"
ADMIN_TOKEN = "a-long-admin-token-for-tests"


@pytest.fixture()
def site(settings, pipeline, unused_port):
    if CHROMIUM is None:
        import os

        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    web_settings = settings.model_copy(update={"web_port": unused_port, "max_messages_per_minute": 100,
                                               "admin_token": SecretStr(ADMIN_TOKEN)})
    chat = wiring.chat(web_settings)
    door = WebChat(web_settings, chat)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(door.start(), loop).result(30)
    yield f"http://127.0.0.1:{unused_port}"
    asyncio.run_coroutine_threadsafe(door.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    chat.queue.close()


@pytest.fixture()
def page(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            # A fake microphone and camera, granted without a prompt.
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        ])
        context = browser.new_context(permissions=["microphone", "camera"])
        page = context.new_page()
        page.goto(site)
        yield page
        browser.close()


def test_type_a_message_and_get_a_spoken_reply(page):
    page.fill("#text", "I just got the job I wanted!")
    page.click("#send")
    reply = page.wait_for_selector("[data-testid=reply]", timeout=180_000)
    assert reply.inner_text().strip()
    assert "I sense: joy" in reply.inner_text()
    assert page.get_attribute("[data-testid=reply] audio", "src").startswith("/api/replies/")


def test_upload_a_voice_note_and_a_selfie(page, say, tmp_path):
    note = tmp_path / "note.ogg"
    note.write_bytes(say("Good morning, how are you?"))
    page.set_input_files("#audio", str(note))
    page.set_input_files("#image", str(SMILE))
    page.click("#send")
    reply = page.wait_for_selector("[data-testid=reply]", timeout=180_000)
    assert "audio" in reply.inner_html()
    duration = page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=reply] audio');"
        " return a && a.readyState > 0 && a.duration; }", timeout=30_000).json_value()
    assert duration > 0.5  # the browser itself decoded the OGG/Opus reply


def test_persona_choice_and_voice_training_dialog(page):
    page.select_option("#persona", "tutor")
    page.wait_for_selector("text=Okay, from now on I'm your tutor.", timeout=30_000)
    page.click("#open-training")
    page.check("#consent")
    page.wait_for_selector("#training-status:has-text('voice notes of you speaking')", timeout=30_000)
    page.click("#clip")  # the fake microphone plays a beep, not speech
    page.wait_for_timeout(3500)
    page.click("#clip")
    page.wait_for_selector("#training-status:has-text('speech')", timeout=120_000)


def test_an_admin_reviews_a_flag_and_bans_its_user_on_the_admin_page(page, site):
    """The admin page, in Chromium, on what a real turn flagged: a wrong token is refused, the
    flag shows scores and not words, and warn, mute, limit and ban reach the user and the
    audit log."""
    page.fill("#text", "I don't want to live anymore")
    page.click("#send")
    page.wait_for_selector("[data-testid=reply]", timeout=180_000)
    chat = page
    admin = page.context.new_page()
    admin.goto(site + "/admin")
    admin.fill("#token", "not-the-token")
    admin.click("#sign-in button")
    admin.wait_for_selector("#status:has-text('That admin token is not right.')")
    admin.fill("#token", ADMIN_TOKEN)
    admin.click("#sign-in button")
    flag = admin.wait_for_selector("#flagged tbody tr:has-text('self_harm')")
    cells = [cell.inner_text() for cell in flag.query_selector_all("td")]
    user = cells[2]
    assert user.startswith("web:") and cells[3] == "flagged_input"
    assert re.search(r"self_harm \d\.\d\d", cells[5]) and "live anymore" not in admin.inner_text("body")
    flag.query_selector("text=Dismiss").click()
    admin.wait_for_selector(f"#status:has-text('Flag {cells[0]} dismissed.')")
    admin.wait_for_selector("#flagged tbody:has-text('No open flags.')")

    admin.click("[data-tab=users]")
    admin.click(f"#users tbody tr:has-text('{user}')")
    admin.wait_for_selector(f"#user-title:has-text('{user}')")
    admin.fill("#reason", "rude to others")
    admin.click("[data-action=warn]")
    admin.wait_for_selector(f"#status:has-text('{user} has 1 warning(s)')")
    admin.fill("#rate", "5/hour")
    admin.click("[data-action=limits]")
    admin.wait_for_selector("#user-facts:has-text('5/hour')")
    admin.fill("#reason", "spam")
    admin.click("[data-action=ban]")
    admin.wait_for_selector(f"#status:has-text('{user} banned')")
    history = admin.inner_text("#history")
    assert "web-admin\tban\tspam" in history and "web-admin\twarn\trude to others; warnings 1" in history
    assert "web-admin\tlimits\trate 5/hour" in history
    assert admin.is_hidden("#sign-in")
    admin.click("[data-tab=audit]")
    admin.wait_for_selector(f"#audit tbody tr:has-text('{user}')")
    assert "dismiss" in admin.inner_text("#audit") and "limits" in admin.inner_text("#audit")

    chat.bring_to_front()
    chat.fill("#text", "hello?")
    chat.click("#send")
    chat.wait_for_selector("text=The moderators of this Heartline have closed it to you", timeout=30_000)
