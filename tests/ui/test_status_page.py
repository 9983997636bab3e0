"""The status page (``GET /api/ui``) in a real headless Chromium, against devhost running
function_app.py with Azurite and recoservice. The page is opened as a user would, with the key
as ``?code=``; everything it shows is checked against the HTTP API or the blobs themselves."""

from __future__ import annotations

import json

from page_reader import open_detail, read_row, wait_detail, wait_for, wait_row
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

# Every submit answered 429 (busy, retried on durable timers): a run stays at 0 chunks done
BUSY = {"target": "submit", "action": "status", "status": 429, "retryAfter": 10, "count": -1}
STUCK = {"target": "job", "action": "stuck", "count": 1}
PNG = b"\x89PNG\r\n\x1a\n"


def seeds(items: list[str], start: int, count: int) -> list[dict]:
    return [{"SeedItems": [items[i % len(items)]]} for i in range(start, start + count)]


def start_blob(ui_app, name: str, requests_: list[dict]) -> str:
    """Upload an input file and start its run (the blob trigger may start it first: the
    same blob version is the same run)."""
    body = json.dumps({"requests": requests_}).encode()
    ui_app.container("BATCH_INPUT_CONTAINER").upload_blob(name, body, overwrite=True)
    resp = ui_app.call("POST", "/batches", json={"input": {"blob": name}})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["instanceId"])


def test_page_lists_a_finished_and_a_running_run_with_their_counts(ui_app, reco, items, browser,
                                                                   screenshot):
    done_id = start_blob(ui_app, "daily/2026-11-30.json", seeds(items, 0, 60))
    finished = ui_app.wait_done(done_id)
    total = finished["progress"]["chunks"]["total"]
    reco.set_faults([BUSY])
    running_id = start_blob(ui_app, "daily/2026-12-01.json", seeds(items, 60, 40))
    try:
        running = ui_app.wait(running_id, lambda b: b["progress"]["phase"] == "running")
        running_total = running["progress"]["chunks"]["total"]

        browser.get(ui_app.page_url())

        done_row = wait_row(browser, done_id, lambda r: r["code"] == "Succeeded")
        running_row = wait_row(browser, running_id, lambda r: r["status"] == "Running")
        open_detail(browser, done_id)
        wait_detail(browser, lambda d: bool(d["outputs"]))
        shot = screenshot(browser, "status-page")
    finally:
        reco.clear_faults()
        ui_app.wait_done(running_id)
    assert total >= 2 and running_total >= 2
    assert (done_row["name"], running_row["name"]) == ("daily/2026-11-30.json",
                                                       "daily/2026-12-01.json")
    assert done_row["phase"] == "completed"
    assert done_row["progress"] == f"{total} / {total} chunks · 60 requests"
    assert (done_row["value"], done_row["max"]) == (total, total)
    assert done_row["started"] and done_row["ended"] >= done_row["started"]
    assert running_row["phase"] == "running"
    assert running_row["progress"] == f"0 / {running_total} chunks · 40 requests"
    assert (running_row["value"], running_row["ended"], running_row["code"]) == (0, "", "")
    assert shot.read_bytes()[:8] == PNG and shot.stat().st_size > 10_000


def test_progress_advances_while_the_run_is_active(ui_app, reco, items, browser):
    reco.set_faults([BUSY])
    run_id = ui_app.start(seeds(items, 100, 70))
    try:
        ui_app.wait(run_id, lambda b: b["progress"]["phase"] == "running")
        browser.get(ui_app.page_url())
        before = wait_row(browser, run_id, lambda r: r["status"] == "Running")
        browser.execute_script("window.sameDocument = true")

        reco.clear_faults()

        moved = wait_row(browser, run_id, lambda r: r["value"] > 0)
        final = wait_row(browser, run_id, lambda r: r["status"] == "Completed")
    finally:
        reco.clear_faults()
        ui_app.wait_done(run_id)
    assert before["value"] == 0 and before["progress"].startswith("0 / ")
    assert moved["value"] >= 1
    assert final["value"] == final["max"] >= 2 and final["code"] == "Succeeded"
    # the page refreshed itself: same document, never reloaded
    assert browser.execute_script("return window.sameDocument") is True


def test_cancel_on_the_page_stops_a_running_run(ui_app, reco, items, browser, screenshot):
    reco.set_faults([STUCK])
    run_id = ui_app.start(seeds(items, 170, 30))
    ui_app.wait(run_id, lambda b: bool(b["progress"]["runningChunks"]))
    browser.get(ui_app.page_url())
    wait_row(browser, run_id, lambda r: r["status"] == "Running")
    open_detail(browser, run_id)
    detail = wait_detail(browser, lambda d: d["cancel"])

    browser.find_element(By.ID, "cancel").click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present()).accept()

    row = wait_row(browser, run_id, lambda r: r["code"] == "Cancelled")
    after = wait_detail(browser, lambda d: not d["cancel"])
    screenshot(browser, "cancelled")
    api = ui_app.call("GET", f"/batches/{run_id}").json()
    assert detail["title"] == api["name"]
    assert [c[1] for c in detail["chunks"]] == ["Running"]  # the stuck chunk, while it ran
    assert "Cancel requested" in after["message"]
    assert row["phase"] == "failed" and row["ended"]
    assert api["result"]["code"] == "Cancelled" and api["marker"]["code"] == "Cancelled"
    assert row["message"] == api["marker"]["message"]
    assert after["facts"]["Code"] == "Cancelled"


