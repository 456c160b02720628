"""Small pieces of the console's HTML: escaping, sizes and ages, tables, the chart, progress.

Pure functions of plain values; everything that came from outside (folder names, paths,
reasons) goes through :func:`esc`. The chart is inline SVG drawn from the numbers, so it
needs neither JavaScript nor a library, and presentation attributes only (the page's
Content-Security-Policy allows no inline style).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
CHART_W, CHART_H = 240, 36


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def age(seconds: float | None) -> str:
    """``45s``, ``3m02s``, ``1h02m``, ``2d03h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def ago(then: float | None, now: float) -> str:
    return "-" if then is None else f"{age(now - then)} ago"


def size(n: float | None) -> str:
    """Bytes in binary units: ``1.5 GiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def clock(t: float | None) -> str:
    """A wall time as ``HH:MM:SSZ`` (UTC, like ``jetwatch status``)."""
    return "-" if t is None else time.strftime("%H:%M:%SZ", time.gmtime(t))


def stamp(t: float | None) -> str:
    """``<time>`` with the full UTC date in its datetime attribute."""
    if t is None:
        return "-"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return f'<time datetime="{iso}" title="{iso}">{clock(t)}</time>'


def badge(ok: bool | None, yes: str = "ok", no: str = "failing", unknown: str = "-") -> str:
    """A coloured word: ok / bad / unknown."""
    if ok is None:
        return f'<span class="badge">{esc(unknown)}</span>'
    cls = "ok" if ok else "bad"
    return f'<span class="badge {cls}">{esc(yes if ok else no)}</span>'


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int] | None = None
) -> str:
    """A table of already escaped cells; ``numeric`` columns are right-aligned."""
    right = numeric or set()

    def cell(tag: str, i: int, content: str) -> str:
        cls = ' class="num"' if i in right else ""
        return f"<{tag}{cls}>{content}</{tag}>"

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table_html}</div>'


def chart(first_minute_at: float, values: Sequence[int], label: str, unit: str = "files") -> str:
    """60 one-minute bars as inline SVG, each with a tooltip; the page draws it itself."""
    n = max(1, len(values))
    top = max(values, default=0)
    bar_w = CHART_W / n
    bars = []
    for i, value in enumerate(values):
        if value <= 0:
            continue
        h = max(1.0, value / top * (CHART_H - 2)) if top else 0.0
        minute = clock(first_minute_at + 60 * i)[:5]
        shown = size(value) if unit == "bytes" else f"{value} {unit}"
        bars.append(
            f'<rect x="{i * bar_w:.1f}" y="{CHART_H - h:.1f}" width="{max(1.0, bar_w - 1):.1f}" '
            f'height="{h:.1f}"><title>{esc(minute)}Z: {esc(shown)}</title></rect>'
        )
    total = sum(values)
    summary = size(total) if unit == "bytes" else f"{total} {unit}"
    peak = size(top) if unit == "bytes" else str(top)
    return (
        f'<figure class="chart"><svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
        f'aria-label="{esc(label)}: {esc(summary)} in the last hour" '
        f'preserveAspectRatio="none"><line x1="0" y1="{CHART_H - 0.5}" x2="{CHART_W}" '
        f'y2="{CHART_H - 0.5}" class="axis"/>{"".join(bars)}</svg>'
        f"<figcaption>{esc(label)}: {esc(summary)} in the last hour, peak {esc(peak)}/min"
        "</figcaption></figure>"
    )


def progress_cell(entry: Mapping[str, Any]) -> str:
    """A real ``<progress>`` bar with the numbers it stands for, rate and ETA."""
    p = entry.get("progress")
    if not isinstance(p, Mapping):
        return (
            '<progress aria-label="not polled yet"></progress> <span class="muted">waiting</span>'
        )
    fraction = float(p.get("fraction") or 0.0)
    pct = f"{fraction * 100:.0f}%"
    bytes_total = int(p.get("bytes_total") or 0)
    bar = (
        f'<progress value="{fraction:.4f}" max="1" data-batch="{esc(entry.get("batch_id"))}" '
        f'aria-label="{esc(pct)} done">{esc(pct)}</progress>'
    )
    facts = [pct, f"{p.get('files_done', 0)}/{p.get('files', 0)} files"]
    if bytes_total:
        facts.append(f"{size(p.get('bytes_done') or 0)} of {size(bytes_total)}")
    rate = p.get("bytes_per_second")
    if rate:
        facts.append(f"{size(rate)}/s")
    elif p.get("files_per_second"):
        facts.append(f"{float(p['files_per_second']):.1f} files/s")
    eta = p.get("eta_s")
    facts.append(f"ETA {age(eta)}" if eta is not None else "ETA -")
    if p.get("files_failed"):
        facts.append(f"{p['files_failed']} failed")
    return f'{bar} <span class="facts">{esc(" · ".join(facts))}</span>'
