"""Storyboards in the playground's History, in headless Chromium: a storyboard's product, its scenes and their
videos together, updating as the scenes finish. Runs once the API serves storyboards."""

from __future__ import annotations

import pytest
from browser_page import Page
from selenium.webdriver.common.keys import Keys

pytestmark = pytest.mark.browser


def test_history_shows_a_storyboard_with_its_scenes(cloud, new_user, chromium, screenshots) -> None:
    if '/v1/storyboards' not in new_user(credits=0).get('/v1/openapi.json').json()['paths']:
        pytest.skip('the API has no storyboards yet')
    # Given a storyboard of two Kling scenes
    user = new_user(credits=500)
    made = user.post('/v1/storyboards', json={
        'product': {'name': 'Aurora <b>desk</b> lamp', 'description': 'A brass desk lamp with a warm, dimmable light.'},
        'scenes': 2, 'model': 'kling-v2-6', 'duration': 5})
    assert made.status_code == 202, made.text
    storyboard_id = made.json()['id']

    # When its owner opens History and switches to Storyboards
    page = Page(chromium, screenshots)
    chromium.get(cloud.api_url + '/')
    page.named('API key').send_keys(user.key, Keys.ENTER)
    page.wait(lambda: page.css('#generate-form').is_displayed(), 'the Create view')
    page.named('History').click()
    page.named('Storyboards').click()

    # Then it shows the product (as text) and both scenes, each a job card that ends with a video
    card = page.wait(lambda: page.css(f'article[data-storyboard-id="{storyboard_id}"]'), 'the storyboard card')
    assert page.css('h2', card).text == 'Aurora <b>desk</b> lamp'
    page.wait(lambda: page.css(f'article[data-storyboard-id="{storyboard_id}"]').get_attribute('data-status')
              == 'succeeded', 'the storyboard to succeed', timeout=90)
    card = page.css(f'article[data-storyboard-id="{storyboard_id}"]')
    scenes = page.all('.scene', card)
    assert len(scenes) == 2
    assert all(page.css('article[data-job-id]', s).get_attribute('data-status') == 'succeeded' for s in scenes)
    assert len(page.all('video', card)) == 2
    page.step('storyboard')