def test_detail_shows_chunks_outputs_and_errors_of_an_ended_run(ui_app, items, browser):
    bad = [{"SeedItems": []}, {"SeedItems": "not a list"}]
    run_id = ui_app.start(seeds(items, 200, 50) + bad)
    name = ui_app.wait_done(run_id)["name"]
    out = ui_app.container("BATCH_OUTPUT_CONTAINER")
    marker = json.loads(out.get_blob_client(f"{name}/_SUCCESS").download_blob().readall())
    browser.get(ui_app.page_url())
    wait_row(browser, run_id, lambda r: r["code"] == "Succeeded")

    open_detail(browser, run_id)

    detail = wait_detail(browser, lambda d: d["title"] == name and d["outputs"])
    assert [(c[0], c[1], c[2]) for c in detail["chunks"]] == [
        (c["name"], c["status"], c["operationId"]) for c in marker["chunks"]]
    assert all(c[3].endswith(" s") for c in detail["chunks"])  # durations
    sizes = {o["name"]: out.get_blob_client(o["name"]).get_blob_properties().size
             for o in marker["outputs"]}
    shown = {row[0]: row[1] for row in detail["outputs"]}
    assert set(shown) == set(sizes) and f"{name}/errors.txt" in shown
    for blob, size in sizes.items():
        assert f"{size:,} B" in shown[blob] or shown[blob] == f"{size} B"
    assert detail["facts"]["Errors"] == str(marker["counts"]["errors"]) == "2"
    assert detail["facts"]["Requests"] == "52"
    assert not detail["cancel"] and not detail["rerun"]


def test_input_names_with_markup_are_shown_as_text(ui_app, items, browser):
    names = ["<img src=x onerror=alert(1)>.json",
             "\"><script>alert(2)</script>&amp; 'q'.json"]
    ids = [start_blob(ui_app, name, seeds(items, 260 + i, 3)) for i, name in enumerate(names)]
    for run_id in ids:
        ui_app.wait_done(run_id)
    browser.get(ui_app.page_url())

    rows = [wait_row(browser, run_id, lambda r: r["code"] == "Succeeded") for run_id in ids]
    open_detail(browser, ids[0])
    detail = wait_detail(browser, lambda d: d["title"] == names[0])

    assert [row["name"] for row in rows] == names
    assert any(names[0] in cell for out in detail["outputs"] for cell in out)
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1  # the page's own
    try:
        text = browser.switch_to.alert.text
    except NoAlertPresentException:
        text = None
    assert text is None


def test_the_key_leaves_the_address_bar_and_goes_as_a_header(ui_app, items, browser):
    run_id = ui_app.start(seeds(items, 280, 3))
    ui_app.wait_done(run_id)

    browser.get(ui_app.page_url(refresh=1))

    wait_row(browser, run_id, lambda r: r["code"] == "Succeeded")
    assert "code=" not in browser.current_url and browser.current_url.endswith("/api/ui?refresh=1")
    fetched = wait_for(browser, lambda: browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"), bool)
    assert any(url.endswith("/api/batches") for url in fetched)
    assert not [url for url in fetched if ui_app.master_key in url or "code=" in url]
    assert ui_app.master_key not in browser.page_source
    assert read_row(browser, run_id) is not None


def test_rerun_on_the_page_runs_the_failed_chunks_again(ui_app, reco, items, browser):
    reco.set_faults([{"target": "job", "action": "fail", "message": "disk full", "count": 1}])
    run_id = ui_app.start(seeds(items, 290, 50))
    assert ui_app.wait_done(run_id)["marker"]["kind"] == "failed"
    browser.get(ui_app.page_url())
    wait_row(browser, run_id, lambda r: r["code"] == "UpstreamJobFailed")
    open_detail(browser, run_id)
    failed = wait_detail(browser, lambda d: d["rerun"] and d["chunks"])

    browser.find_element(By.ID, "rerun").click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present()).accept()

    started = wait_detail(browser, lambda d: d["message"].startswith("Re-run "))
    rerun_id = started["message"].rsplit(" ", 1)[-1]
    rerun = wait_row(browser, rerun_id, lambda r: r["code"] == "Succeeded")
    assert started["message"] == f"Re-run started: {rerun_id}" and rerun_id != run_id
    assert any(c[1].startswith("Failed") and "disk full" in c[1] for c in failed["chunks"])
    assert rerun["progress"].endswith(" chunks · 50 requests")
    assert ui_app.call("GET", f"/batches/{rerun_id}").json()["marker"]["rerunOf"] == run_id


def test_runs_are_paged_newest_first(ui_app, items, browser):
    for i in range(3):
        ui_app.wait_done(ui_app.start(seeds(items, 150 + i, 2)))
    runs = ui_app.call("GET", "/batches").json()["runs"]  # newest first
    ids = [run["instanceId"] for run in runs]
    browser.get(ui_app.page_url() + "&pageSize=2")
    shown = "return Array.from(document.querySelectorAll('#runs tbody tr'))" \
            ".map((tr) => tr.dataset.instanceId)"
    first = wait_for(browser, lambda: browser.execute_script(shown), lambda v: len(v) == 2)

    browser.find_element(By.ID, "next").click()

    second = wait_for(browser, lambda: browser.execute_script(shown), lambda v: v != first)
    info = browser.find_element(By.ID, "page-info").text
    assert first == ids[:2] and second == ids[2:4]
    assert info.startswith(f"page 2 of {(len(ids) + 1) // 2} · {len(ids)} runs")
    assert browser.find_element(By.ID, "prev").is_enabled()


def test_the_page_runs_under_its_policy_without_errors(ui_app, items, browser):
    run_id = ui_app.start(seeds(items, 160, 2))
    ui_app.wait_done(run_id)

    browser.get(ui_app.page_url())
    wait_row(browser, run_id, lambda r: r["code"] == "Succeeded")
    open_detail(browser, run_id)
    wait_detail(browser, lambda d: bool(d["outputs"]))

    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []  # a CSP violation or a script error would be logged here
