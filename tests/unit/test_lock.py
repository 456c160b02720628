"""The ledger lock allows one daemon per ledger and never outlives its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jetwatch.ledger.lock import LedgerInUseError, LedgerLock

HOLDER = """
import sys, time
from pathlib import Path
from jetwatch.ledger.lock import LedgerLock
LedgerLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_second_holder_is_refused_with_the_pid(tmp_path: Path) -> None:
    """A second lock on the same ledger fails and names the holder's pid."""
    ledger = tmp_path / "state" / "ledger.db"
    with LedgerLock(ledger), pytest.raises(LedgerInUseError, match=f"pid {os.getpid()}"):
        LedgerLock(ledger).acquire()
    with LedgerLock(ledger) as again:  # released on exit: free again
        assert again.path.read_text().strip() == str(os.getpid())


def test_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    """kill -9 of the holder frees the lock: a restart is never blocked by a stale lock."""
    ledger = tmp_path / "ledger.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ledger)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LedgerInUseError, match=f"pid {proc.pid}"):
            LedgerLock(ledger).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with LedgerLock(ledger):
        pass
