"""The audit page in a real headless browser (Debian's chromium and chromedriver) over a log
built by `eventstore demo`: it loads, a search finds an object, the timeline shows its
events, the activity chart renders. A screenshot is kept ($EVENTSTORE_SCREENSHOT_DIR, else
the test's temporary directory)."""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.api_server import running_server
from tests.postgres_server import running_in_ci

pytestmark = pytest.mark.e2e

BUCKET = "eventstore-demo-data"
UPLOAD = "uploads/2026/03/budget.csv"


def _browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = (
        "no chromium/chromedriver (Debian packages chromium, chromium-driver; ./dev installs them)"
    )
    if running_in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('page') / 'demo.db'}"


@pytest.fixture(scope="module")
def demo_server(demo_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("work")
    db = demo_db
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EVENTSTORE_"))}
    completed = subprocess.run(
        [sys.executable, "-m", "eventstore.cli", "--db", db, "demo"],
        capture_output=True, text=True, timeout=300, cwd=workdir, env=env, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with running_server(db) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1366,1400", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def test_the_page_finds_an_object_and_draws_its_timeline_and_the_activity_chart(
    demo_server: str, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as when
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    wait = WebDriverWait(browser, 30)

    # Given the page, opened on the demo's log
    browser.get(demo_server)
    wait.until(when.text_to_be_present_in_element((By.ID, "verify-badge"), "log intact"))
    wait.until(when.text_to_be_present_in_element((By.ID, "lag-badge"), "projections live"))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#principals tbody tr"))

    # When an auditor searches the bucket by prefix
    browser.find_element(By.ID, "bucket").send_keys(BUCKET)
    browser.find_element(By.ID, "prefix").send_keys("uploads/2026/")
    browser.find_element(By.ID, "search").click()
    link = wait.until(when.element_to_be_clickable((By.LINK_TEXT, UPLOAD)))
    keys = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#objects a.object")]
    assert keys and all(k.startswith("uploads/2026/") for k in keys)

    # Then the activity chart of that prefix has bars
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#activity svg rect.bar"))
    assert "uploads/2026/" in browser.find_element(By.ID, "activity-scope").text

    # And opening the object shows its timeline: a dot and a row per event
    link.click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#timeline svg circle.event"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline-events tbody tr")
    dots = browser.find_elements(By.CSS_SELECTOR, "#timeline svg circle.event")
    assert rows and len(dots) == len(rows)
    assert "ObjectCreated:Put" in rows[0].text
    assert browser.find_element(By.ID, "object-name").text == f"s3://{BUCKET}/{UPLOAD}"
    wait.until(when.text_to_be_present_in_element((By.ID, "verify"), "anchor (keep it elsewhere):"))
    # nothing went wrong in the page's script
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    shots = Path(os.environ.get("EVENTSTORE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.execute_script("document.documentElement.style.scrollBehavior = 'auto'")
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(shots / "audit-page.png"))
    assert (shots / "audit-page.png").read_bytes().startswith(b"\x89PNG")


def test_a_long_timeline_is_read_a_page_at_a_time(
    demo_server: str, demo_db: str, browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as when
    from selenium.webdriver.support.ui import WebDriverWait

    from eventstore.store.sql import open_store
    from tests.notification_factory import T0, new_events, s3_record, sequencer_of

    assert isinstance(browser, WebDriver)
    wait = WebDriverWait(browser, 30)
    # Given an object with more events than the API returns in one page (1,000)
    key = "logs/busy.log"
    log = open_store(demo_db)
    log.append(new_events([
        s3_record(BUCKET, key, sequencer=sequencer_of(i + 1), when=T0 + timedelta(minutes=i))
        for i in range(1_050)
    ]))  # fmt: skip
    log.engine.dispose()
    browser.get(demo_server)
    wait.until(when.text_to_be_present_in_element((By.ID, "verify-badge"), "log intact"))

    def shown(_: object) -> int:
        return len(browser.find_elements(By.CSS_SELECTOR, "#timeline-events tbody tr"))

    # When its timeline is opened, it shows the first page and offers more
    browser.execute_script("showObject(arguments[0], arguments[1])", BUCKET, key)
    wait.until(lambda b: shown(b) == 1_000)
    more = wait.until(when.element_to_be_clickable((By.ID, "more-events")))
    # and reading more adds the rest, in S3's order, with a dot for every event
    more.click()
    wait.until(lambda b: shown(b) == 1_050)
    assert not browser.find_element(By.ID, "more-events").is_displayed()
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline-events tbody tr")
    positions = [int(r.find_element(By.TAG_NAME, "td").text) for r in rows]
    assert positions == sorted(positions)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline svg circle.event")) == 1_050
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
