"""A real browser (Debian's chromium through chromium-driver and selenium) against a real gunicorn with keys on:
an analyst signs in, reads the report, filters it, follows its JSON link and signs out; an officer key is refused.
Screenshots of the report and of /docs go to tmp_path (and to $BROWSER_SCREENSHOTS when set, to look at)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1600")


@pytest.fixture
def driver(tmp_path):
    """A headless chromium driven by chromium-driver, with a fresh profile."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium or chromium-driver is missing: apt-get install -y chromium "
                        "chromium-driver")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(tmp_path / "driver.log")))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    """A full-page PNG; copied to $BROWSER_SCREENSHOTS too when that is set."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 6000))
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("BROWSER_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["BROWSER_SCREENSHOTS"]) / name)
    driver.set_window_size(1280, 1600)
    return path


def _load_log(base: str, headers: dict, dry_run_requests) -> None:
    """The dry-run requests through the API (admin key), with their outcomes, so the report has something."""
    for id_, observation, label in dry_run_requests:
        body = {"observation_id": f"browser-{id_}", "observation": observation}
        assert requests.post(f"{base}/should_search", json=body, headers=headers, timeout=30).status_code == 200
        if label is not None:
            outcome = {"observation_id": f"browser-{id_}", "contraband_found": bool(label)}
            assert requests.post(f"{base}/search_result", json=outcome, headers=headers, timeout=30).ok


def _sign_in(driver, key: str) -> None:
    from selenium.webdriver.common.by import By
    field = driver.find_element(By.NAME, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()


def test_analyst_day_in_a_real_browser(driver, live_server, live_headers, api_keys, dry_run_requests, tmp_path):
    """Refused officer, signed-in analyst, a filter, the JSON link, sign-out, refused afterwards; the docs page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    _load_log(live_server, live_headers, dry_run_requests)
    wait = WebDriverWait(driver, 30)

    driver.get(f"{live_server}/report.html")
    assert driver.current_url.startswith(f"{live_server}/sign-in?next=")  # no session: sent to sign in
    _sign_in(driver, api_keys["officer"])
    error = wait.until(ready.presence_of_element_located((By.ID, "sign-in-error")))
    assert "officer key cannot sign in" in error.text
    _sign_in(driver, api_keys["analyst"])
    wait.until(ready.url_to_be(f"{live_server}/report.html"))
    assert "signed in: test-analyst (analyst)" in driver.find_element(By.CSS_SELECTOR, "nav.top").text
    assert driver.find_element(By.TAG_NAME, "h1").text == "Search recommendations: production monitoring"
    assert driver.find_elements(By.CSS_SELECTOR, "#roc figure img")  # the charts were drawn
    _screenshot(driver, tmp_path, "report.png")

    department = Select(driver.find_element(By.NAME, "department"))
    choice = department.options[1].get_attribute("value")
    department.select_by_value(choice)
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait.until(ready.url_contains("department="))
    header = driver.find_element(By.CSS_SELECTOR, "header dl").text
    assert f"department = {choice}" in header
    assert Select(driver.find_element(By.NAME, "department")).first_selected_option.get_attribute("value") == choice

    driver.find_element(By.ID, "json-link").click()
    wait.until(ready.url_contains("/report?"))
    report = json.loads(driver.find_element(By.TAG_NAME, "body").text)
    assert report["filters"]["department"] == choice and report["volume"]["requests"] > 0
    driver.back()

    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "nav.top form button"))).click()
    wait.until(ready.presence_of_element_located((By.ID, "signed-out")))
    driver.get(f"{live_server}/report.html")
    assert driver.current_url.startswith(f"{live_server}/sign-in?next=")
    driver.get(f"{live_server}/report")
    assert json.loads(driver.find_element(By.TAG_NAME, "body").text)["error"] == "missing_api_key"

    driver.get_log("browser")  # the refusals above were logged as failed loads; only the docs' page counts below
    driver.get(f"{live_server}/docs")
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")))
    assert driver.find_elements(By.CSS_SELECTOR, ".swagger-ui button.authorize")  # the bearer scheme is usable
    paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/should_search", "/search_result", "/report"} <= paths
    _screenshot(driver, tmp_path, "docs.png")
    problems = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    # No script refused by the page's Content-Security-Policy, no missing asset.
    assert problems == [], [entry["message"][:300] for entry in problems]
