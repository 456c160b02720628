"""Ask the daemon's ops endpoints at a steady rate from a separate process; time each answer.

Usage: ``python -m bench.scenarios._prober BASE_URL [--rate HZ] [--slow-rate HZ]``
(/healthz, /readyz and / at ``--rate``, 5/s; /status and /metrics at ``--slow-rate``, 2/s).
One thread per path, each on a fixed schedule (a tick missed while an answer is late is
skipped, not caught up: a stall shows as one long answer, then the rate resumes), over a
kept-alive connection, so what is measured is the daemon's answer, not connecting. The
bench process is busy (emulator, file moves): probing from it would measure the bench.

JSON lines on stdout: ``{"kind": "ready"}``, then one ``sample`` per answer: ``p`` path,
``t`` epoch seconds when asked, ``s`` seconds to the whole answer, ``c`` HTTP status (0: no
answer), ``lag`` the ``loop_lag_s`` of a /healthz answer or the
``jetwatch_loop_lag_seconds`` gauge of a /metrics answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import signal
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

PATHS = ("/healthz", "/readyz", "/")
# /status reads the ledger (counts by state): asked 5×/s it would compete with the burst
# for the ledger; a dashboard asks every few seconds.
SLOW_PATHS = ("/status", "/metrics")
TIMEOUT_S = 10.0
GAUGE = "jetwatch_loop_lag_seconds"
_print_lock = threading.Lock()


def emit(kind: str, **data: Any) -> None:
    line = json.dumps({"kind": kind, **data})
    with _print_lock:
        print(line, flush=True)


def lag_of(path: str, body: bytes) -> float | None:
    try:
        if path == "/healthz":
            return float(json.loads(body)["loop_lag_s"])
        if path == "/metrics":
            for line in body.decode("utf-8", "replace").splitlines():
                if line.startswith(GAUGE + " ") or line.startswith(GAUGE + "{"):
                    return float(line.rsplit(" ", 1)[1])
    except (ValueError, KeyError, TypeError):
        return None
    return None


def probe(host: str, port: int, path: str, period_s: float, stop: threading.Event) -> None:
    conn: http.client.HTTPConnection | None = None
    start = time.monotonic()
    tick = 0
    while not stop.is_set():
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        asked_at, began = time.time(), time.perf_counter()
        status, lag = 0, None
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            status = response.status
            lag = lag_of(path, body)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = None
        took = time.perf_counter() - began
        emit("sample", p=path, t=asked_at, s=round(took, 6), c=status, lag=lag)
        # The next tick on the schedule that is still ahead of us.
        tick = max(tick + 1, math.ceil((time.monotonic() - start) / period_s))
        stop.wait(max(0.0, start + tick * period_s - time.monotonic()))
    if conn is not None:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=5.0, help="answers per second per path")
    parser.add_argument("--slow-rate", type=float, default=2.0, help="for /status, /metrics")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    plan = [(p, 1 / args.rate) for p in PATHS] + [(p, 1 / args.slow_rate) for p in SLOW_PATHS]
    threads = [
        threading.Thread(target=probe, args=(host, port, p, period, stop), daemon=True)
        for p, period in plan
    ]
    for thread in threads:
        thread.start()
    emit("ready")
    while not stop.is_set():
        stop.wait(0.5)
    for thread in threads:
        thread.join(TIMEOUT_S + 1)
    return 0


# -- in the bench process --------------------------------------------------------------------


def window(lines: list[dict[str, Any]], t0: float, t1: float) -> list[dict[str, Any]]:
    """The samples asked between t0 and t1 (epoch seconds)."""
    return [x for x in lines if x.get("kind") == "sample" and t0 <= float(x["t"]) <= t1]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def summarize(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per path: n, p50/p99/max answer seconds, the statuses seen; and the loop lag
    reported by /healthz (``loop lag (/healthz)``) and by the gauge (``loop lag (gauge)``)."""
    out: dict[str, dict[str, Any]] = {}
    series: dict[str, list[float]] = {}
    statuses: dict[str, set[int]] = {}
    for x in samples:
        path = str(x["p"])
        series.setdefault(path, []).append(float(x["s"]))
        statuses.setdefault(path, set()).add(int(x["c"]))
        if x.get("lag") is not None:
            key = "loop lag (/healthz)" if path == "/healthz" else "loop lag (gauge)"
            series.setdefault(key, []).append(float(x["lag"]))
    for key, values in series.items():
        out[key] = {
            "n": len(values),
            "p50": _pct(values, 50),
            "p99": _pct(values, 99),
            "max": max(values),
            "statuses": sorted(statuses.get(key, set())),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
