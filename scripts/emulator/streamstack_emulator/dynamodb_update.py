"""DynamoDB UpdateItem: a refused update changes nothing, as on AWS.

Gap in moto 5.2.1 (``moto/dynamodb/models/__init__.py``,
``DynamoDBBackend.update_item``): for a key with no item it first stores an
item holding only the key, then applies the update expression to it in
place. When the update then fails (the item passes 400 KB:
ItemSizeToUpdateTooLarge), the key-only item, or the half-updated one, stays
in the table while the caller is told the write failed. AWS applies an
update whole or not at all. The processor turns such a refused write into a
dead letter, so on plain moto a refused tweet would also be half stored.

Patch: wrap ``update_item`` so that, on any error, the item is put back as it
was before the call (or removed when there was none).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType


def restore(table: Any, hash_value: DynamoType, range_value: DynamoType | None, before: Any) -> None:
    """Puts an item back as it was before a failed write: `before`, or none at all."""
    if before is None:
        try:
            table.delete_item(hash_value, range_value)
        except KeyError:
            pass
    else:
        table.put_item(before.to_json()["Attributes"])


def apply() -> None:
    """Make UpdateItem all or nothing."""
    if getattr(DynamoDBBackend, "_streamstack_update_patched", False):
        return
    original = DynamoDBBackend.update_item

    def update_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        hash_value = DynamoType(key[table.hash_key_attr]) if table.hash_key_attr in key else None
        range_value = (
            DynamoType(key[table.range_key_attr]) if table.range_key_attr and table.range_key_attr in key else None
        )
        before = copy.deepcopy(table.get_item(hash_value, range_value)) if hash_value is not None else None
        try:
            return original(self, table_name, key, *args, **kwargs)
        except Exception:
            if hash_value is not None:
                restore(table, hash_value, range_value, before)
            raise

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    DynamoDBBackend._streamstack_update_patched = True  # type: ignore[attr-defined]
