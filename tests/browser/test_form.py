"""The Create form against the catalog, in headless Chromium: prices agree with the API's, image pickers follow
the model's modes and check files before anything is sent, and API errors show their message and field."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from browser_page import Page
from vidgen import catalog
from vidgen.errors import InvalidParametersError
from vidgen_local.images import png

pytestmark = pytest.mark.browser

MODES = ('t2v', 'i2v', 'flf2v', 'ref2v', 't2i', 'i2i')


def _sign_in(page: Page, base_url: str, key: str) -> None:
    from selenium.webdriver.common.keys import Keys

    page.driver.get(base_url + '/')
    page.named('API key').send_keys(key, Keys.ENTER)
    page.wait(lambda: page.css('#generate-form').is_displayed(), 'the Create view')


def test_page_prices_every_combination_as_the_api_does(cloud, new_user, chromium, screenshots) -> None:
    # Given the page's catalog module, loaded as the page loads it
    page = Page(chromium, screenshots)
    _sign_in(page, cloud.api_url, new_user(credits=10).key)
    cases = []
    for spec in catalog.all_models():
        for mode in (m for m in MODES if m in spec.modes):
            listed = {n: r['values'] for n, r in spec.parameters.items()
                      if 'values' in r and (not r.get('only_modes') or mode in r['only_modes'])}
            for combo in itertools.product(*listed.values()):
                params = dict(zip(listed, combo, strict=True))
                try:
                    expected = catalog.price(spec, mode, params)
                except InvalidParametersError:
                    expected = None
                cases.append({'model': spec.id, 'mode': mode, 'params': params, 'expected': expected})
    assert len(cases) > 50

    # When it prices each combination of mode and listed values
    got = page.driver.execute_async_script('''
        const [cases, done] = arguments;
        Promise.all([import('/static/catalog.js'), fetch('/v1/models').then(r => r.json())]).then(([c, body]) => {
          const models = Object.fromEntries(body.models.map(m => [m.id, m]));
          done(cases.map(x => c.priceFor(models[x.model], x.mode, x.params)));
        });''', cases)

    # Then every price is the API's
    mismatches = [(case, price) for case, price in zip(cases, got, strict=True) if price != case['expected']]
    assert mismatches == []
    page.step('priced')


def test_image_pickers_follow_the_modes_and_check_files(cloud, new_user, chromium, screenshots, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    user = new_user(credits=200)
    page = Page(chromium, screenshots)
    _sign_in(page, cloud.api_url, user.key)
    Select(page.named('Model')).select_by_value('kling-v2-6')
    start, end, huge = tmp_path / 'start.png', tmp_path / 'end.png', tmp_path / 'huge.png'
    start.write_bytes(png(320, 320, 90))
    end.write_bytes(png(320, 320, 200))
    huge.write_bytes(png(320, 320) + b'\0' * (4 * 1024 * 1024))

    # A file over 3.75 MB (5 MB once base64-encoded in the request) is refused in the page: nothing is read or sent
    page.named('Start image').send_keys(str(huge))
    error = page.wait(lambda: page.css('#generate-error').is_displayed() and page.css('#generate-error').text, 'the size error')
    assert 'the limit is 3.75 MB' in error and 'field: image' in error
    assert page.all('[data-picker="image"] img') == []

    # A start image makes it image-to-video: aspect ratio (text-to-video only) goes, the end image opens
    page.named('Start image').send_keys(str(start))
    page.wait(lambda: page.css('#mode-name').text == 'image-to-video', 'image-to-video')
    assert page.all('#param-aspect_ratio') == []
    assert page.named('End image').get_attribute('disabled') is None
    assert page.css('#price').text == '20'

    # An end image makes it first-and-last-frame, which Kling runs in pro only: the price follows
    page.named('End image').send_keys(str(end))
    page.wait(lambda: page.css('#mode-name').text == 'first-and-last-frame video', 'flf2v')
    assert [o.text for o in Select(page.named('Mode')).options] == ['pro']
    assert page.css('#price').text == '35'
    assert len(page.all('.picker img')) == 2
    page.step('images', expected=())

    # Generate sends both images as data: URIs; the job is the kind and price the page showed
    page.named('Generate').click()
    job_id = page.wait(lambda: page.css('#recent article[data-job-id]').get_attribute('data-job-id'), 'the job card')
    job = user.job(job_id)
    assert job['kind'] == 'flf2v' and job['credits'] == 35 and job['params']['mode'] == 'pro'
    page.wait(lambda: page.balance() == 200 - 35, 'the debit')
    page.step('submitted')


def test_api_errors_show_their_message_and_field(cloud, new_user, chromium, screenshots) -> None:
    from selenium.webdriver.support.ui import Select

    user = new_user(credits=5)
    page = Page(chromium, screenshots)
    _sign_in(page, cloud.api_url, user.key)

    # Veo needs a prompt: the API's 422 names the field, and the page marks it
    Select(page.named('Model')).select_by_value('veo-3-1-fast')
    page.named('Generate').click()
    error = page.wait(lambda: page.css('#generate-error').is_displayed() and page.css('#generate-error').text, 'the error')
    assert 'A prompt is required' in error and '(field: prompt)' in error
    assert page.named('Prompt').get_attribute('aria-invalid') == 'true'
    page.step('invalid', expected=('/v1/jobs - Failed to load resource: the server responded with a status of 422',))

    # Too few credits: the API's 402 message, and nothing was charged
    page.named('Prompt').send_keys('A city at night')
    page.named('Generate').click()
    page.wait(lambda: 'credits' in page.css('#generate-error').text and 'prompt' not in page.css('#generate-error').text,
              'the credits error')
    assert user.get('/v1/jobs').json()['jobs'] == []
    assert page.balance() == 5
    page.step('insufficient', expected=('/v1/jobs - Failed to load resource: the server responded with a status of 402',))


def test_the_ledger_pages_with_load_more(cloud, admin, new_user, chromium, screenshots) -> None:
    # Given a user whose ledger is longer than one page (20 entries): the opening grant and 24 more
    user = new_user(credits=1)
    for n in range(24):
        response = admin.post(f'/v1/admin/users/{user.user_id}/credits', json={'amount': n + 1, 'reference_id': f'topup-{n}'})
        assert response.status_code == 200, response.text
    page = Page(chromium, screenshots)
    _sign_in(page, cloud.api_url, user.key)

    # When the Credits view opens, then one page shows, newest first
    page.named('Credits').click()
    page.wait(lambda: len(page.all('#ledger tr')) == 20, 'the first page')
    assert page.all('#ledger tr')[0].find_elements(page.By.TAG_NAME, 'td')[2].text == '+24'
    assert page.css('#credits-balance').text == str(1 + sum(range(1, 25)))

    # And Load more brings the rest, after which there is nothing more to load
    page.named('Load more').click()
    page.wait(lambda: len(page.all('#ledger tr')) == 25, 'the second page')
    assert page.all('#ledger tr')[-1].find_elements(page.By.TAG_NAME, 'td')[2].text == '+1'
    assert not page.css('#ledger-more').is_displayed()
    page.step('ledger')
