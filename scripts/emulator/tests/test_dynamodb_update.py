"""A refused UpdateItem leaves the table as it was (dynamodb_update)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def test_an_update_refused_for_its_size_stores_nothing(client: Any) -> None:
    ddb = client("dynamodb")
    ddb.create_table(
        TableName="ss-update",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    too_big = {":t": {"S": "z" * 420_000}}
    # A new key: no key-only item is left behind.
    with pytest.raises(ClientError) as refused:
        ddb.update_item(TableName="ss-update", Key={"id": {"S": "new"}}, UpdateExpression="SET t = :t",
                        ExpressionAttributeValues=too_big)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in ddb.get_item(TableName="ss-update", Key={"id": {"S": "new"}})
    # An existing item keeps what it held.
    ddb.put_item(TableName="ss-update", Item={"id": {"S": "old"}, "t": {"S": "small"}})
    with pytest.raises(ClientError):
        ddb.update_item(TableName="ss-update", Key={"id": {"S": "old"}}, UpdateExpression="SET t = :t, u = :u",
                        ExpressionAttributeValues={**too_big, ":u": {"S": "x"}})
    assert ddb.get_item(TableName="ss-update", Key={"id": {"S": "old"}})["Item"] == {"id": {"S": "old"}, "t": {"S": "small"}}
