"""Fixtures: one extended moto server per test session, on a free 127.0.0.1 port.

The server runs as a subprocess (``python -m streamstack_emulator --port 0``),
exactly as ``scripts/emulator.sh start`` runs it, so these tests never touch
an emulator the developer already has running on 4566. Clients use dummy
credentials and us-east-1, and talk to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

EMULATOR_DIR = Path(__file__).resolve().parents[1]  # scripts/emulator
REGION = "us-east-1"

# Never let a developer's AWS profile or endpoint leak into the tests.
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
    os.environ.pop(_var, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION=REGION,
)
sys.path.insert(0, str(EMULATOR_DIR))  # for the in-process unit tests


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("emulator")
    port_file = workdir / "port"
    log_path = workdir / "emulator.log"
    env = dict(os.environ, PYTHONPATH=str(EMULATOR_DIR))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamstack_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--quiet",
            ],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"emulator did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        urllib.request.urlopen(f"{url}/moto-api/", timeout=10).read()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if os.environ.get("STREAMSTACK_EMULATOR_TEST_LOG"):
            sys.stderr.write(log_path.read_text(errors="replace"))


@pytest.fixture(scope="session")
def client(endpoint: str) -> Callable[[str], Any]:
    config = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})

    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=config)

    return make


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll until predicate() is truthy; return its value or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def deploy_with_change_set(cfn: Any, stack_name: str, template: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """CreateChangeSet(CREATE) + ExecuteChangeSet, the way the streamstack CLI deploys."""
    change_set = cfn.create_change_set(
        StackName=stack_name,
        ChangeSetName=f"{stack_name}-create",
        ChangeSetType="CREATE",
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        **kwargs,
    )
    wait_for(
        lambda: cfn.describe_change_set(ChangeSetName=change_set["Id"])["Status"] == "CREATE_COMPLETE",
        30,
        what="change set",
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    return wait_for(
        lambda: (lambda s: s if not s["StackStatus"].endswith("IN_PROGRESS") else None)(
            cfn.describe_stacks(StackName=change_set["StackId"])["Stacks"][0]
        ),
        60,
        what=f"stack {stack_name}",
    )
