"""The bench's meter (vidgen_local/metering.py) counts what AWS would bill, from the local cloud's own calls.

Each check works on a table of its own in the session cloud, so the figures are exact whatever else runs."""

from __future__ import annotations

import uuid

import boto3
import pytest
from vidgen_local.metering import Meter
from vidgen_local.prices import JobCost, seed_000, seed_002


@pytest.fixture
def metered(cloud):
    meter = Meter(cloud).attach()
    yield meter
    meter.detach()


@pytest.fixture
def table(cloud):
    client = boto3.client('dynamodb', endpoint_url=cloud.moto_url, region_name='us-east-1')
    name = f'meter-{uuid.uuid4().hex[:8]}'
    client.create_table(
        TableName=name, BillingMode='PAY_PER_REQUEST',
        AttributeDefinitions=[{'AttributeName': n, 'AttributeType': 'S'} for n in ('PK', 'SK', 'owner')],
        KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}, {'AttributeName': 'SK', 'KeyType': 'RANGE'}],
        GlobalSecondaryIndexes=[{'IndexName': 'ByOwner', 'KeySchema': [{'AttributeName': 'owner', 'KeyType': 'HASH'}],
                                 'Projection': {'ProjectionType': 'KEYS_ONLY'}}])
    yield client, name
    client.delete_table(TableName=name)


def units(meter: Meter, start, table: str) -> tuple[float, float]:
    window = meter.between(start, meter.snapshot())
    return window.table_units[(table, 'read')], window.table_units[(table, 'write')]


def test_writes_are_counted_per_kilobyte_twice_in_transactions_plus_index_entries(metered, table):
    client, name = table
    big = 'x' * 2500  # with the names and keys: just over 2 KB, so 3 write units
    start = metered.snapshot()
    client.put_item(TableName=name, Item={'PK': {'S': 'a'}, 'SK': {'S': '1'}, 'blob': {'S': big}})
    assert units(metered, start, name) == (0, 3)

    start = metered.snapshot()
    client.put_item(TableName=name, Item={'PK': {'S': 'b'}, 'SK': {'S': '1'}, 'owner': {'S': 'o'}})  # + its index entry
    assert units(metered, start, name) == (0, 1 + 1)

    start = metered.snapshot()
    client.transact_write_items(TransactItems=[
        {'Put': {'TableName': name, 'Item': {'PK': {'S': 'c'}, 'SK': {'S': '1'}}}},
        {'Update': {'TableName': name, 'Key': {'PK': {'S': 'b'}, 'SK': {'S': '1'}}, 'UpdateExpression': 'SET n = :n',
                    'ExpressionAttributeValues': {':n': {'N': '1'}}}},
        {'ConditionCheck': {'TableName': name, 'Key': {'PK': {'S': 'a'}, 'SK': {'S': '1'}},
                            'ConditionExpression': 'attribute_exists(PK)'}}])
    # 2 x (1 + 1) for the writes, 2 for the condition check; the keys-only index entry did not change.
    assert units(metered, start, name) == (0, 6)

    start = metered.snapshot()
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName=name, Item={'PK': {'S': 'c'}, 'SK': {'S': '1'}},
                        ConditionExpression='attribute_not_exists(PK)')
    assert units(metered, start, name) == (0, 1)  # a refused conditional write is still billed


def test_reads_are_counted_per_4_kb_halved_when_eventually_consistent(metered, table):
    client, name = table
    client.put_item(TableName=name, Item={'PK': {'S': 'a'}, 'SK': {'S': '1'}, 'blob': {'S': 'y' * 5000}})
    start = metered.snapshot()
    client.get_item(TableName=name, Key={'PK': {'S': 'a'}, 'SK': {'S': '1'}}, ConsistentRead=True)
    assert units(metered, start, name) == (2, 0)
    start = metered.snapshot()
    client.get_item(TableName=name, Key={'PK': {'S': 'a'}, 'SK': {'S': '1'}})
    assert units(metered, start, name) == (1, 0)
    start = metered.snapshot()
    client.query(TableName=name, KeyConditionExpression='PK = :p', ExpressionAttributeValues={':p': {'S': 'none'}})
    assert units(metered, start, name) == (0.5, 0)  # an empty result still costs the minimum


def test_invocations_api_requests_and_s3_tiers(cloud, metered):
    event = {'version': '2.0', 'routeKey': 'GET /v1/health', 'rawPath': '/v1/health', 'rawQueryString': '',
             'headers': {}, 'requestContext': {'http': {'method': 'GET', 'path': '/v1/health'}, 'requestId': 'r',
                                               'stage': '$default', 'routeKey': 'GET /v1/health'},
             'isBase64Encoded': False}
    start = metered.snapshot()
    cloud.invoke('StatusFunction', event)
    s3 = boto3.client('s3', endpoint_url=cloud.moto_url, region_name='us-east-1')
    bucket = cloud.handler_env['BUCKET_NAME']
    s3.put_object(Bucket=bucket, Key='meter/test', Body=b'x')
    s3.get_object(Bucket=bucket, Key='meter/test')['Body'].read()
    s3.delete_object(Bucket=bucket, Key='meter/test')
    window = metered.between(start, metered.snapshot())
    assert window.steps[('StatusFunction', 'GET /v1/health')] == 1
    assert window.api_requests >= 1
    memory_gb = cloud.function('StatusFunction').memory_size / 1024
    assert 0 < window.gb_seconds['StatusFunction'] <= memory_gb * 30
    # Other tests may be copying results meanwhile, so at least what this test did is there.
    assert window.s3_tier1 >= 1 and window.s3_tier2 >= 1
    assert metered.failures == 0


def test_prices_and_seed_models():
    one = JobCost(state_transitions=1000, lambda_invocations=1e6, lambda_gb_seconds=1, dynamodb_write_units=1e6)
    assert one.dollars() == pytest.approx(0.025 + 0.20 + 0.0000133334 + 0.625)
    from vidgen_local.prices import Measured

    m = Measured(request_seconds=0.05, read_seconds=0.02, create_seconds=0.3, memory_gb=0.5)
    # Holding the request open costs more the longer the generation; the cron's queue grows with the burst.
    assert seed_000(120, m).lambda_gb_seconds > seed_000(10, m).lambda_gb_seconds
    assert seed_000(10, m).lambda_gb_seconds == pytest.approx(0.5 * (0.3 + 10))
    assert seed_002(10, 200, m).api_requests > seed_002(10, 5, m).api_requests
    assert seed_002(10, 5, m).api_requests == pytest.approx(2 + (30 + 10) / 2)
