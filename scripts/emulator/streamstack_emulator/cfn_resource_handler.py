"""One base for the CloudFormation resource handlers this package adds.

``cfn_firehose``, ``cfn_alarm``, ``cfn_log_stream`` and ``cfn_bucket_policy``
each register a resource type moto lacks by subclassing moto's
``CloudFormationModel``. What they have in common lives here: the type and
its name property, the physical id (also what ``Ref`` returns), ``is_created``,
deletion by name where "already gone" counts as deleted, and (for types that
have attributes) ``Fn::GetAtt`` from a table. A handler keeps only what is its
own: creating, updating and deleting in its moto backend.

moto finds resource types through ``CloudFormationModel.__subclasses__()``,
its *direct* subclasses only, so this base is a mixin and comes first::

    class LogStreamResource(ResourceHandler, CloudFormationModel):
        cfn_type = "AWS::Logs::LogStream"
        cfn_name_property = "LogStreamName"
"""

from __future__ import annotations

from typing import Any, ClassVar

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException


class ResourceHandler:
    """Mixin for a ``CloudFormationModel`` subclass: the CloudFormation plumbing
    shared by every handler; ``self.name`` is the physical id."""

    cfn_type: ClassVar[str]
    # The property that names the resource: without it in the template, moto
    # generates "<stack>-<logicalId>-<RANDOM>". "" for types without one.
    cfn_name_property: ClassVar[str] = ""
    # Backend errors that mean the resource is gone already (a delete succeeds).
    already_gone: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, name: str):
        self.name = name

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.cfn_name_property

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.cfn_type

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def is_created(self) -> bool:
        return True

    @classmethod
    def delete_named(cls, name: str, account_id: str, region_name: str) -> None:
        """Delete the resource of this name from its backend (a handler's own part)."""
        raise NotImplementedError(f"{cls.cfn_type}: no delete by name")

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        try:
            cls.delete_named(resource_name, account_id, region_name)
        except cls.already_gone:
            pass  # already gone: deleting is idempotent in CloudFormation

    def delete(self, account_id: str, region_name: str) -> None:
        self.delete_from_cloudformation_json(self.name, {}, account_id, region_name)


class ResourceHandlerWithAttributes(ResourceHandler):
    """A ``ResourceHandler`` for a type with ``Fn::GetAtt`` attributes: each
    maps to a field of the handler; any other name is a template error, also
    in Outputs. (Types without attributes keep moto's defaults.)"""

    cfn_attributes: ClassVar[dict[str, str]]  # Fn::GetAtt name -> field of the handler

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.cfn_attributes

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name in self.cfn_attributes:
            return getattr(self, self.cfn_attributes[attribute_name])
        raise UnformattedGetAttTemplateException()
