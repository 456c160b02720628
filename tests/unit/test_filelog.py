"""Per-file log lines: one file_delivered per file, summarised above the per-minute budget."""

from __future__ import annotations

from structlog.testing import capture_logs

from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.filelog import FileLines, LineBudget
from tests.fixtures.ledger import T0, make_keys, submitted_batch


def test_budget_is_all_or_nothing_and_refills_over_a_minute() -> None:
    budget = LineBudget(60)
    assert budget.take(50, 0.0)
    assert not budget.take(20, 0.0)  # 10 left: a batch of 20 is not half listed
    assert budget.take(10, 0.0)
    assert not budget.take(1, 0.5)
    assert budget.take(30, 30.5)  # one line a second came back
    assert not budget.take(61, 1000.0)  # never more than a minute's worth at once


async def test_each_file_is_named_then_bursts_are_summarised(sqlite_ledger: SqliteLedger) -> None:
    """A batch within the budget: a line per file; the next one over it: one summary."""
    lines = FileLines(sqlite_ledger, per_minute=5)
    first_id, _ = await submitted_batch(sqlite_ledger, "in", make_keys(3, "a"), T0, "dlv-1")
    second_id, _ = await submitted_batch(sqlite_ledger, "in", make_keys(4, "b"), T0, "dlv-2")
    with capture_logs() as logs:
        await lines.delivered(await sqlite_ledger.batch(first_id), size=303, now=0.0)
        await lines.delivered(await sqlite_ledger.batch(second_id), size=406, now=1.0)
    per_file = [e for e in logs if e["event"] == "file_delivered"]
    assert [e["path"] for e in per_file] == ["a/000.mxf", "a/001.mxf", "a/002.mxf"]
    assert per_file[0] | {"folder": "in", "bytes": 100, "delivery": "dlv-1"} == per_file[0]
    assert all(e["log_level"] == "info" for e in per_file)
    [summary] = [e for e in logs if e["event"] == "files_delivered"]
    assert summary["files"] == 4
    assert summary["bytes"] == 406
    assert summary["delivery"] == "dlv-2"
    assert summary["summarised"] is True


async def test_files_given_up_are_named_with_the_reason(sqlite_ledger: SqliteLedger) -> None:
    lines = FileLines(sqlite_ledger)
    batch_id, _ = await submitted_batch(sqlite_ledger, "in", make_keys(2), T0, "dlv-9")
    batch = await sqlite_ledger.batch(batch_id)
    files = await sqlite_ledger.batch_files(batch_id)
    with capture_logs() as logs:
        lines.failed(batch, files, "1 of 2 objects failed", 0.0)
    assert [(e["event"], e["path"], e["reason"]) for e in logs] == [
        ("file_failed", "clip/000.mxf", "1 of 2 objects failed"),
        ("file_failed", "clip/001.mxf", "1 of 2 objects failed"),
    ]
    assert all(e["log_level"] == "error" for e in logs)
