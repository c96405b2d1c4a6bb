"""Browser tier: the system's headless Chromium (Debian's `chromium` + `chromium-driver`, installed by
`make browser-deps`) driven by Selenium against the session's local cloud. Nothing is downloaded at run time:
the driver and the browser are given by path, so Selenium Manager never runs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / 'build' / 'browser'
# What works in a container as root: no sandbox, no GPU, no network of Chromium's own (updates, sync, QUIC).
CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--window-size=1366,900')


def _binaries() -> tuple[str, str] | None:
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver')
    return (browser, driver) if browser and driver else None


@pytest.fixture
def chromium() -> Iterator[object]:
    found = _binaries()
    if found is None:
        pytest.skip('headless Chromium is not installed (make browser-deps installs chromium and chromium-driver)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    with tempfile.TemporaryDirectory(prefix='vidgen-chromium-') as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f'--user-data-dir={profile}')
        options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """A folder named after the test, emptied first: `build/browser/<test name>/`."""
    folder = SCREENSHOTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
