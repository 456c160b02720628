"""The web console at ``/``: the daemon's ``/status`` rendered as one HTML page on the server.

It works without JavaScript (a ``<noscript>`` refresh reloads it); with it, ``console.js``
fetches ``/?part=live`` every few seconds and swaps in the live region: the same server
rendering, no client templates, no build step. Every asset is in the package. It shows
what ``/status`` shows (no secret is ever in it), and offers two actions when ``[http]
actions`` is on: each is a form that POSTs with the operator's token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jetwatch.ops.console_parts import (
    age,
    ago,
    badge,
    chart,
    esc,
    progress_cell,
    size,
    stamp,
    table,
)

REFRESH_S = 2  # what console.js waits between two fetches
NOSCRIPT_REFRESH_S = 10
STATES = ("STABLE", "BATCHED", "SUBMITTED", "TRANSFERRED", "DONE", "FAILED", "GONE")
WAITING = ("STABLE", "BATCHED", "SUBMITTED")
RETRY_PATH, RECHECK_PATH = "/actions/retry-failed", "/actions/recheck"

Data = Mapping[str, Any]


def render_page(data: Data, *, flash: str = "") -> str:
    """The whole page."""
    host = esc(data.get("host") or "")
    key_field = ""
    if data.get("actions"):
        key_field = (
            '<div id="token-bar" class="jsonly"><label>Token for actions '
            '<input type="password" id="console-token" autocomplete="off" '
            'spellcheck="false"></label></div>'
        )
    note = f'<p id="flash" role="status">{esc(flash)}</p>' if flash else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>jetwatch {host}</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        f'<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH_S}"></noscript>'
        '<script src="/static/console.js" defer></script></head>'
        f'<body data-refresh-s="{REFRESH_S}">{note}{key_field}'
        f'<div id="live" aria-live="off">{render_live(data)}</div>'
        '<footer><span id="conn" class="muted">live</span> · '
        '<a href="/status">/status</a> (JSON) · <a href="/metrics">/metrics</a> · '
        '<a href="/readyz">/readyz</a></footer></body></html>'
    )


def render_live(data: Data) -> str:
    """The part ``console.js`` replaces: header and every section."""
    return "".join(
        (
            _header(data),
            _folders(data),
            _in_flight(data),
            _held(data),
            _failed(data),
            _events(data),
        )
    )


def _header(data: Data) -> str:
    now = float(data.get("taken_at") or 0.0)
    ready = bool(data.get("ready"))
    reasons = "".join(f"<li>{esc(r)}</li>" for r in data.get("reasons") or [])
    ledger = data.get("ledger") or {}
    facts = [
        f"<span>version {esc(data.get('version'))}</span>",
        f"<span>up {esc(age(data.get('uptime_s')))}</span>",
        f"<span>ledger {esc(ledger.get('path'))} ({esc(size(ledger.get('bytes')))})</span>",
        f"<span>{esc(data.get('open_batches', 0))} batch(es) forming</span>",
        f"<span>at {stamp(now)}</span>",
    ]
    targets = []
    for kind, api in sorted(((data.get("api") or {}).get("targets") or {}).items()):
        name = api.get("name") or kind
        problem = (
            f' <span class="why">{esc(api.get("problem"))}</span>' if api.get("problem") else ""
        )
        targets.append(
            f"<li>{esc(name)} {badge(api.get('ok'), 'reachable', 'unreachable')}{problem}</li>"
        )
    return (
        '<header><h1>jetwatch <span class="host">'
        f"{esc(data.get('host') or '')}</span> {badge(ready, 'ready', 'not ready')}</h1>"
        f'<p class="facts">{" · ".join(facts)}</p>'
        + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
        + (f'<ul class="targets">{"".join(targets)}</ul>' if targets else "")
        + _notify(data.get("notify") or {})
        + "</header>"
    )


def _notify(notify: Data) -> str:
    if not notify.get("enabled"):
        return '<p class="notify muted">notifications: off ([notify] webhook_url)</p>'
    state = badge(notify.get("ok"), "ok", "failing", "nothing sent yet")
    counts = (
        f"{notify.get('sent', 0)} sent, {notify.get('dropped', 0) + notify.get('given_up', 0)} lost"
    )
    error = ""
    if notify.get("ok") is False:
        error = f' <span class="why">{esc(notify.get("last_error"))}</span>'
    return (
        f'<p class="notify">notifications to {esc(notify.get("origin"))} {state}'
        f" ({esc(counts)}){error}</p>"
    )


def _section(ident: str, title: str, count: int | None, body: str) -> str:
    shown = "" if count is None else f' <span class="count">{count}</span>'
    return f'<section id="{ident}"><h2>{esc(title)}{shown}</h2>{body}</section>'


def _folders(data: Data) -> str:
    now = float(data.get("taken_at") or 0.0)
    live_watch = data.get("watch") or {}
    jobs = {j.get("folder"): j for j in data.get("jobs") or []}
    history = data.get("throughput") or {}
    cards = [
        _folder_card(
            f, live_watch.get(f["folder"]), jobs.get(f["folder"]), history.get(f["folder"]), now
        )
        for f in data.get("folders") or []
    ]
    body = "".join(cards) or '<p class="muted">no folders yet</p>'
    return _section("folders", "Folders", len(cards), f'<div class="cards">{body}</div>')


def _folder_card(
    f: Data, watch: Data | None, job: Data | None, minutes: Data | None, now: float
) -> str:
    name = f["folder"]
    mode = (watch or f.get("watch") or {}).get("mode") or "-"
    why = (watch or f.get("watch") or {}).get("reason") or ""
    scan = f.get("last_scan") or {}
    counts = f.get("counts") or {}
    cells = "".join(
        f'<div class="state s-{s.lower()}"><b>{esc(counts.get(s, 0))}</b>'
        f"<span>{s.lower()}</span></div>"
        for s in STATES
    )
    scan_text = "no full scan yet"
    if scan:
        took = scan.get("duration_s")
        scan_text = f"last scan {ago(scan.get('at'), now)}, {scan.get('files')} files"
        scan_text += "" if took is None else f", took {took:.1f}s"
    waiting = sum(int(counts.get(s, 0)) for s in WAITING)
    oldest = f.get("oldest_pending_age_s")
    wait_text = f"{waiting} waiting, oldest {age(oldest)}" if waiting else "nothing waiting"
    mode_cls = {"events": "ok", "scan": "warn", "down": "bad"}.get(str(mode), "")
    lines = [
        f'<p><span class="badge {mode_cls}">{esc(mode)}</span> '
        f'<span class="why">{esc(why)}</span></p>',
        f'<p class="facts">{esc(scan_text)} · {esc(wait_text)}</p>',
    ]
    if job:
        lines.append(f'<p class="facts">{_job_text(job)}</p>')
    if watch and watch.get("blocked"):
        lines.append(f'<p class="why bad-text">{esc(watch["blocked"])}</p>')
    charts = ""
    if minutes:
        first = float(minutes.get("first_minute_at") or 0.0)
        charts = chart(first, minutes.get("files") or [], "files delivered per minute")
        charts += chart(first, minutes.get("bytes") or [], "bytes delivered per minute", "bytes")
    return (
        f'<article class="card folder" data-folder="{esc(name)}"><h3>{esc(name)}</h3>'
        f'{"".join(lines)}<div class="states">{cells}</div>{charts}</article>'
    )


def _job_text(job: Data) -> str:
    target = f"{job.get('target') or ''} {job.get('job') or ''}".strip()
    ident = job.get("job_id")
    text = esc(target) + ("" if not ident or ident == job.get("job") else f" ({esc(ident)})")
    if job.get("problem"):
        why = f'<span class="why">{esc(job["problem"])}</span>'
        return f'{text} <span class="badge bad">unusable</span> {why}'
    if job.get("paused"):
        return f'{text} <span class="badge warn">paused</span>'
    return f"{text} " + (
        '<span class="badge ok">ready</span>'
        if ident
        else '<span class="badge">not resolved</span>'
    )


def _in_flight(data: Data) -> str:
    items = data.get("in_flight") or []
    rows = [
        [
            esc(b.get("folder")),
            esc(b.get("batch_id")),
            f'<span class="mono">{esc(b.get("delivery_id") or "-")}</span>',
            esc(b.get("files")),
            esc(size(b.get("bytes"))),
            esc((b.get("progress") or {}).get("state") or "-"),
            esc(age(b.get("age_s"))),
            progress_cell(b),
        ]
        for b in items
    ]
    headers = ["folder", "batch", "delivery", "files", "size", "state", "age", "progress"]
    body = table(headers, rows, numeric={1, 3, 4, 6}) if rows else '<p class="muted">none</p>'
    return _section("in-flight", "Deliveries in flight", len(items), body)


def _held(data: Data) -> str:
    now = float(data.get("taken_at") or 0.0)
    items = data.get("held") or []
    rows = [
        [
            esc(b.get("folder")),
            esc(b.get("batch_id")),
            esc(b.get("files")),
            f'<span class="why">{esc(b.get("reason") or "")}</span>',
            f"{stamp(b.get('since'))} ({esc(ago(b.get('since'), now))})",
        ]
        for b in items
    ]
    body = table(["folder", "batch", "files", "why", "since"], rows, numeric={1, 2}) if rows else ""
    folders = sorted({str(b.get("folder")) for b in items})
    forms = "".join(
        _action(data, RECHECK_PATH, folder, f"Re-check {folder!r} now") for folder in folders
    )
    return _section(
        "held", "Held batches", len(items), (body + forms) or '<p class="muted">none</p>'
    )


def _failed(data: Data) -> str:
    now = float(data.get("taken_at") or 0.0)
    items = data.get("recent_failures") or []
    rows = [
        [
            esc(f.get("folder")),
            f'<span class="mono">{esc(f.get("relpath"))}</span>',
            f'<span class="why">{esc(f.get("error") or "")}</span>',
            esc(f.get("attempts")),
            esc(ago(f.get("updated_at"), now)),
        ]
        for f in items
    ]
    body = (
        table(["folder", "file", "reason", "attempts", "when"], rows, numeric={3}) if rows else ""
    )
    failed = {
        f["folder"]: int((f.get("counts") or {}).get("FAILED", 0))
        for f in data.get("folders") or []
    }
    forms = "".join(
        _action(data, RETRY_PATH, folder, f"Retry the {n} failed file(s) of {folder!r}")
        for folder, n in sorted(failed.items())
        if n
    )
    total = sum(failed.values())
    errors = data.get("post_action_errors") or []
    if errors:
        body += "<h3>Post-action errors (retried)</h3>" + table(
            ["folder", "file", "error", "when"],
            [
                [
                    esc(e.get("folder")),
                    f'<span class="mono">{esc(e.get("relpath"))}</span>',
                    f'<span class="why">{esc(e.get("error"))}</span>',
                    esc(ago(e.get("updated_at"), now)),
                ]
                for e in errors
            ],
        )
    return _section("failed", "Failed files", total, (body + forms) or '<p class="muted">none</p>')


def _action(data: Data, path: str, folder: str, label: str) -> str:
    if not data.get("actions"):
        return ""
    return (
        f'<form class="action" method="post" action="{path}">'
        f'<input type="hidden" name="folder" value="{esc(folder)}">'
        '<label class="nojs">token <input type="password" name="token" autocomplete="off"></label>'
        f'<button type="submit">{esc(label)}</button></form>'
    )


def _events(data: Data) -> str:
    events: Sequence[Data] = data.get("events") or []
    rows = [
        [
            stamp(e.get("at")),
            f'<span class="lvl lvl-{esc(e.get("level"))}">{esc(e.get("level"))}</span>',
            f'<span class="mono ev">{esc(e.get("event"))}</span>',
            f'<span class="ev">{esc(e.get("folder") or "")}</span>',
            f'<span class="why">{esc(e.get("text"))}</span>',
        ]
        for e in events
    ]
    body = table(["time", "level", "event", "folder", "details"], rows) if rows else ""
    return _section("events", "Recent events", len(events), body or '<p class="muted">none yet</p>')
