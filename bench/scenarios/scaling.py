"""How cost grows: 10,000 / 100,000 / 1,000,000 files (quick: 1,000 / 5,000 / 20,000).

For each size, each figure beside its floor measured in the same run on the same files,
and the ratio; a ratio that grows with N is flagged (it rises at every step and by more
than a quarter overall: the cost grows faster than the raw work does).

- burst time: all POSTed past last close + settle + linger; floor: stat each file twice,
  insert the rows into SQLite, build the POST bodies (``_floors``);
- start-up: ready over a tree of N files all DONE; floor: ``find -printf '%s %T@\\n'``;
- RSS after ready; floor: a process with the daemon's imports and the files' fingerprints;
- CPU per file: the daemon's CPU from the first rename to all POSTed ÷ N; floor: the CPU
  of the raw burst work ÷ N.

Start-ups that ``startup`` measured in the same run are reused, not run again; bursts are
always run here, without the endpoint probe ``burst`` runs beside its own.
"""

from __future__ import annotations

import itertools
from typing import Any

from bench.scenarios import startup
from bench.scenarios._burst import Outcome, jetwatch_burst
from bench.scenarios._emulator import BenchEmulator
from bench.scenarios._harness import Context, Result, say
from bench.scenarios._tree import tree

NAME = "scaling"
GROWTH = 1.25
# (key, label, unit, what the floor is)
FIGURES = (
    ("burst", "burst: all POSTed past close + settle + linger", "s", "stat ×2 + insert + bodies"),
    ("ready", "start-up: ready", "s", "find"),
    ("rss", "RSS after ready", "MB", "imports + fingerprint set"),
    ("cpu", "CPU per file (burst)", "µs", "raw CPU per file"),
)


def growth(ratios: list[float | None]) -> str:
    """ "grows ×k" when the ratio rises at every step and by more than GROWTH overall."""
    if any(r is None for r in ratios) or len(ratios) < 2:
        return "–"
    values = [float(r) for r in ratios if r is not None]
    rising = all(b > a for a, b in itertools.pairwise(values))
    overall = values[-1] / values[0] if values[0] else 0.0
    return f"**grows ×{overall:.2g}**" if rising and overall > GROWTH else "flat"


async def burst_of(ctx: Context, emu: BenchEmulator, n: int) -> Outcome:
    """A burst without the endpoint probe (``burst``'s own is probed, so it is not reused:
    every size is measured the same way, and the same size in ``burst`` shows what the
    probe costs)."""
    say(f"{NAME}: burst of {n:,} files")
    return await jetwatch_burst(ctx, emu, n, f"scale-{n}")


async def startup_of(ctx: Context, emu: BenchEmulator, n: int) -> dict[str, Any]:
    cached = ctx.cache.get(f"startup:{n}")
    if isinstance(cached, dict):
        return cached
    say(f"{NAME}: start-up over {n:,} files")
    got = await startup.measure(ctx, emu, await tree(ctx, n), f"scale-startup-{n}", drop=False)
    ctx.cache[f"startup:{n}"] = got
    return got


def figures(n: int, burst: Outcome, start: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key → (figure, floor) for one size."""
    fl = burst.floor or {}
    cpu_floor = fl.get("cpu_s")
    return {
        "burst": (burst.beyond_s, fl.get("wall_s")),
        "ready": (start.get("ready"), start["floors"]["find"]["wall_s"]),
        "rss": (start.get("rss_mb"), start["floors"]["memory"]["rss_mb"]),
        "cpu": (
            None if burst.cpu_s is None else 1e6 * burst.cpu_s / n,
            None if cpu_floor is None else 1e6 * cpu_floor / n,
        ),
    }


def ratio(pair: tuple[Any, Any]) -> float | None:
    value, floor = pair
    if value is None or not floor or value <= 0:
        return None  # as Row.ratio: a burst done within settle + linger has no own time
    return float(value) / float(floor)


def table(sizes: tuple[int, ...], per_size: dict[int, dict[str, tuple[Any, Any]]]) -> str:
    def num(x: Any) -> str:
        return "–" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}")

    head = ["files"]
    for _key, label, unit, floor in FIGURES:
        head += [f"{label} ({unit})", f"floor: {floor}", "ratio"]
    lines = ["How cost grows (figure, floor in the same run, ratio):", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for n in sizes:
        cells = [f"{n:,}"]
        for key, *_ in FIGURES:
            pair = per_size[n][key]
            r = ratio(pair)
            cells += [num(pair[0]), num(pair[1]), "–" if r is None else f"×{r:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    flags = ["ratio grows with N?"]
    for key, *_ in FIGURES:
        flags += ["", "", growth([ratio(per_size[n][key]) for n in sizes])]
    lines.append("| " + " | ".join(flags) + " |")
    return "\n".join(lines)


async def run(ctx: Context) -> Result:
    sizes = (1_000, 5_000, 20_000) if ctx.quick else (10_000, 100_000, 1_000_000)
    result = Result(NAME, {"sizes": list(sizes)})
    per_size: dict[int, dict[str, tuple[Any, Any]]] = {}
    async with BenchEmulator(ctx.work / NAME) as emu:
        for n in sizes:
            start = await startup_of(ctx, emu, n)
            if start.get("ready") is None:
                result.timeout(f"start-up over {n:,} files: not ready")
            burst = await burst_of(ctx, emu, n)
            if burst.timed_out:
                result.timeout(f"burst of {n:,} files: not all POSTed in time")
            per_size[n] = figures(n, burst, start)
    for key, label, unit, floor in FIGURES:
        pairs = [per_size[n][key] for n in sizes]
        ratios = [ratio(p) for p in pairs]
        shown = " → ".join("–" if r is None else f"×{r:.3g}" for r in ratios)
        result.add(
            f"{label} at {sizes[-1]:,} files (ratio by N: {shown}; {growth(ratios)})",
            pairs[-1][0],
            unit,
            floor=pairs[-1][1],
            floor_label=floor,
        )
    result.params["by_size"] = {
        str(n): {k: {"figure": v[0], "floor": v[1], "ratio": ratio(v)} for k, v in f.items()}
        for n, f in per_size.items()
    }
    result.tables.append(table(sizes, per_size))
    return result
