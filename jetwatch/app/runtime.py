"""How the interpreter is set for a long-running daemon: the GIL's switch interval and the
garbage collector's pace. Called once, before the daemon starts."""

from __future__ import annotations

import gc
import sys

# Worker threads (ledger, stats, scans) give up the GIL for every syscall and must wait for
# the loop to hand it back: by default up to 5 ms each, so 1,000 stats beside a busy loop
# took seconds. 0.2 ms keeps them moving at little cost to the loop.
SWITCH_INTERVAL_S = 0.0002
# A burst keeps some 200,000 objects alive for seconds (files settling, batches forming).
# With CPython's default (700, 10, 10) a full collection ran every second or two of a
# 100,000-file burst and stopped the event loop for 70-165 ms each time. The youngest
# generations keep their pace (short-lived cycles are still freed young); the full
# collection runs ten times less often.
GC_THRESHOLDS = (700, 10, 100)


def tune_interpreter() -> None:
    """Switch interval and collector pace for the daemon; what start-up built (modules,
    models, settings) is frozen out of every later collection: it lives as long as we do."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
