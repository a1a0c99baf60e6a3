"""The playground page in a real headless browser (Debian's chromium) against the local stack:
it loads, a typed headline shows a label, bars and shaded tokens, the API's own messages appear
for bad input, batch mode fills a table, and it works by keyboard and on a phone-sized screen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers.prerequisites import missing_prerequisite
from textclf import browser
from textclf.labels import LABELS

from .conftest import API_KEY, LABELLER_KEY, LocalStackProcesses

# One worker runs the three modules on the local stack; the session fixture starts it once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-stack")]

WAIT_S = 30


@pytest.fixture(scope="module")
def page(local_stack: LocalStackProcesses) -> Iterator[Any]:
    reason = browser.missing()
    if reason:
        missing_prerequisite(reason, "run `make browser` (root: apt-get install chromium chromium-driver)")
    driver = browser.chromium()
    try:
        driver.get(local_stack.api_url + "/")
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def visible(element_id: str) -> Any:
    def check(driver: Any) -> Any:
        element = driver.find_element("id", element_id)
        return element if element.is_displayed() else False

    return check


def submit_headline(driver: Any, key: str, headline: str) -> None:
    from selenium.webdriver.common.keys import Keys

    # A fresh page: an answer still shown from an earlier test would satisfy the waits that follow
    # and then be redrawn under them (a stale element), in whatever order the tests run.
    driver.refresh()
    driver.find_element("id", "tab-one").click()
    for element_id, value in (("key", key), ("headline", headline)):
        field = driver.find_element("id", element_id)
        field.clear()
        field.send_keys(value)
    # The key field stores on change; Enter in the headline submits the form (keyboard use).
    driver.find_element("id", "key").send_keys(Keys.TAB)
    driver.find_element("id", "headline").send_keys(Keys.ENTER)


def test_a_headline_shows_its_label_bars_and_shaded_tokens(page: Any) -> None:
    assert page.title == "textclf playground"
    submit_headline(page, API_KEY, "measles outbreak spreads")
    wait_for(page, visible("result"))
    wait_for(page, lambda d: d.find_element("id", "answer").text.strip())
    # Names and colours come from the answer's `labels`: the tiny model serves the news preset.
    names = {label.replace("_", " ").capitalize() for label in LABELS}
    assert page.find_element("id", "answer").text in names
    bars = page.find_elements("css selector", "#bars .bar")
    assert len(bars) == len(LABELS) and all(b.get_attribute("aria-label").endswith("%") for b in bars)
    assert {b.get_attribute("aria-label").rsplit(" ", 1)[0] for b in bars} == names
    fills = {b.find_element("css selector", "span").value_of_css_property("background-color") for b in bars}
    assert len(fills) == len(LABELS)  # one generated colour per label
    tokens = page.find_elements("css selector", "#tokens .tok")
    assert [t.text for t in tokens][:1] == ["[CLS]"] and len(tokens) >= 5
    shaded = [
        t
        for t in tokens
        if t.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
    ]
    assert shaded, "no token is shaded by its attribution"
    assert all(t.get_attribute("aria-label") for t in tokens)  # screen readers hear the value
    assert page.find_element("id", "version").text.startswith("sha256:")
    assert not page.find_element("id", "one-error").is_displayed()


def test_wrong_answers_can_be_corrected_by_a_labeller(page: Any) -> None:
    from selenium.webdriver.support.ui import Select

    submit_headline(page, API_KEY, "measles outbreak spreads")
    wait_for(page, visible("result"))
    choices = Select(page.find_element("id", "right-label"))
    # The choices are the answer's own labels (plus the prompt), the answer marked.
    assert [o.get_attribute("value") for o in choices.options] == ["", *LABELS]
    assert sum("(the answer)" in o.text for o in choices.options) == 1
    right = next(o.get_attribute("value") for o in choices.options[1:] if "(the answer)" not in o.text)

    def send(labeller_key: str) -> None:
        field = page.find_element("id", "labeller-key")
        field.clear()
        field.send_keys(labeller_key)
        Select(page.find_element("id", "right-label")).select_by_value(right)
        page.find_element("id", "send-feedback").click()

    send(API_KEY)  # the predict key may not label
    error = wait_for(page, visible("feedback-error"))
    assert "HTTP 403" in error.text and "may not send feedback" in error.text
    send(LABELLER_KEY)
    recorded = wait_for(page, visible("feedback-ok"))
    assert recorded.text.startswith("Recorded: ") and "labeller local-LabellerApiKey" in recorded.text
    assert not page.find_element("id", "feedback-error").is_displayed()
    # The labeller key is kept in the page only.
    stored = page.execute_script("return JSON.stringify([sessionStorage, localStorage])")
    assert LABELLER_KEY not in stored


def fills_of(driver: Any) -> set[str]:
    """The label colours the one-text answer's bars show."""
    return {
        e.value_of_css_property("background-color")
        for e in driver.find_elements("css selector", "#bars .bar span")
    }


