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
    keys = ("ready", "reasons", "api", "jobs", "notify", "watch", "in_doubt")
    progress = {
        str(b.get("batch_id")): b["progress"]
        for b in data.get("in_flight") or []
        if b.get("progress")
    }
    return {"url": url, "reachable": True, **{k: data.get(k) for k in keys}, "progress": progress}


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
    lines += _notify_lines(view.get("notify") or {})
    lines += _notice_lines(view.get("watch") or {})
    lines += _in_doubt_lines(view.get("in_doubt") or [])
    return "\n".join(lines) + "\n"


def _in_doubt_lines(waits: list[dict[str, Any]]) -> list[str]:
    """Batches whose answer was lost, waiting until a re-send cannot copy twice."""
    if not waits:
        return []
    lines = [
        f"IN DOUBT ({len(waits)}): answer lost; sent again once nothing that may be",
        "  its first delivery is in progress (Jet then skips what arrived)",
    ]
    rows = [
        [str(w["batch_id"]), w["folder"],
         "deciding" if w["in_flight"] is None else str(w["in_flight"]),
         f"{w['resend_at_latest_in_s']:.0f}s"]
        for w in waits
    ]  # fmt: skip
    return lines + table(
        ["BATCH", "FOLDER", "IN FLIGHT", "RESENT AT THE LATEST IN"], rows, indent="  "
    )


def _notify_lines(notify: dict[str, Any]) -> list[str]:
    """The webhook's state: off, ok, or failing and why (never its URL's path)."""
    if not notify.get("enabled"):
        return []
    lost = int(notify.get("dropped") or 0) + int(notify.get("given_up") or 0)
    counts = f"{notify.get('sent', 0)} sent, {lost} lost, {notify.get('queued', 0)} queued"
    state = {True: "ok", False: "FAILING", None: "nothing sent yet"}[notify.get("ok")]
    line = f"  notify: webhook at {notify.get('origin')} {state} ({counts})"
    if notify.get("ok") is False:
        line += f": {notify.get('last_error')}"
    return [line]


def _notice_lines(watch: dict[str, Any]) -> list[str]:
    """Warnings about file versions the daemon saw (Jet skips them, or a writer paused)."""
    notices = [(label, n) for label, w in watch.items() for n in w.get("notices") or []]
    if not notices:
        return []
    lines = [f"  WARNINGS ({len(notices)})"]
    lines += [f"  ! {label}: {n['path']}: {n['text']}" for label, n in notices]
    return lines
