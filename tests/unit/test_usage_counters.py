"""The usage counters' pure parts: cells and their keys, deltas, the histogram and its percentiles, the
report's window and groups, and the catalog's provider prices."""

from __future__ import annotations

import pytest
from vidgen import catalog
from vidgen.errors import InvalidParametersError
from vidgen.jobs import usage as reports
from vidgen.models import JobRequest
from vidgen.store import usage
from vidgen.store.jobs import Job, usage_cell, usage_ending


def job(**changes) -> Job:
    values = dict(id='job_1', owner='alice', status='queued', model='kling-v2-6', provider='kling',
                  provider_model='kling-v2-6', kind='t2v', prompt='x', params={'duration': 10, 'mode': 'std'},
                  credits=40, created_at=1_800_000_000.0, updated_at=1_800_000_000.0, deadline_at=1_800_003_600.0,
                  api_key_id='key_a', provider_cost_micro_usd=420_000)
    return Job(**(values | changes))


def test_a_job_is_counted_under_its_submit_day_model_kind_duration_and_key():
    cell = usage_cell(job())
    assert cell == usage.Cell(day='2027-01-15', model='kling-v2-6', kind='t2v', type='video', duration=10,
                              api_key_id='key_a')
    assert cell.sort_key() == 'DAY#2027-01-15#kling-v2-6#t2v#10#key_a'
    assert cell.service_sort_key() == 'DAY#2027-01-15#kling-v2-6#t2v#10'
    image = usage_cell(job(model='seedream-4-5', kind='t2i', params={'quality': 'basic'}, api_key_id=None))
    assert (image.type, image.duration, image.sort_key()) == ('image', None, 'DAY#2027-01-15#seedream-4-5#t2i#-#-')
    # A storyboard's scene counts under the day it was paid for, not the day its job was made.
    assert usage_cell(job(usage_day='2027-01-14', created_at=1_800_000_000.0)).day == '2027-01-14'


def test_ending_a_job_adds_its_outcome_and_for_a_success_its_bytes_cost_and_time():
    succeeded = usage_ending(job(), status='succeeded', completed_at=1_800_000_000.0 + 31, refunded=False,
                             outputs=[{'bytes': 1000}, {'bytes': 24}])
    assert succeeded.counters() == {'succeeded': 1, 'output_bytes': 1024, 'cost_micro_usd': 420_000, 'h02': 1}
    failed = usage_ending(job(), status='failed', completed_at=1_800_000_100.0, refunded=True, outputs=[])
    assert failed.counters() == {'failed': 1, 'credits_refunded': 40}
    assert usage.submitted(3, 60).counters() == {'jobs': 3, 'credits_charged': 60}
    assert usage.ended('canceled', count=3, refunded=60).counters() == {'canceled': 3, 'credits_refunded': 60}
    with pytest.raises(ValueError):
        usage.ended('running')


@pytest.mark.parametrize(('seconds', 'bucket'), [(0, 0), (15, 0), (15.01, 1), (30, 1), (3600, 14), (3600.5, 15)])
def test_the_histogram_buckets_include_their_upper_bound(seconds, bucket):
    assert usage.bucket_of(seconds) == bucket


def test_percentiles_are_the_upper_bound_of_the_bucket_holding_their_rank():
    histogram = [0] * usage.BUCKETS
    assert reports.percentile(histogram, 0.5) is None
    histogram[0], histogram[3], histogram[15] = 10, 9, 1  # 20 successes: <=15 s, <=60 s, over an hour
    assert reports.percentile(histogram, 0.50) == 15  # the 10th
    assert reports.percentile(histogram, 0.55) == 60  # the 11th
    assert reports.percentile(histogram, 0.95) == 60  # the 19th
    assert reports.percentile(histogram, 1.00) == 3600  # the overflow bucket reads as the last bound


def test_a_cells_counters_become_figures():
    counters = dict.fromkeys(usage.COUNTERS, 0) | {'jobs': 5, 'succeeded': 2, 'failed': 1, 'credits_charged': 100,
                                                    'credits_refunded': 20, 'cost_micro_usd': 962_500, 'h01': 2}
    figures = reports.figures(counters)
    assert (figures.active, figures.credits_net, figures.provider_cost_usd) == (2, 80, 0.9625)
    assert (figures.seconds_p50, figures.seconds_p95) == (30, 30)


