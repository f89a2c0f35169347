"""The emulator refuses a moto other than the one its extensions were written for.

The extensions patch moto's internals, so on another version they could patch
the wrong thing and let a gap through unseen: ``apply_all`` (and with it the
server and ``scripts/emulator.sh start``) fails with the installed version,
the supported one and the fix, instead of the warning it used to log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import moto
import pytest

from streamstack_emulator import MOTO_VERSION, REQUIREMENTS, UnsupportedMotoVersion, apply_all, check_moto_version

EMULATOR_DIR = Path(__file__).resolve().parents[1]  # scripts/emulator
REPO = EMULATOR_DIR.parents[1]


def assert_explains(message: str, installed: str) -> None:
    assert f"moto {installed} is installed" in message
    assert f"written for moto {MOTO_VERSION}" in message
    assert f"pip install -r {REQUIREMENTS}" in message
    assert "scripts/emulator.sh test" in message


def test_another_version_is_refused_with_the_fix() -> None:
    for installed in ("5.2.0", "5.3.0", "6.0.0.dev0"):
        with pytest.raises(UnsupportedMotoVersion) as refused:
            check_moto_version(installed)
        assert_explains(str(refused.value), installed)


def test_the_pinned_version_passes() -> None:
    check_moto_version(MOTO_VERSION)
    check_moto_version()  # the installed one: what scripts/requirements-emulator.txt pins


def test_the_message_names_the_pin_the_requirements_file_has() -> None:
    pins = re.findall(r"^moto\[server\]==(\S+)$", (REPO / REQUIREMENTS).read_text(), re.MULTILINE)
    assert pins == [MOTO_VERSION]


def test_apply_all_refuses_before_patching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(UnsupportedMotoVersion) as refused:
        apply_all(start_delivery=False)
    assert_explains(str(refused.value), "5.3.0")


def fake_moto_version(tmp_path: Path, version: str) -> dict[str, str]:
    """An environment whose Python processes see moto.__version__ == version."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import moto\nmoto.__version__ = {version!r}\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(EMULATOR_DIR)]))


def test_the_server_refuses_to_start(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.run(
        [sys.executable, "-m", "streamstack_emulator", "--port", "0", "--port-file", str(port_file)],
        cwd=tmp_path,
        env=fake_moto_version(tmp_path, "5.3.0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "refusing to start" in proc.stderr
    assert_explains(proc.stderr, "5.3.0")
    assert not port_file.exists()  # never listened


def test_emulator_sh_start_says_why(tmp_path: Path) -> None:
    # Port 0: nothing is ever bound, so no emulator anyone runs is touched.
    env = fake_moto_version(tmp_path, "5.3.0")
    env.update(STREAMSTACK_EMULATOR_PORT="0", STREAMSTACK_EMULATOR_STATE=str(tmp_path / "state"))
    proc = subprocess.run(
        [str(REPO / "scripts/emulator.sh"), "start"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "the emulator exited during start-up" in proc.stderr
    assert_explains(proc.stderr, "5.3.0")
    assert not (tmp_path / "state" / "emulator.pid").exists()
