"""The admins' dashboard in a real headless browser (Debian's chromium through selenium) against
a real `glint serve`: it loads, a running import's progress bar moves, a cancel from the CLI
shows up without a reload, and a non-admin is refused.

``DASHBOARD_SCREENSHOT=docs/images/dashboard.png`` saves the page mid-import there (the one in
docs/operations.md).
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests import httpserver
from tests.acceptance.conftest import Server, admin_glint, glint_cli, wait_for
from tests.tools import require_chromium

CHUNK = 256 << 10
QUARTER = 8  # chunks: 2 MiB
TOTAL = 4 * QUARTER * CHUNK
STEP = 0.15  # seconds between chunks: a quarter takes longer than glint's 1 s between reports
MEMBER = {"X-User-Id": "someone", "X-Project-Id": "a-project", "X-Roles": "member,reader"}
HOSTILE = "<img src=x onerror=window.pwned=1><script>window.pwned=2</script>"


class TrickleSource:
    """``/quick.raw`` at once; ``/slow.raw`` a quarter at a time, each let through by the test
    (``step``) and sent a chunk every STEP seconds: an import whose progress moves when the
    test says, and otherwise stays processing."""

    def __init__(self) -> None:
        self.steps = threading.Semaphore(0)
        steps = self.steps

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(TOTAL))
                self.end_headers()
                try:
                    for index in range(TOTAL // CHUNK):
                        if self.path == "/slow.raw":
                            if index and index % QUARTER == 0:
                                steps.acquire(timeout=60)
                            time.sleep(STEP)
                        self.wfile.write(b"\0" * CHUNK)
                        self.wfile.flush()
                except OSError:
                    pass  # glint stopped reading: the task was cancelled

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = httpserver.threaded(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def step(self, quarters: int = 1) -> None:
        self.steps.release(quarters)

    def close(self) -> None:
        self.step(4)
        httpserver.stop(self.httpd)


@pytest.fixture
def source() -> Iterator[TrickleSource]:
    trickle = TrickleSource()
    yield trickle
    trickle.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    binary, driver_path = require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The browser sends no identity headers: the default identity is an admin.
    with admin_glint(tmp_path_factory.mktemp("glint")) as server:
        yield server


def until(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def import_task(server: Server, url: str, name: str) -> str:
    body = {"type": "import", "input": {"import_from": url, "import_from_format": "raw",
                                        "image_properties": {"name": name}}}
    task_id: str = httpx.post(f"{server.url}/v2/tasks", json=body, timeout=10).json()["id"]
    return task_id


def row_cell(driver: Any, task_id: str, column: int) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        row = driver.find_element("css selector", f'#recent tr[data-task-id="{task_id}"]')
        return row.find_elements("css selector", "td")[column]
    except (NoSuchElementException, StaleElementReferenceException, IndexError):
        return None


def bar_value(driver: Any, task_id: str) -> float:
    """The progress bar's value in the task's row, as the page shows it now (0 without one)."""
    value = driver.execute_script(
        "const bar = document.querySelector(`#recent tr[data-task-id='${arguments[0]}'] "
        "progress`); return bar ? bar.getAttribute('value') : null;", task_id)
    return float(value) if value else 0.0


def status_text(driver: Any, task_id: str) -> str:
    text: str = driver.execute_script(
        "const s = document.querySelector(`#recent tr[data-task-id='${arguments[0]}'] "
        ".status`); return s ? s.textContent : '';", task_id)
    return text


def test_an_admin_watches_an_import_move_and_a_cli_cancel_land(
        admin_server: Server, source: TrickleSource, browser: Any) -> None:
    server = admin_server
    quick = import_task(server, f"{source.url}/quick.raw", "quick")
    wait_for(server, quick, "success")

    browser.get(f"{server.url}/dashboard")
    assert browser.title == "glint dashboard"
    assert status_text(browser, quick) == "success"
    assert browser.find_element("css selector", "#stores tbody").text.split()[1] == "1"
    browser.execute_script("window.loadedOnce = true")  # gone if the page reloads

    # A project named with markup: the next poll shows its name as text, and nothing runs.
    body = {"type": "import", "input": {"import_from": f"{source.url}/quick.raw",
                                        "import_from_format": "raw", "image_properties": {}}}
    hostile = httpx.post(f"{server.url}/v2/tasks", json=body, timeout=10, headers={
        **MEMBER, "X-Project-Id": HOSTILE}).json()["id"]
    until(lambda: (cell := row_cell(browser, hostile, 3)) is not None and cell.text == HOSTILE,
          "the project's name as text")

    slow = import_task(server, f"{source.url}/slow.raw", "slow")
    until(lambda: status_text(browser, slow) == "processing", "the import on the page")
    first = until(lambda: bar_value(browser, slow), "a progress bar")
    assert 0 < first <= 25
    source.step()  # the second quarter
    later = until(lambda: bar_value(browser, slow) > first and bar_value(browser, slow),
                  "the progress bar to move")
    assert first < later <= 50  # the rest waits for the test
    worker = row_cell(browser, slow, 6)
    assert worker is not None and worker.text  # the lease owner holding it
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        browser.save_screenshot(os.environ["DASHBOARD_SCREENSHOT"])

    cancelled = glint_cli(server, "task", "cancel", slow)
    assert cancelled.returncode == 0, cancelled.stderr
    source.step(3)  # the runner sees the request at its next check
    until(lambda: status_text(browser, slow) == "failure", "the cancel on the page")
    message = row_cell(browser, slow, 8)
    assert message is not None and "cancelled" in message.text
    assert browser.execute_script("return window.loadedOnce") is True
    assert browser.execute_script("return window.pwned") is None

    browser.get(f"{server.url}/dashboard")  # rendered by the server this time
    assert row_cell(browser, hostile, 3).text == HOSTILE
    assert browser.execute_script("return window.pwned") is None

    browser.get(f"{server.url}/dashboard?task={slow}")
    timeline = browser.find_element("id", "task").text
    assert "failure" in timeline and "cancelled" in timeline


def test_a_non_admin_is_refused(admin_server: Server, browser: Any) -> None:
    # The browser as a member of a project: identity headers on every request it sends.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": MEMBER})
    browser.get(f"{admin_server.url}/dashboard")
    assert "The dashboard is for admins." in browser.page_source
    assert browser.find_elements("id", "recent") == []
    for path in ("/dashboard", "/dashboard/data"):
        assert httpx.get(admin_server.url + path, headers=MEMBER, timeout=10).status_code == 403
