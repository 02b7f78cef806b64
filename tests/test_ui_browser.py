"""The dashboard in a real headless Chromium (the distribution's), driven by Playwright.

Playwright never downloads a browser here: it is pointed at the ``chromium`` package's
binary, which ``.ci/run`` installs when it is missing.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_support import Dashboard, dashboard, desk_in_background, run_desk

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow
TIMEOUT_MS = 30_000


def _chromium() -> str:
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip("the distribution's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _png_colours(png: bytes) -> int:
    """How many distinct byte values the image's pixel rows hold (1-2 for a blank page)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, data = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(data)))


def _shoot(page, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Save a screenshot of the page and check that it shows something."""
    png = page.screenshot(path=str(path), full_page=True)
    assert _png_colours(png) > 40, f"{path.name} looks blank"


class TestBrowsing:
    """A person opens the printed URL and looks around: list, timeline, call, logs, flows."""

    def test_list_timeline_call_logs_and_flows(self, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Finished, failed and waiting runs are listed; a run's calls are on its timeline."""
        finished = run_desk("finish")
        failed = run_desk("fail")
        waiting = run_desk("wait", DESK_WAIT_TIMEOUT="0.5")
        with dashboard(tmp_path) as ui:
            page.goto(ui.url)
            assert page.url == ui.base + "/"  # the token left the address bar
            for exec_id, status in (
                (finished, "completed"),
                (failed, "failed"),
                (waiting, "waiting"),
            ):
                row = page.locator(f'tr[data-exec="{exec_id}"]')
                assert row.get_attribute("data-status") == status
            _shoot(page, tmp_path / "executions.png")

            page.click(f'a[href="/executions/{finished}"]')
            page.wait_for_selector(".timeline")
            calls = page.locator(".trow")
            assert [calls.nth(i).get_attribute("data-call") for i in range(calls.count())] == [
                "triage",
                "reply",
            ]
            page.click('.trow[data-call="reply"]')
            panel = page.locator("#call-panel")
            assert panel.get_attribute("data-call") == "reply"
            assert "Model call draft" in panel.inner_text()
            argument = panel.locator('tr[data-arg="category"]')
            assert "<output of checkpoint 'triage'>" in argument.inner_text()
            assert page.locator("#call-panel .msg.r-system").count() == 1
            assert page.locator("#call-panel .msg.r-user").count() == 1
            _shoot(page, tmp_path / "execution.png")

            page.goto(f"{ui.base}/executions/{failed}")
            assert "refund limit exceeded" in page.locator(".failure").first.inner_text()

            page.goto(f"{ui.base}/executions/{finished}/logs")
            assert "triaging T-1" in page.locator("#loglines").inner_text()
            _shoot(page, tmp_path / "logs.png")

            page.goto(f"{ui.base}/flows")
            assert page.locator('tr[data-flow="answer_ticket"]').count() == 1
            _shoot(page, tmp_path / "flows.png")

    def test_without_the_token_nothing_is_shown(self, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Opening the address without the token shows only how to get in."""
        with dashboard(tmp_path) as ui:
            response = page.goto(ui.base + "/")
            assert response.status == 401
            assert "Access token needed" in page.inner_text("body")


class TestActing:
    """A person answers a wait through its form and cancels a running execution."""

    def test_answer_a_wait_through_the_form(self, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """A missing field is named in the form; a full answer lets the execution complete."""
        with desk_in_background("wait") as (exec_id, proc), dashboard(tmp_path) as ui:
            page.goto(ui.url)
            page.goto(f"{ui.base}/executions/{exec_id}/act")
            form = page.locator('form[data-wait="approve"]')
            form.wait_for()
            _shoot(page, tmp_path / "act.png")
            # Skip the browser's own checks to see the server's answer to a bad form.
            page.evaluate("document.querySelector('form[data-wait]').noValidate = true")
            form.locator('button[value="answer"]').click()
            error = page.locator(".field.invalid .field-error")
            assert "is required" in error.inner_text()
            assert page.locator("#act-error").is_visible()

            form = page.locator('form[data-wait="approve"]')
            form.locator('input[name="approved"]').check()
            form.locator('input[name="reviewer"]').fill("ana")
            form.locator('button[value="answer"]').click()
            page.wait_for_url(f"**/executions/{exec_id}?notice=*")
            page.locator("dl.facts .badge.s-completed").wait_for()
            assert proc.wait(timeout=30) == 0
            _shoot(page, tmp_path / "answered.png")

    def test_replay_overrides_are_checked_in_the_browser(self, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Invalid JSON, or JSON that is no object, is named under the editor and nothing
        is sent; a valid object replays."""
        finished = run_desk("finish")
        with dashboard(tmp_path) as ui:
            posts: list[str] = []
            page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
            page.goto(ui.url)
            page.goto(f"{ui.base}/executions/{finished}/act")
            form = page.locator("form#replay")
            form.locator("select[name=from]").select_option("reply")
            editor = form.locator("textarea[name=overrides]")
            error = page.locator("#overrides-error")
            editor.fill('{"checkpoint.reply": ')
            form.locator("button[type=submit]").click()
            assert "not valid JSON" in error.inner_text()
            assert editor.get_attribute("aria-invalid") == "true"
            _shoot(page, tmp_path / "overrides-error.png")
            editor.fill("[1, 2]")
            form.locator("button[type=submit]").click()
            assert "must be a JSON object" in error.inner_text()
            assert page.url == f"{ui.base}/executions/{finished}/act"
            assert posts == []
            assert ui.request("/api/executions")[1]["total"] == 1

            editor.fill('{"checkpoint.reply": "canned"}')
            form.locator("button[type=submit]").click()
            page.wait_for_url("**notice=replay*")
            assert [p for p in posts if p.endswith("/replay")] == [
                f"{ui.base}/executions/{finished}/replay"
            ]
            assert ui.request("/api/executions")[1]["total"] == 2

    def test_cancel_a_running_execution(self, browser, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """Cancel on the act page stops it; the open list shows it cancelled without reload."""
        with desk_in_background("tick") as (exec_id, proc), dashboard(tmp_path) as ui:
            page.goto(ui.url)
            row = page.locator(f'tr[data-exec="{exec_id}"]')
            assert row.get_attribute("data-status") == "running"
            other = page.context.new_page()
            other.goto(f"{ui.base}/executions/{exec_id}/act")
            other.click('button[data-action="cancel"]')
            other.locator("dl.facts .badge.s-cancelled").wait_for()
            proc.wait(timeout=30)
            # The first tab was never reloaded: its live part caught the change.
            page.locator(f'tr[data-exec="{exec_id}"][data-status="cancelled"]').wait_for()
            _shoot(page, tmp_path / "cancelled.png")


def test_the_dashboard_helper_is_a_real_server(tmp_path: Path) -> None:
    """The test harness talks to a real ``kitaru ui`` process (it answers 401 untokened)."""
    with dashboard(tmp_path) as ui:
        assert isinstance(ui, Dashboard)
        assert ui.request("/api/executions", token=None)[0] == 401
