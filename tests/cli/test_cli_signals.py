"""SIGTERM unwinds a tastelens command like an exception (its servers are stopped)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

CODE = """
import os, signal, sys, time
from tastelens.cli.main import install_signal_handlers
install_signal_handlers()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
finally:
    open(sys.argv[1], "w").write("closed")
"""


def test_sigterm_runs_finally_blocks_and_exits_143(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.run([sys.executable, "-c", CODE, str(marker)], timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert marker.read_text() == "closed"
