"""Run the benchmark scenarios and write ``results.json`` and ``results.md``.

``python -m bench.run --quick|--full [--only NAME ...] [--out DIR] [--profile]``; the
markdown table is printed at the end. Benchmarks print figures; they assert nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.scenarios._harness import (
    Context,
    Result,
    Row,
    load_avg,
    restore_queue_limit,
    restore_user_instances,
    say,
)
from bench.scenarios._tree import build_in_background, wait_for_background
from jetwatch import logs

SCENARIOS = (
    "ledger", "latency", "burst", "startup", "idle", "scan_only", "many_folders", "scaling",
    "postgres",
)  # fmt: skip
TREE_SCENARIOS = ("startup", "idle", "scan_only", "scaling")
PEERS = ("watchfiles", "inotifywait", "naive")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def run_one(name: str, ctx: Context) -> Result:
    module = importlib.import_module(f"bench.scenarios.{name}")
    say(f"--- {name} ---")
    started, load_before = time.monotonic(), load_avg()
    try:
        result: Result = await module.run(ctx)
    except Exception as exc:
        traceback.print_exc()
        result = Result(name, status=f"error: {type(exc).__name__}: {exc}")
    result.seconds = round(time.monotonic() - started, 1)
    # Other engineers' test suites share the machine: each scenario says how loaded it was.
    result.params["load_avg"] = {"start": load_before, "end": load_avg()}
    say(f"{name}: {result.status} in {result.seconds} s")
    return result


def fmt(value: float | str | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def peer_text(row: Row) -> str:
    """Peers' values, with jetwatch ÷ peer for each numeric one."""
    parts = []
    for peer, value in row.peers.items():
        text = f"{peer}: {fmt(value, row.unit)}"
        if isinstance(value, int | float) and value and row.value:
            text += f" (×{row.value / value:.2g})"
        parts.append(text)
    return "; ".join(parts)


def target_text(row: Row) -> str:
    parts = []
    if row.target is not None:
        parts.append(("≤ " if row.better == "lower" else "≥ ") + fmt(row.target, row.unit))
    if row.target_ratio is not None:
        parts.append(f"≤ {row.target_ratio:g}× floor")
    return ", ".join(parts)


def floor_text(row: Row) -> str:
    if row.floor is None:
        return ""
    label = f" ({row.floor_label})" if row.floor_label else ""
    return fmt(row.floor, row.unit) + label


def ratio_text(row: Row) -> str:
    ratio = row.ratio
    return "" if ratio is None else f"×{ratio:.3g}"


def markdown(results: list[Result], mode: str, info: dict[str, Any]) -> str:
    head = (
        f"jetwatch benchmarks ({mode}) — {info['cpus']} CPUs ({info['cpu']}), "
        f"{info['memory_gb']} GB RAM, Python {info['python']}, load at start "
        f"{info['load_avg_at_start']}"
    )
    lines = [
        head,
        "",
        "| scenario | metric | jetwatch | floor (same run) | ratio | target | met | peers |",
        "|---|---|---:|---:|---:|---:|:-:|---|",
    ]
    for result in results:
        if not result.rows:
            lines.append(f"| {result.scenario} | {result.status} | | | | | | |")
        for row in result.rows:
            met = {True: "yes", False: "**no**", None: ""}[row.ok]
            cells = [result.scenario, row.metric, fmt(row.value, row.unit), floor_text(row)]
            cells += [ratio_text(row), target_text(row), met, peer_text(row)]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for result in results:
        for table in result.tables:
            lines += [table, ""]
    for result in results:
        status = "" if result.status == "ok" else f" **{result.status}**"
        lines.append(f"- **{result.scenario}** ({result.seconds} s){status}: {result.params}")
        lines += [f"  - {note}" for note in result.notes]
        lines += [f"  - {r.metric}: {r.note}" for r in result.rows if r.note]
    return "\n".join(lines) + "\n"


def default_tmp() -> Path | None:
    """/var/tmp rather than /tmp: on ext4, creating files is slow (``recently_deleted`` scans
    the inode bitmap) in block groups where many files were just deleted, which is what
    test suites do all day in /tmp; /var/tmp is on local disk too and usually quiet."""
    var_tmp = Path("/var/tmp")
    return var_tmp if var_tmp.is_dir() and os.access(var_tmp, os.W_OK) else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--quick", action="store_true", help="reduced sizes, a few minutes")
    size.add_argument("--full", action="store_true", help="the issue's sizes; takes minutes")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="repeatable")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument(
        "--tmp", type=Path, default=default_tmp(), help="where to build trees (default %(default)s)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run daemons under cProfile (figures are then slower); writes profile-*.txt",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-peers", action="store_true", help="measure jetwatch only")
    parser.add_argument(
        "--logs", action="store_true", help="save each daemon's JSON log under OUT/logs/"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the big tree (and its ledger) here between runs; never removed",
    )
    return parser.parse_args(argv)


def check_space(work: Path, quick: bool) -> None:
    st = os.statvfs(work)
    need_inodes = 300_000 if quick else 4_000_000
    free_gb = st.f_bavail * st.f_frsize / 1e9
    say(f"work dir {work}: {free_gb:.0f} GB and {st.f_favail:,} inodes free")
    if st.f_favail < need_inodes or free_gb < (2 if quick else 8):
        raise SystemExit(f"not enough space in {work}: need {need_inodes:,} inodes")


async def run_all(names: list[str], ctx: Context, results: list[Result]) -> None:
    """Run the scenarios in order; the big tree is built while ``latency`` runs, if both
    it and a scenario that needs the tree are selected."""
    needs_tree = any(n in TREE_SCENARIOS for n in names)
    try:
        for name in names:
            if name == "latency" and needs_tree:
                build_in_background(ctx)
            else:
                try:
                    await wait_for_background(ctx)
                except Exception as exc:  # the scenario builds it again and reports
                    say(f"building the big tree in the background failed: {exc!r}")
            results.append(await run_one(name, ctx))
    finally:
        task = ctx.cache.pop("big_tree_task", None)
        if isinstance(task, asyncio.Task):
            task.cancel()


async def main_async(args: argparse.Namespace) -> int:
    mode = "quick" if args.quick else "full"
    logs.configure_logging("warning", "console")  # the in-process emulator's logs
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="jetwatch-bench-", dir=args.tmp))
    check_space(work, args.quick)
    ctx = Context(
        quick=args.quick,
        work=work,
        out=args.out,
        profile=args.profile,
        cache_dir=args.cache,
        peers=not args.no_peers,
        save_logs=args.logs,
    )
    results: list[Result] = []
    try:
        await run_all(args.only or list(SCENARIOS), ctx, results)
    finally:
        restore = ctx.cache.get("queue_limit_restore")
        if isinstance(restore, int):
            restore_queue_limit(restore)
        instances = ctx.cache.get("user_instances_restore")
        if isinstance(instances, int):
            restore_user_instances(instances)
        if not args.keep:
            say(f"removing {work}")
            await asyncio.to_thread(shutil.rmtree, work, True)
    data = {
        "mode": mode,
        "machine": info,
        "profiled": args.profile,
        "results": [result_json(r) for r in results],
    }
    (args.out / "results.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    table = markdown(results, mode + (", profiled" if args.profile else ""), info)
    (args.out / "results.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


def result_json(result: Result) -> dict[str, Any]:
    rows = [dataclasses.asdict(row) | {"ok": row.ok, "ratio": row.ratio} for row in result.rows]
    return dataclasses.asdict(result) | {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
