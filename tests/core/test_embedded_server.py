"""The embedded PostgreSQL after a SIGKILL: the killed process's pid stays in pgserver's handle
file, and without cleaning it a later clean exit would leave the postmaster running forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from app.core.db import drop_stale_handles
from tests.conftest import ROOT

ATTACH = """
import sys, time
from pathlib import Path
from app.core.db import start_embedded_server
server = start_embedded_server(Path(sys.argv[1]))
print(server.get_pid(), flush=True)
if sys.argv[2] == "wait":
    time.sleep(600)
"""


def _attach(pgdata: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ATTACH, str(pgdata), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _postmaster_stops(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def test_a_clean_exit_after_a_sigkill_stops_the_postmaster(tmp_path_factory: pytest.TempPathFactory) -> None:
    pgdata = tmp_path_factory.mktemp("pg-sigkill", numbered=True) / "pgdata"
    killed = _attach(pgdata, "wait")
    try:
        postmaster = int(killed.stdout.readline())
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    handles = json.loads((pgdata / ".handle_pids.json").read_text())
    assert killed.pid in handles  # what pgserver leaves behind
    try:
        clean = _attach(pgdata, "exit")
        out, err = clean.communicate(timeout=120)
        assert clean.returncode == 0, err
        assert int(out) == postmaster  # it attached to the running server
        assert _postmaster_stops(postmaster), "the postmaster outlived the last process using it"
        assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    finally:
        if psutil.pid_exists(postmaster):
            os.kill(postmaster, signal.SIGTERM)


def test_live_handles_are_kept(tmp_path: Path) -> None:
    handles = tmp_path / ".handle_pids.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    handles.write_text(json.dumps([os.getpid(), dead.pid]))
    assert drop_stale_handles(tmp_path) == [dead.pid]
    assert json.loads(handles.read_text()) == [os.getpid()]
    assert drop_stale_handles(tmp_path) == []
    assert drop_stale_handles(tmp_path / "missing") == []
