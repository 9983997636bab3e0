"""Status page fixtures: function_app.py on devhost (Azurite, recoservice) and a real headless
Chromium driven by Selenium.

The browser is Debian's ``chromium`` with its ``chromium-driver`` (``make setup`` installs both
when root). Without them the ``browser`` fixture fails, naming the packages: the page is never
left untested silently. Selenium gets both paths, so Selenium Manager never downloads a driver.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from apphost_testkit import AppClient, app_settings

from devhost.services import REPO_ROOT, Service, start_devhost

CHROMIUM = os.environ.get("RECOBATCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RECOBATCH_CHROMEDRIVER", "/usr/bin/chromedriver")
MASTER_KEY = "ui-" + uuid.uuid4().hex[:12]


@dataclass
class UiApp(AppClient):
    """A devhost running function_app.py, and the API calls the tests make beside the page."""

    master_key = MASTER_KEY

    def page_url(self, refresh: float = 0.5) -> str:
        """The page's address as a user opens it: the key as ``?code=``."""
        return f"{self.api}/ui?code={MASTER_KEY}&refresh={refresh}"

    def start(self, requests_: list[dict]) -> str:
        resp = self.call("POST", "/batches", json={"input": {"requests": requests_}})
        assert resp.status_code == 202, resp.text
        return str(resp.json()["instanceId"])


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory: pytest.TempPathFactory, azurite: Service, blob_service,
           recoservice) -> Iterator[UiApp]:
    """One devhost per module; chunks of at most 1 KiB so small inputs make several chunks."""
    settings = app_settings(blob_service, str(azurite.extra["connection_string"]), recoservice,
                            hub="RecobatchUiHub", tag=uuid.uuid4().hex[:8], prefix="u",
                            BATCH_MAX_JOB_BYTES="1024", RECO_MAX_CONCURRENT_JOBS="2",
                            JOB_TIMEOUT_MINUTES="60")
    workdir: Path = tmp_path_factory.mktemp("ui-devhost")
    svc = start_devhost(REPO_ROOT, workdir, settings, timer_scale=20.0, master_key=MASTER_KEY)
    yield UiApp(service=svc, settings=settings, blob_service=blob_service)
    svc.stop()


@pytest.fixture(scope="module")
def items(recoservice) -> list[str]:
    """Real item ids of the demo catalog (the first 300)."""
    resp = requests.get(f"{recoservice.base_url}/models/{recoservice.demo_model_id}/catalog",
                        params={"$top": 300}, headers=recoservice.headers(), timeout=30)
    resp.raise_for_status()
    return [item["id"] for item in resp.json()["value"]]


def browser_problem() -> str | None:
    """Why no headless Chromium can be driven here, or ``None``."""
    missing = [f"{path} (Debian package {pkg})"
               for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver"))
               if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    if missing:
        return ("the status page tests need a headless Chromium and its driver; missing: "
                + ", ".join(missing) + ". Run `make setup` as root, or "
                "`apt-get install --no-install-recommends chromium chromium-driver`.")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the status page tests need selenium (requirements-dev.txt): run `make setup`."
    return None


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium (1280x1000); fails, never skips, when it cannot start."""
    problem = browser_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = DriverService(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "driver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as exc:  # WebDriverException and friends: say what failed, then fail
        pytest.fail(f"headless Chromium did not start ({CHROMIUM}, {CHROMEDRIVER}): "
                    f"{str(exc)[:500]}", pytrace=False)
    yield driver
    driver.quit()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Save the browser's view as ``<test's tmp folder>/<name>.png`` (for review); with
    ``RECOBATCH_UI_SCREENSHOT_DIR`` set, also copy it there."""

    def take(driver: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert driver.save_screenshot(str(path)), "the browser saved no screenshot"
        extra = os.environ.get("RECOBATCH_UI_SCREENSHOT_DIR")
        if extra:
            shutil.copyfile(path, Path(extra) / path.name)
        return path

    return take
