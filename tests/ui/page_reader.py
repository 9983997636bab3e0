"""Reading the status page in the browser: rows and detail as plain dicts (one script call,
so a refresh that rebuilds the table between two reads cannot mix two versions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

READ_ROW = """
const tr = document.querySelector('#runs tr[data-instance-id="' + arguments[0] + '"]');
if (!tr) return null;
const text = (sel) => { const n = tr.querySelector(sel); return n ? n.textContent : ""; };
const bar = tr.querySelector("progress");
return {status: tr.dataset.runtimeStatus, name: text(".name"), phase: text(".phase"),
        progress: text(".progress-text"), value: bar.value, max: bar.max,
        started: text(".started"), ended: text(".ended"), code: text(".code"),
        message: text(".message")};
"""

READ_DETAIL = """
const d = document.getElementById("detail");
if (d.hidden) return null;
const facts = {};
const dts = d.querySelectorAll("#detail-facts dt");
for (const dt of dts) facts[dt.textContent] = dt.nextElementSibling.textContent;
const rows = (id) => Array.from(document.querySelectorAll("#" + id + " tbody tr"))
  .map((tr) => Array.from(tr.cells).map((td) => td.textContent));
return {title: document.getElementById("detail-title").textContent, facts,
        chunks: rows("chunks"), outputs: rows("outputs"),
        cancel: !document.getElementById("cancel").hidden,
        rerun: !document.getElementById("rerun").hidden,
        message: document.getElementById("detail-message").textContent};
"""


def read_row(driver: Any, instance_id: str) -> dict | None:
    return driver.execute_script(READ_ROW, instance_id)


def read_detail(driver: Any) -> dict | None:
    return driver.execute_script(READ_DETAIL)


def wait_for(driver: Any, read: Callable[[], Any], until: Callable[[Any], bool],
             timeout: float = 90, what: str = "the page") -> Any:
    """Poll ``read()`` until ``until`` holds for its value; return that value."""
    seen: list[Any] = [None]

    def check(_: Any) -> Any:
        value = read()
        seen[0] = value
        return value if value is not None and until(value) else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except TimeoutException:
        status = driver.execute_script("return document.getElementById('status').textContent")
        raise AssertionError(f"{what} never got there; last seen {seen[0]!r}; "
                             f"page status {status!r}") from None


def wait_row(driver: Any, instance_id: str, until: Callable[[dict], bool],
             timeout: float = 90) -> dict:
    return wait_for(driver, lambda: read_row(driver, instance_id), until, timeout,
                    f"the row of {instance_id}")


def wait_detail(driver: Any, until: Callable[[dict], bool], timeout: float = 60) -> dict:
    return wait_for(driver, lambda: read_detail(driver), until, timeout, "the detail")


def open_detail(driver: Any, instance_id: str) -> None:
    """Click the run's row (its name), as a user opens the detail."""
    driver.execute_script(
        "document.querySelector('#runs tr[data-instance-id=\"' + arguments[0] + '\"] .name "
        "button').scrollIntoView()", instance_id)
    wait_for(driver, lambda: _click(driver, instance_id), bool, 30, f"a click on {instance_id}")


def _click(driver: Any, instance_id: str) -> bool:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        driver.find_element(By.CSS_SELECTOR,
                            f'#runs tr[data-instance-id="{instance_id}"] .name button').click()
    except (NoSuchElementException, StaleElementReferenceException):
        return False
    return True
