"""The playground and the API docs in headless Chromium against the local cloud (the real template, handlers
and state machine): sign in, generate, watch, play, cancel, history, credits, usage, /docs.

Every step checks the browser console (any error fails the test) and writes a screenshot under
build/browser/<test name>/."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests
from browser_page import Page

pytestmark = pytest.mark.browser

XSS_PROMPT = 'A lighthouse at dawn, waves below <script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
SLOW_PROMPT = 'A paper lantern drifting over a lake at night [sim:slow=300]'


def test_playground_end_to_end(cloud, new_user, chromium, screenshots) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    user = new_user(credits=1000)
    page = Page(chromium, screenshots)
    chromium.get(cloud.api_url + '/')

    # Sign in: a wrong key is refused with a clear message; the right one is kept in sessionStorage only.
    key_field = page.named('API key')
    key_field.send_keys('vg_not-a-real-key', Keys.ENTER)
    error = page.wait(lambda: page.css('#signin-error').is_displayed() and page.css('#signin-error'), 'the sign-in error')
    assert 'not accepted' in error.text
    page.step('wrong-key', expected=('/v1/credits?limit=1 - Failed to load resource: the server responded with a status of 401',))
    key_field.clear()
    key_field.send_keys(user.key, Keys.ENTER)  # keyboard only
    page.wait(lambda: page.css('#generate-form').is_displayed(), 'the Create view')
    page.wait(lambda: page.balance() == 1000, 'the balance')
    assert page.js('return sessionStorage.getItem("vidgen.apiKey")') == user.key
    assert page.js('return localStorage.length') == 0
    assert user.key not in chromium.current_url
    assert page.unnamed_controls() == []

    # The form follows the catalog: kling-v2-6's parameters with their defaults, priced live.
    Select(page.named('Model')).select_by_value('kling-v2-6')
    duration = Select(page.named('Duration'))
    assert [o.text for o in duration.options] == ['5', '10'] and duration.first_selected_option.text == '5'
    assert Select(page.named('Mode')).first_selected_option.text == 'std'
    assert page.css('#price').text == '20'
    duration.select_by_visible_text('10')
    assert page.css('#price').text == '40'
    duration.select_by_visible_text('5')
    assert page.css('#price').text == '20'
    assert page.named('Start image').get_attribute('type') == 'file'
    assert page.named('End image').get_attribute('disabled') is not None  # needs a start image first
    page.named('Prompt').send_keys(XSS_PROMPT)
    assert page.unnamed_controls() == []
    page.step('form')

    # Generate, clicked twice: one job (the button is busy, and the Idempotency-Key is the same).
    ActionChains(chromium).double_click(page.named('Generate')).perform()
    first = page.wait(lambda: page.css('#recent article[data-job-id]').get_attribute('data-job-id'), 'the new job card')
    time.sleep(1)  # a second submit would have answered by now
    jobs = user.get('/v1/jobs').json()['jobs']
    assert [j['id'] for j in jobs] == [first]
    page.step('submitted')

    # The prompt is shown as text: no script ran, no element was made from it.
    # (The card is re-rendered in place when the status moves on, so each look finds it afresh.)
    shown = page.wait(lambda: page.css('.job-prompt', page.card(first)).text, 'the prompt on the card')
    assert shown == XSS_PROMPT
    assert page.js('return window.__pwned === undefined')
    assert page.wait(lambda: len(page.all('script, img[src="x"]', page.card(first))) == 0, 'no element from the prompt')

    # Watch it succeed without a reload; the <video> plays the presigned copy from the bucket.
    page.wait(lambda: page.status_of(first) == 'succeeded', 'the job to succeed', timeout=60)
    video = page.css('video', page.card(first))
    src = video.get_attribute('src')
    job = user.job(first)
    # Presigned afresh on every read: the same object in the bucket, not the same signature.
    assert src.split('?')[0] == job['outputs'][0]['url'].split('?')[0]
    assert src.startswith(f'{cloud.moto_url}/') and f'/results/{user.user_id}/{first}/' in src
    # The browser fetched it (a resource-timing entry; a CSP refusal would be a console error), and the same
    # URL serves the job's bytes. Cross-origin, the browser hides the status, so requests reads it too.
    page.wait(lambda: page.js('return performance.getEntriesByName(arguments[0]).some(e => e.responseEnd > 0)', src),
              'the browser to load the video')
    facts = job['outputs'][0].get('media')
    if facts is not None:  # results are probed before success (their facts published): the browser plays the file
        page.wait(lambda: page.js('return arguments[0].readyState', video) >= 1, 'the video metadata')
        assert abs(page.js('return arguments[0].duration', video) - facts['duration_seconds']) < 0.5
    served = requests.get(src, timeout=30)
    assert served.status_code == 200 and served.headers['content-type'] == 'video/mp4'
    assert len(served.content) == job['outputs'][0]['bytes']
    download = page.named(f'Download the result of job {first}')
    assert download.get_attribute('href') == src
    page.wait(lambda: page.balance() == 1000 - job['credits'], 'the balance to drop by the price')
    assert job['credits'] == 20
    page.step('succeeded')

    # A second job, canceled while it runs: refunded, and the balance shows it.
    prompt = page.named('Prompt')
    prompt.clear()
    prompt.send_keys(SLOW_PROMPT)
    page.named('Generate').click()
    second = page.wait(lambda: (ids := [c.get_attribute('data-job-id') for c in page.all('#recent article[data-job-id]')])
                       and ids[0] != first and ids[0], 'the second job card')
    page.wait(lambda: page.balance() == 960, 'the second debit')
    page.wait(lambda: page.status_of(second) == 'running', 'the second job to run')
    page.js('window.scrollTo(0, 0)')
    page.step('running')
    cancel = [b for b in page.all('button', page.card(second)) if b.accessible_name == 'Cancel']
    assert len(cancel) == 1
    cancel[0].click()
    page.wait(lambda: page.status_of(second) == 'canceled', 'the cancel')
    page.wait(lambda: page.balance() == 980, 'the refund')
    assert user.job(second)['refunded'] is True
    page.step('canceled')

    # History: both jobs, newest first; the status filter asks the API.
    page.named('History').click()
    page.wait(lambda: len(page.all('#history article')) == 2, 'two jobs in history')
    assert [c.get_attribute('data-job-id') for c in page.all('#history article')] == [second, first]
    Select(page.named('Status')).select_by_value('succeeded')
    page.wait(lambda: [c.get_attribute('data-job-id') for c in page.all('#history article')] == [first], 'the filter')
    page.step('history')
    page.named(f'Details of job {first}').click()
    page.wait(lambda: page.css('#job-dialog').is_displayed(), 'the job dialog')
    assert first in page.css('#job-dialog-body').text
    page.step('details')
    page.named('Close').click()

    # Credits: the ledger, newest first: refund, debit, debit, grant.
    page.named('Credits').click()
    page.wait(lambda: len(page.all('#ledger tr')) == 4, 'four ledger rows')
    assert [r.find_elements(page.By.TAG_NAME, 'td')[2].text for r in page.all('#ledger tr')] == ['+20', '-20', '-20', '+1000']
    assert page.css('#credits-balance').text == '980'
    page.step('credits')

    # Usage: today's bar counts both jobs; the per-model table names the model.
    page.named('Usage').click()
    today = datetime.now(timezone.utc).date().isoformat()
    bar = page.wait(lambda: page.css(f'#chart-jobs rect[data-date="{today}"]'), "today's bar")
    assert bar.get_attribute('data-value') == '2' and float(bar.get_attribute('height')) > 0
    assert page.css(f'#chart-credits rect[data-date="{today}"]').get_attribute('data-value') == '20'
    rows = [r.text for r in page.all('#usage-models tr')]
    assert len(rows) == 1 and rows[0].startswith('Kling 2.6 2 1 0 1 20')
    page.step('usage')

    # Phone width: nothing wider than the screen, every control still named.
    chromium.set_window_size(390, 844)
    page.named('Create').click()
    page.wait(lambda: page.css('#generate-form').is_displayed(), 'the Create view')
    assert page.js('return document.documentElement.scrollWidth <= window.innerWidth')
    assert page.unnamed_controls() == []
    page.step('phone')
    chromium.set_window_size(1366, 900)

    # /docs: Swagger UI from the stack's own files lists /v1/jobs, and "Try it out" works with the key.
    chromium.get(cloud.api_url + '/docs')
    page.wait(lambda: any(p.text == '/v1/jobs' for p in page.all('.opblock-summary-path')), '/v1/jobs in the docs')
    credits_op = page.css('#operations-account-get_credits')  # tag `account`, operationId `get_credits`
    credits_op.find_element(page.By.CSS_SELECTOR, '.opblock-summary').click()
    page.wait(lambda: page.css('.try-out__btn', credits_op), 'Try it out').click()
    page.wait(lambda: page.css('.execute', credits_op), 'Execute').click()
    code = page.wait(lambda: page.css('.live-responses-table tr.response .response-col_status', credits_op).text,
                     'the live response')
    assert code.strip() == '200'
    page.js('arguments[0].scrollIntoView({block: "center"})', page.css('.live-responses-table', credits_op))
    assert page.js('return localStorage.length') == 0
    page.step('docs')
    assert page.steps == 12
