"""The page object the browser tests share: a Selenium driver plus the checks every step makes (the console
has no error, a screenshot is written)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


class Page:
    """The driver plus the checks every step makes: console clean, screenshot taken."""

    def __init__(self, driver: Any, folder: Path) -> None:
        from selenium.webdriver.common.by import By

        self.driver = driver
        self.folder = folder
        self.By = By
        self.steps = 0
        self.console: list[dict[str, Any]] = []

    def step(self, name: str, expected: tuple[str, ...] = ()) -> None:
        """Screenshot, then fail on any console error, except Chromium's network line for a response the
        step provoked on purpose (`expected`: substrings such as '401 (Unauthorized)')."""
        self.steps += 1
        self.driver.save_screenshot(str(self.folder / f'{self.steps:02d}-{name}.png'))
        errors = [e for e in self.driver.get_log('browser') if e['level'] == 'SEVERE'
                  and not (e.get('source') == 'network' and any(x in e['message'] for x in expected))]
        assert not errors, f'console errors at step {name}: {errors}'

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = condition()
            except Exception:  # noqa: BLE001 - the element may be mid re-render; ask again
                value = None
            if value:
                return value
            time.sleep(0.1)
        self.driver.save_screenshot(str(self.folder / f'timeout-{self.steps + 1:02d}.png'))
        raise AssertionError(f'timed out waiting for {what}')

    def css(self, selector: str, root: Any = None) -> Any:
        return (root or self.driver).find_element(self.By.CSS_SELECTOR, selector)

    def all(self, selector: str, root: Any = None) -> list[Any]:
        return (root or self.driver).find_elements(self.By.CSS_SELECTOR, selector)

    def named(self, name: str, tags: str = 'input,select,textarea,button,a') -> Any:
        """The one visible control whose accessible name (as Chromium computes it) is `name`."""
        found = [el for el in self.all(tags) if el.is_displayed() and el.accessible_name == name]
        assert len(found) == 1, f'{len(found)} visible controls named {name!r}'
        return found[0]

    def unnamed_controls(self) -> list[str]:
        return [el.get_attribute('outerHTML')[:120] for el in self.all('input,select,textarea,button')
                if el.is_displayed() and not el.accessible_name.strip()]

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def card(self, job_id: str, root: str = '#recent') -> Any:
        return self.css(f'{root} article[data-job-id="{job_id}"]')

    def status_of(self, job_id: str, root: str = '#recent') -> str:
        return self.card(job_id, root).get_attribute('data-status')

    def balance(self) -> int:
        return int(self.css('#balance-value').text)
