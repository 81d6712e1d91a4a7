"""SIGTERM and SIGHUP unwind a tastelens command like an exception (its servers are
stopped), and the `tastelens` console script is the entry point that installs the handlers
(tests/cli/test_api_children.py checks it over a real process tree)."""

from __future__ import annotations

import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

CODE = """
import os, signal, sys, time
from tastelens.cli.main import install_signal_handlers
install_signal_handlers()
try:
    os.kill(os.getpid(), int(sys.argv[2]))
    time.sleep(30)
finally:
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal does not cut the unwinding short
    open(sys.argv[1], "w").write("closed")
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_run_finally_blocks(signum: int, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.run([sys.executable, "-c", CODE, str(marker), str(int(signum))],
                          timeout=60)
    assert proc.returncode == 128 + signum
    assert marker.read_text() == "closed"


def test_the_console_script_installs_the_handlers() -> None:
    # The script used to be the typer app itself, so main() (and its handlers) never ran
    # and `kill` of `tastelens api` orphaned its vLLM server.
    (script,) = entry_points(group="console_scripts", name="tastelens")
    assert script.value == "tastelens.cli.main:main"
    wrapper = (Path(sys.executable).with_name("tastelens")).read_text()
    assert "from tastelens.cli.main import main" in wrapper, (
        "the installed `tastelens` script is stale: reinstall (pip install -e .)")
