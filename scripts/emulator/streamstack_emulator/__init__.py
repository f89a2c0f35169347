"""streamstack's local AWS: moto's server, extended so the whole pipeline works on it.

moto 5.2.1 answers every API the pipeline uses, but its CloudFormation and
Firehose leave gaps that make a deployed stack look complete while parts of it
are missing. Each module here fills one measured gap, on moto's own backends:

=====================  ==============================================================
cfn_firehose           AWS::KinesisFirehose::DeliveryStream in CloudFormation
cfn_alarm              AWS::CloudWatch::Alarm in CloudFormation
cfn_kinesis            StreamEncryption / StreamModeSpecification of AWS::Kinesis::Stream
cfn_ec2                AWS::EC2::Instance launched from a LaunchTemplate
cfn_s3                 deleting a non-empty AWS::S3::Bucket fails (DELETE_FAILED)
cfn_changeset          Outputs/exports of stacks created or updated by change sets
cfn_events             per-resource stack events; updates no longer drop resources
cfn_failures           CREATE_FAILED + rollback (etc.) instead of HTTP 500
cfn_delete_order       stack delete/rollback in reverse dependency order, one attempt each
cfn_vpc                deletes of route tables, routes, associations, IGWs, attachments
ec2_vpc                launch ENIs deleted with the instance; DeleteVpc checks/cleans like AWS
cfn_bucket_policy      AWS::S3::BucketPolicy in CloudFormation
cfn_log_stream         AWS::Logs::LogStream in CloudFormation
cfn_placeholder        other unsupported types recorded in the stack (events, listing)
cfn_resources          Describe/ListStackResources from template + events, never re-creating
firehose_delivery      Kinesis -> Firehose -> S3 delivery with buffering, GZIP, prefixes
kinesis_shards         no lost records under concurrent PutRecords; O(1) sequence numbers
kinesis_reshard        closed shards end, keep their records; sequence numbers validated
dynamodb_update        a refused UpdateItem changes nothing (no key-only or half-updated item)
dynamodb_transactions  a cancelled TransactWriteItems undoes its own items, not whole tables
server_dispatch        no directory listing per request in the server's dispatcher
=====================  ==============================================================

Two modules are shared by the others and patch nothing themselves:
``cfn_resource_handler`` is the one base of the resource handlers above
(cfn_firehose, cfn_alarm, cfn_log_stream, cfn_bucket_policy), and
``stack_events_core`` the shared core of stack events (cfn_events,
cfn_failures, cfn_delete_order, cfn_placeholder).

``apply_all()`` installs them; ``python -m streamstack_emulator`` runs the server.
"""

from __future__ import annotations

import moto

MOTO_VERSION = "5.2.1"  # the version whose internals these patches were written against
REQUIREMENTS = "scripts/requirements-emulator.txt"  # pins moto[server]==MOTO_VERSION


class UnsupportedMotoVersion(RuntimeError):
    """The installed moto is not the one the extensions were written for."""


def check_moto_version(installed: str | None = None) -> None:
    """Refuse any moto but MOTO_VERSION (default: the installed one).

    The extensions patch moto's internals; on another version they may fail
    outright or, worse, patch the wrong thing and let a gap through unseen.
    """
    installed = moto.__version__ if installed is None else installed
    if installed != MOTO_VERSION:
        raise UnsupportedMotoVersion(
            f"moto {installed} is installed, but the streamstack emulator extensions were written for "
            f"moto {MOTO_VERSION} (the only version supported: they patch moto's internals). "
            f"Install the pinned one: .venv/emulator/bin/python -m pip install -r {REQUIREMENTS} "
            f"(it pins moto[server]=={MOTO_VERSION}). To move to another moto, change that pin and "
            "MOTO_VERSION in scripts/emulator/streamstack_emulator/__init__.py together, then run "
            "`scripts/emulator.sh test` (scripts/emulator/README.md, \"Upgrading moto\")."
        )


def apply_all(start_delivery: bool = True, tick: float = 0.5) -> object | None:
    """Install every extension; returns the Firehose delivery loop when started.

    Raises UnsupportedMotoVersion, before patching anything, on a moto other than MOTO_VERSION.
    """
    check_moto_version()
    from moto.cloudformation import parsing

    # Defining these CloudFormationModel subclasses registers their types...
    from . import (
        cfn_alarm,
        cfn_bucket_policy,
        cfn_changeset,
        cfn_delete_order,
        cfn_ec2,
        cfn_events,
        cfn_failures,
        cfn_firehose,
        cfn_kinesis,
        cfn_log_stream,
        cfn_placeholder,
        cfn_resources,
        cfn_s3,
        cfn_vpc,
        dynamodb_transactions,
        dynamodb_update,
        ec2_vpc,
        kinesis_reshard,
        kinesis_shards,
        server_dispatch,
    )

    # ...once moto's cached type -> model maps are rebuilt.
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()

    cfn_firehose.apply()
    cfn_alarm.apply()
    cfn_kinesis.apply()
    cfn_ec2.apply()
    cfn_s3.apply()
    cfn_changeset.apply()
    cfn_events.apply()
    cfn_failures.apply()  # after cfn_changeset: it wraps the wrapped execute_change_set
    cfn_delete_order.apply()
    cfn_vpc.apply()
    ec2_vpc.apply()
    cfn_bucket_policy.apply()
    cfn_log_stream.apply()
    cfn_placeholder.apply()
    cfn_resources.apply()
    kinesis_shards.apply()
    kinesis_reshard.apply()
    dynamodb_update.apply()
    dynamodb_transactions.apply()
    server_dispatch.apply()

    if start_delivery:
        from . import firehose_delivery

        return firehose_delivery.apply(tick)
    return None
