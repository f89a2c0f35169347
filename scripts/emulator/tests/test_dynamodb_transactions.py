"""A cancelled TransactWriteItems undoes its own items, and nothing else (dynamodb_transactions)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from streamstack_emulator import apply_all


def _table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_a_cancelled_transaction_leaves_its_items_as_they_were(client: Any) -> None:
    ddb = client("dynamodb")
    _table(ddb, "ss-tx")
    ddb.put_item(TableName="ss-tx", Item={"id": {"S": "kept"}, "v": {"S": "old"}})
    ddb.put_item(TableName="ss-tx", Item={"id": {"S": "gone"}, "v": {"S": "old"}})
    ddb.put_item(TableName="ss-tx", Item={"id": {"S": "guard"}, "v": {"S": "1"}})
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "ss-tx", "Item": {"id": {"S": "new"}, "v": {"S": "x"}}}},
            {"Update": {"TableName": "ss-tx", "Key": {"id": {"S": "kept"}}, "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "changed"}}}},
            {"Delete": {"TableName": "ss-tx", "Key": {"id": {"S": "gone"}}}},
            {"ConditionCheck": {"TableName": "ss-tx", "Key": {"id": {"S": "guard"}}, "ConditionExpression": "v = :two",
                                "ExpressionAttributeValues": {":two": {"S": "2"}}}},
        ])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = {i["id"]["S"]: i["v"]["S"] for i in ddb.scan(TableName="ss-tx")["Items"]}
    assert items == {"kept": "old", "gone": "old", "guard": "1"}
    # A transaction that passes applies all of it.
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "ss-tx", "Item": {"id": {"S": "new"}, "v": {"S": "x"}}}},
        {"Delete": {"TableName": "ss-tx", "Key": {"id": {"S": "gone"}}}},
    ])
    items = {i["id"]["S"]: i["v"]["S"] for i in ddb.scan(TableName="ss-tx")["Items"]}
    assert items == {"kept": "old", "new": "x", "guard": "1"}


def test_a_write_made_while_a_transaction_runs_survives_its_cancellation() -> None:
    """moto put a copy of the whole table back on cancellation, losing what other requests wrote meanwhile."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    apply_all(start_delivery=False)
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-west-3"]
    backend.create_table(
        "ss-tx-race",
        schema=[{"AttributeName": "id", "KeyType": "HASH"}],
        attr=[{"AttributeName": "id", "AttributeType": "S"}],
        throughput=None,
        billing_mode="PAY_PER_REQUEST",
        indexes=None,
        global_indexes=None,
        streams=None,
        sse_specification=None,
        tags=None,
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    table = backend.tables["ss-tx-race"]
    table.put_item({"id": {"S": "guard"}, "v": {"S": "1"}})
    reads = {"n": 0}
    get_item = backend.get_item

    def get_item_with_a_concurrent_write(*args: Any, **kwargs: Any) -> Any:
        # Another request's write lands while the transaction is under way.
        reads["n"] += 1
        if reads["n"] == 1:
            table.put_item({"id": {"S": "meanwhile"}, "v": {"S": "stored"}})
        return get_item(*args, **kwargs)

    backend.get_item = get_item_with_a_concurrent_write  # type: ignore[method-assign]
    with pytest.raises(Exception, match="Transaction cancelled"):
        backend.transact_write_items([
            {"Put": {"TableName": "ss-tx-race", "Item": {"id": {"S": "new"}}}},
            {"ConditionCheck": {"TableName": "ss-tx-race", "Key": {"id": {"S": "guard"}}, "ConditionExpression": "v = :two",
                                "ExpressionAttributeValues": {":two": {"S": "2"}}}},
        ])
    assert backend.tables["ss-tx-race"] is table
    assert sorted(i.to_json()["Attributes"]["id"]["S"] for i in table.all_items()) == ["guard", "meanwhile"]


def test_the_dispatchers_module_list_is_motos_own_listing() -> None:
    """server_dispatch answers list_of_moto_modules from one listing: the same modules, every time."""
    import os

    import moto
    from moto import backends

    apply_all(start_delivery=False)
    root = os.path.dirname(moto.__file__)
    listed = sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)) and not e.startswith("__"))
    assert list(backends.list_of_moto_modules()) == listed
    assert "dynamodb" in listed and "kinesis" in listed
