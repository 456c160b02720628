"""What ``status`` and ``ledger`` ask a running daemon: its ``/status``, over loopback."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from jetwatch.app.output import table
from jetwatch.config.settings import DEFAULT_TARGET, parse_listen

DAEMON_TIMEOUT_S = 2.0


def daemon_url(listen: str) -> str | None:
    """Where a daemon with this ``[http] listen`` answers on this host; None when unknown."""
    address = parse_listen(listen)
    if address is None or address[1] == 0:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address[0], address[0])
    return f"http://[{host}]:{address[1]}" if ":" in host else f"http://{host}:{address[1]}"


def daemon_view(listen: str, timeout_s: float = DAEMON_TIMEOUT_S) -> dict[str, Any]:
    """``/status`` of the daemon, reduced to what the ledger cannot tell (API, jobs, ready)."""
    url = daemon_url(listen)
    if url is None:
        return {"url": None, "reachable": False, "error": "ops HTTP disabled or on port 0"}
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=timeout_s) as response:  # noqa: S310
            data = json.loads(response.read())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return {"url": url, "reachable": False, "error": str(reason)}
    keys = ("ready", "reasons", "api", "jobs", "in_doubt")
    return {"url": url, "reachable": True, **{k: data.get(k) for k in keys}}


def render_daemon(view: dict[str, Any]) -> str:
    """The daemon section of ``jetwatch status``."""
    if not view["reachable"]:
        where = f" at {view['url']}" if view["url"] else ""
        return f"DAEMON  not answering{where} ({view['error']})\n"
    lines = [f"DAEMON  {view['url']}  {'ready' if view['ready'] else 'NOT READY'}"]
    lines += [f"  - {reason}" for reason in view.get("reasons") or []]
    rows = [
        [
            j.get("folder") or "-",
            j.get("target") or DEFAULT_TARGET,
            j["job"],
            j["job_id"] or "-",
            "yes" if j["paused"] else "no",
            j["problem"] or "",
        ]
        for j in view.get("jobs") or []
    ]
    if rows:
        header = ["FOLDER", "TARGET", "JOB", "JOB ID", "PAUSED", "PROBLEM"]
        lines += table(header, rows, indent="  ")
    waits = view.get("in_doubt") or []
    if waits:
        lines.append(f"IN DOUBT ({len(waits)}): answer lost; sent again once nothing that may be")
        lines.append("  its first delivery is in progress (Jet then skips what arrived)")
        doubt_rows = [
            [str(w["batch_id"]), w["folder"],
             "deciding" if w["in_flight"] is None else str(w["in_flight"]),
             f"{w['resend_at_latest_in_s']:.0f}s"]
            for w in waits
        ]  # fmt: skip
        header = ["BATCH", "FOLDER", "IN FLIGHT", "RESENT AT THE LATEST IN"]
        lines += table(header, doubt_rows, indent="  ")
    return "\n".join(lines) + "\n"
