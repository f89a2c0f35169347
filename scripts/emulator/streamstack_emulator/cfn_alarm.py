"""CloudFormation support for ``AWS::CloudWatch::Alarm``.

Gap in moto 5.2.1: moto registers ``AWS::CloudWatch::Dashboard`` but not
``AWS::CloudWatch::Alarm``; the alarms of a template are skipped silently and
the stack still reaches CREATE_COMPLETE, so DescribeAlarms finds nothing.

Patch: a ``CloudFormationModel`` subclass that calls moto's own
``CloudWatchBackend.put_metric_alarm`` with the template's properties (single
metric alarms and metric-math ``Metrics`` alarms) and deletes the alarm with
the stack. Ref returns the alarm name, Fn::GetAtt Arn the alarm ARN. Without
AlarmName the name is generated the way CloudFormation does:
``<stack>-<logicalId>-<RANDOM>``.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import (
    Dimension,
    Metric,
    MetricDataQuery,
    MetricStat,
    cloudwatch_backends,
)
from moto.core.common_models import CloudFormationModel

from .cfn_resource_handler import ResourceHandlerWithAttributes


def _int(value: Any) -> int | None:
    # Template values may arrive as strings (YAML quoting, Ref to a parameter).
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _metric_data_queries(metrics: list[dict[str, Any]] | None) -> list[MetricDataQuery] | None:
    """Convert the CFN ``Metrics`` list into moto's objects (same as moto's PutMetricAlarm handler)."""
    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat") or {}
        metric = stat.get("Metric") or {}
        metric_stat = None
        if metric.get("MetricName"):
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=metric["MetricName"],
                    namespace=metric.get("Namespace"),
                    dimensions=[
                        Dimension(name=d.get("Name"), value=d.get("Value")) for d in metric.get("Dimensions", [])
                    ],
                ),
                period=_int(stat.get("Period")),  # type: ignore[arg-type]
                stat=stat.get("Stat"),
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=query.get("Id"),
                label=query.get("Label"),
                period=_int(query.get("Period")),  # type: ignore[arg-type]
                return_data=query.get("ReturnData"),
                expression=query.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


class CloudWatchAlarmResource(ResourceHandlerWithAttributes, CloudFormationModel):
    """Stack-side handle of an alarm that lives in moto's CloudWatch backend."""

    cfn_type = "AWS::CloudWatch::Alarm"
    cfn_name_property = "AlarmName"
    cfn_attributes = {"Arn": "arn"}

    def __init__(self, account_id: str, region_name: str, name: str, arn: str):
        super().__init__(name)
        self.account_id = account_id
        self.region_name = region_name
        self.arn = arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CloudWatchAlarmResource:
        p = cloudformation_json.get("Properties", {})
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            metric_data_queries=_metric_data_queries(p.get("Metrics")),
            comparison_operator=p.get("ComparisonOperator"),
            evaluation_periods=_int(p.get("EvaluationPeriods")),  # type: ignore[arg-type]
            datapoints_to_alarm=_int(p.get("DatapointsToAlarm")),
            period=_int(p.get("Period")),  # type: ignore[arg-type]
            threshold=_float(p.get("Threshold")),  # type: ignore[arg-type]
            statistic=p.get("Statistic"),
            extended_statistic=p.get("ExtendedStatistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
            insufficient_data_actions=p.get("InsufficientDataActions", []),
            unit=p.get("Unit"),
            actions_enabled=_bool(p.get("ActionsEnabled"), True),
            treat_missing_data=p.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=p.get("ThresholdMetricId"),
            tags=p.get("Tags"),
        )
        return cls(account_id, region_name, resource_name, alarm.alarm_arn)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: CloudWatchAlarmResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CloudWatchAlarmResource:
        # PutMetricAlarm overwrites an alarm of the same name; a renamed alarm
        # is a replacement, so the old one goes.
        if original_resource.name != new_resource_name:
            original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_named(cls, name: str, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([name])


def apply() -> None:
    """Nothing to patch: defining the subclass above registers the type."""