def test_bad_input_shows_the_apis_own_message(page: Any) -> None:
    submit_headline(page, API_KEY, "   ")
    error = wait_for(page, visible("one-error"))
    assert "HTTP 422" in error.text and "blank" in error.text
    assert error.get_attribute("role") == "alert"
    submit_headline(page, "not-the-key", "film premiere tonight")
    wait_for(page, lambda d: "HTTP 403" in d.find_element("id", "one-error").text)
    assert "Forbidden" in page.find_element("id", "one-error").text


def test_batch_mode_fills_a_table_and_offers_json_lines(page: Any) -> None:
    submit_headline(page, API_KEY, "stocks rally")  # restores the right key
    wait_for(page, visible("result"))
    page.find_element("id", "tab-one").click()
    from selenium.webdriver.common.keys import Keys

    page.find_element("id", "tab-one").send_keys(Keys.ARROW_RIGHT)  # tabs move by arrow keys
    assert page.find_element("id", "tab-many").get_attribute("aria-selected") == "true"
    page.find_element("id", "headlines").send_keys("stocks fall\nnew phone unveiled\nflu season starts")
    page.find_element("id", "classify-many").click()
    wait_for(page, lambda d: len(d.find_elements("css selector", "#table tbody tr")) == 3)
    assert page.find_element("id", "download").is_enabled()
    assert "3 texts classified" in page.find_element("id", "many-status").text
    swatches = page.find_elements("css selector", "#table tbody tr td .swatch")
    assert len(swatches) == 3 and all(
        s.value_of_css_property("background-color") in fills_of(page) for s in swatches
    )


def test_no_console_errors_and_it_fits_a_phone(page: Any, local_stack: LocalStackProcesses) -> None:
    severe = [
        e
        for e in page.get_log("browser")
        if e["level"] == "SEVERE" and "403" not in e["message"] and "422" not in e["message"]
    ]
    assert severe == [], severe  # a CSP violation or a script error would be here
    page.set_window_size(375, 812)
    page.get(local_stack.api_url + "/")
    width = page.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width  # no sideways scrolling
    reply = httpx.get(local_stack.api_url + "/")
    assert reply.status_code == 200 and "script-src 'sha256-" in reply.headers["content-security-policy"]


def test_the_explain_route_over_http(local_stack: LocalStackProcesses) -> None:
    headers = {"x-api-key": API_KEY, "Content-Type": "application/json"}
    reply = httpx.post(
        local_stack.api_url + "/explain", json={"text": "measles outbreak spreads"}, headers=headers
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert len(body["tokens"]) == len(body["attributions"]) and body["tokens"][0]["special"]
    predicted = httpx.post(
        local_stack.api_url + "/predict", json={"text": "measles outbreak spreads"}, headers=headers
    )
    assert predicted.json()["predictions"][0]["label"] == body["label"]
    refused = httpx.post(
        local_stack.api_url + "/explain", content=json.dumps({"texts": ["a"]}), headers=headers
    )
    assert refused.status_code == 422 and "Traceback" not in refused.text
