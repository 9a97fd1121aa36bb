"""The web chat page in headless Chromium (Debian's), driven with Playwright, against the real
server and pipeline."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest

from bots.web.server import WebChat
from config import wiring

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMILE = Path(__file__).parent / "data" / "smiling_face.jpg"


@pytest.fixture()
def site(settings, pipeline, unused_port):
    if CHROMIUM is None:
        import os

        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    web_settings = settings.model_copy(update={"web_port": unused_port, "max_messages_per_minute": 100})
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