def test_groups_sum_cells_and_every_day_of_the_window_is_present():
    def cell(day: str, model: str, kind: str, jobs: int, duration: int | None = 5) -> dict:
        return {'day': day, 'model': model, 'kind': kind, 'type': 'image' if kind == 't2i' else 'video',
                'duration': duration, 'api_key_id': 'key_a', 'jobs': jobs, 'credits_charged': 10 * jobs}

    from datetime import date

    cells = [cell('2027-01-01', 'kling-v2-6', 't2v', 2), cell('2027-01-03', 'kling-v2-6', 'i2v', 1),
             cell('2027-01-03', 'seedream-4-5', 't2i', 4, duration=None)]
    groups = reports._groups(cells, date(2027, 1, 1), date(2027, 1, 4))
    assert [d.date for d in groups['by_day']] == ['2027-01-01', '2027-01-02', '2027-01-03', '2027-01-04']
    assert [d.jobs for d in groups['by_day']] == [2, 0, 5, 0]
    assert {k: v.jobs for k, v in groups['by_model'].items()} == {'kling-v2-6': 3, 'seedream-4-5': 4}
    assert {k: v.jobs for k, v in groups['by_type'].items()} == {'image': 4, 'video': 3}
    assert {k: v.jobs for k, v in groups['by_duration'].items()} == {'5': 3}
    assert groups['totals'].credits_charged == 70


@pytest.mark.parametrize(('start', 'end', 'message'), [
    ('2027-01-05', '2027-01-01', 'must not be after'),
    ('2027-01-01', '2027-04-01', 'at most 90 days'),
    ('yesterday', None, 'YYYY-MM-DD'),
])
def test_a_bad_window_is_refused_naming_the_field(start, end, message):
    with pytest.raises(InvalidParametersError, match=message) as caught:
        reports.window(start, end)
    assert caught.value.details['field'] in ('from', 'to')


def test_a_window_takes_dates_or_times_in_utc():
    from datetime import date

    assert reports.window('2027-01-01', '2027-01-31') == (date(2027, 1, 1), date(2027, 1, 31))
    assert reports.window('2027-01-01T23:30:00-02:00', '2027-01-02') == (date(2027, 1, 2), date(2027, 1, 2))


def test_the_service_cells_and_owner_days_spread_over_every_shard():
    shards = {usage.shard_of(f'job_{n}') for n in range(2000)}
    assert shards == set(range(usage.SHARDS))
    assert usage.shard_of('job_1') == usage.shard_of('job_1')  # stable across processes (not hash())


def test_every_model_has_provider_prices_with_a_source_and_a_date_and_every_job_a_cost():
    for spec in catalog.all_models():
        prices = spec.raw['provider_prices']
        assert prices['source'].startswith('https://') and prices['as_of'] and prices['rules'], spec.id
        assert 'provider_prices' not in spec.public_view()
    resolved = catalog.resolve(JobRequest(model='kling-v2-6', prompt='x', duration=10, mode='pro'))
    assert (resolved.credits, resolved.provider_cost_micro_usd) == (70, 700_000)
    assert catalog.resolve(JobRequest(model='veo-3-1', prompt='x', reference_images=['https://a.example/1.png'])
                           ).provider_cost_micro_usd == 300_000  # the ref2v rule: veo3_fast
    assert catalog.resolve(JobRequest(model='seedream-4-5', prompt='x')).provider_cost_micro_usd == 32_500


def test_a_transactions_usage_items_add_counters_and_set_the_cells_facts():
    items = usage.transaction_items('alice', usage_cell(job()), usage.submitted(1, 40), spread_by='job_1',
                                    table_name='t')
    assert set(items) == {'usage', 'usage_service', 'usage_day'}
    user = items['usage']['Update']
    assert user['Key'] == {'PK': 'USAGE#alice', 'SK': 'DAY#2027-01-15#kling-v2-6#t2v#10#key_a'}
    assert 'ConditionExpression' not in user  # counting never refuses
    assert items['usage_service']['Update']['Key']['PK'] == f'USAGE#SERVICE#{usage.shard_of("job_1"):02d}'
    assert user['UpdateExpression'] == 'ADD jobs :jobs, credits_charged :credits_charged'
    assert user['ExpressionAttributeValues'] == {':jobs': 1, ':credits_charged': 40}
    assert usage.Cell.from_sort_key(user['Key']['SK']) == usage_cell(job())
    assert usage.Cell.from_sort_key(items['usage_service']['Update']['Key']['SK']) == usage.Cell(
        day='2027-01-15', model='kling-v2-6', kind='t2v', type='video', duration=10, api_key_id=None)
    assert items['usage_day']['Update']['Key'] == {'PK': f'USAGE#USERS#{usage.shard_of("alice"):02d}',
                                                   'SK': 'DAY#2027-01-15#alice'}
    # A delta with nothing for the owner's day (a success adds no credits) leaves that item out.
    assert 'usage_day' not in usage.transaction_items('alice', usage_cell(job()), usage.ended('succeeded'),
                                                      spread_by='job_1', table_name='t')
