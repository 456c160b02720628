"""The ledger contract: every transition and its guard, intake, post-actions, status, upkeep.

Each test runs unchanged against both backends (the ``ledger`` fixture is parametrized over
SQLite and PostgreSQL); what only one backend has lives beside it (``test_ledger.py``,
``test_ledger_postgres.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from jetwatch.domain.settle import FileStat
from jetwatch.domain.states import (
    BatchState,
    FileKey,
    FileState,
    HoldReason,
    InvalidTransitionError,
    RetryPlan,
)
from jetwatch.domain.store import LedgerStore, key_fingerprint, unknown_files
from tests.fixtures.ledger import (
    BACKENDS,
    FOLDER,
    T0,
    delivered,
    make_keys,
    open_backend,
    stable_rows,
    states,
    submitted_batch,
    where,
)


@pytest.fixture(params=BACKENDS)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    """A fresh ledger of each backend, closed after the test."""
    async with await open_backend(request.param, tmp_path, request) as opened:
        yield opened


# intake


async def test_add_stable_is_idempotent(ledger: LedgerStore) -> None:
    """Adding the same keys again inserts nothing and returns no ids."""
    first = await ledger.add_stable(FOLDER, make_keys(5), T0)
    assert len(first) == 5
    assert first == sorted(first)
    assert await ledger.add_stable(FOLDER, make_keys(5), T0 + 1) == []
    assert await ledger.add_stable(FOLDER, [], T0) == []
    assert await states(ledger) == {"STABLE": 5}


async def test_add_stable_returns_only_new_ids(ledger: LedgerStore) -> None:
    """Of a mix of known and new keys, only the new rows' ids come back, in order."""
    keys = make_keys(6)
    await ledger.add_stable(FOLDER, keys[:3], T0)
    new = await ledger.add_stable(FOLDER, keys, T0 + 1)
    rows = {r.id: r for r in (await stable_rows(ledger, FOLDER))}
    assert [rows[i].relpath for i in new] == [k.relpath for k in keys[3:]]
    assert all(rows[i].stable_at == T0 + 1 for i in new)
    assert len(rows) == 6


async def test_same_key_in_other_folder_is_a_different_row(ledger: LedgerStore) -> None:
    """The folder is part of the key."""
    await ledger.add_stable("a", make_keys(2), T0)
    assert len(await ledger.add_stable("b", make_keys(2), T0)) == 2


async def test_add_stable_handles_100k_keys_in_one_call(ledger: LedgerStore) -> None:
    """A start-up scan's 100,000 new keys go in with one call and one transaction."""
    keys = [FileKey(f"d{i % 100}/f{i}.mxf", i, i, i) for i in range(100_000)]
    ids = await ledger.add_stable(FOLDER, keys, T0)
    assert len(ids) == 100_000
    assert len(await ledger.known_fingerprints(FOLDER)) == 100_000
    assert await states(ledger) == {"STABLE": 100_000}


async def test_known_fingerprints_match_key_fingerprint_except_gone(ledger: LedgerStore) -> None:
    """Fingerprints cover the folder's rows except GONE ones (never sent), and only that folder."""
    keys = [*make_keys(3), FileKey("huge-inode.mxf", 1, 2, 2**64 - 1)]
    ids = await ledger.add_stable(FOLDER, keys, T0)
    await ledger.mark_gone([ids[0]], T0)
    await ledger.add_stable("other", [FileKey("x", 1, 1, 1)], T0)
    expected = {key_fingerprint(k.relpath, k.size, k.mtime_ns, k.inode) for k in keys[1:]}
    assert await ledger.known_fingerprints(FOLDER) == expected
    assert await ledger.known_fingerprints("nobody") == set()


async def test_scan_filter_drops_exactly_the_files_the_ledger_knows(ledger: LedgerStore) -> None:
    """unknown_files (key_fingerprint inlined for the scan) agrees with the ledger's
    fingerprints, for an inode past 2**63 as well: known files drop, changed ones stay."""
    keys = [*make_keys(3), FileKey("huge-inode.mxf", 1, 2, 2**64 - 1)]
    await ledger.add_stable(FOLDER, keys, T0)
    known = await ledger.known_fingerprints(FOLDER)
    seen = [FileStat(k.relpath, k.size, k.mtime_ns, k.inode) for k in keys]
    changed = [FileStat(k.relpath, k.size + 1, k.mtime_ns, k.inode) for k in keys]
    assert unknown_files([*seen, *changed], known) == changed


async def test_gone_file_back_unchanged_is_revived(ledger: LedgerStore) -> None:
    """A GONE row whose file returns with the same key is STABLE again and returned as new."""
    keys = make_keys(2)
    ids = await ledger.add_stable(FOLDER, keys, T0)
    await ledger.create_batch(FOLDER, ids, T0)
    await ledger.mark_gone([ids[0]], T0 + 1)
    assert await ledger.add_stable(FOLDER, keys, T0 + 2) == [ids[0]]
    revived = await stable_rows(ledger, FOLDER)
    assert [(r.id, r.state, r.batch_id) for r in revived] == [(ids[0], FileState.STABLE, None)]


async def test_is_known_is_exact(ledger: LedgerStore) -> None:
    """is_known matches the whole key; a changed size, mtime or inode is unknown."""
    key = FileKey("a.mov", 10, 20, 2**63 + 5)
    await ledger.add_stable(FOLDER, [key], T0)
    assert await ledger.is_known(FOLDER, key)
    assert not await ledger.is_known(FOLDER, FileKey("a.mov", 11, 20, 2**63 + 5))
    assert not await ledger.is_known("other", key)
    assert (await stable_rows(ledger, FOLDER))[0].inode == 2**63 + 5


async def test_new_version_supersedes_an_unsent_stable_one(ledger: LedgerStore) -> None:
    """A second STABLE version of a path makes the first GONE: both would send the same bytes."""
    (old,) = await ledger.add_stable(FOLDER, [FileKey("a.mov", 1, 1, 1)], T0)
    (new,) = await ledger.add_stable(FOLDER, [FileKey("a.mov", 2, 2, 1)], T0 + 1)
    assert [q.file_id for q in await ledger.stable_queue(FOLDER, 10)] == [new]
    assert await states(ledger) == {"STABLE": 1, "GONE": 1}
    assert old != new


async def test_mark_gone_leaves_submitted_files_alone(ledger: LedgerStore) -> None:
    """STABLE and BATCHED rows become GONE; a row already submitted is skipped and not counted."""
    stable = await ledger.add_stable(FOLDER, make_keys(2, "s"), T0)
    _, sent = await submitted_batch(ledger, FOLDER, make_keys(1, "x"), T0, "d1")
    batched = await ledger.add_stable(FOLDER, make_keys(2, "b"), T0)
    batch_id = await ledger.create_batch(FOLDER, batched, T0)
    assert await ledger.mark_gone([*stable, batched[0], *sent, stable[0]], T0 + 1) == 3
    assert await states(ledger) == {"GONE": 3, "BATCHED": 1, "SUBMITTED": 1}
    assert (await ledger.batch(batch_id)).state == BatchState.OPEN
    assert await ledger.mark_gone([], T0) == 0


async def test_batch_left_without_files_fails(ledger: LedgerStore) -> None:
    """An OPEN batch whose every file vanished becomes FAILED, so it is never posted empty."""
    ids = await ledger.add_stable(FOLDER, make_keys(2), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0)
    await ledger.mark_gone(ids, T0 + 1)
    batch = await ledger.batch(batch_id)
    assert batch.state == BatchState.FAILED
    assert batch.last_error == "every file vanished before submission"
    assert await ledger.open_batches(T0 + 10) == []


# batching


async def test_stable_queue_orders_by_stable_at_and_limits(ledger: LedgerStore) -> None:
    """Oldest stable first, then id; limit caps the result; other folders are not mixed in."""
    late = await ledger.add_stable(FOLDER, make_keys(2, "late"), T0 + 5)
    early = await ledger.add_stable(FOLDER, make_keys(2, "early"), T0)
    await ledger.add_stable("other", make_keys(2), T0)
    assert [q.file_id for q in await ledger.stable_queue(FOLDER, 10)] == early + late
    assert [q.file_id for q in await ledger.stable_queue(FOLDER, 3)] == [*early, late[0]]


async def test_second_version_waits_until_first_is_done(ledger: LedgerStore) -> None:
    """A changed file is not offered while its first version is in flight, and is once DONE."""
    batch_id, (first,) = await submitted_batch(
        ledger, FOLDER, [FileKey("a.mov", 1, 1, 1)], T0, "d1"
    )
    (second,) = await ledger.add_stable(FOLDER, [FileKey("a.mov", 2, 2, 1)], T0 + 1)
    assert await ledger.stable_queue(FOLDER, 10) == []
    with pytest.raises(InvalidTransitionError, match="still in flight"):
        await ledger.create_batch(FOLDER, [second], T0 + 1)
    await ledger.complete_batch(batch_id, T0 + 2)
    assert await ledger.stable_queue(FOLDER, 10) == []  # TRANSFERRED: its post-action is pending
    await ledger.mark_done([first], T0 + 3)
    assert [q.file_id for q in await ledger.stable_queue(FOLDER, 10)] == [second]
    assert await ledger.create_batch(FOLDER, [second], T0 + 4) > batch_id


async def test_happy_path_through_every_state(ledger: LedgerStore) -> None:
    """STABLE → BATCHED → SUBMITTED → TRANSFERRED → DONE, batch OPEN → … → COMPLETED."""
    ids = await ledger.add_stable(FOLDER, make_keys(3), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0 + 1, not_before=T0 + 10)
    assert await ledger.open_batches(T0 + 5) == []
    assert await ledger.next_open_at() == T0 + 10
    (due,) = await ledger.open_batches(T0 + 10)
    assert (due.id, due.state, due.file_count, due.total_bytes) == (batch_id, "OPEN", 3, 303)
    assert {f.state for f in await ledger.batch_files(batch_id)} == {FileState.BATCHED}
    await ledger.mark_submitting(batch_id, "job-1", T0 + 11)
    assert [b.id for b in await ledger.in_doubt_batches()] == [batch_id]
    assert (await ledger.batch(batch_id)).job_id == "job-1"
    await ledger.mark_submitted(batch_id, "dlv-1", T0 + 12)
    assert await ledger.in_doubt_batches() == []
    assert [b.delivery_id for b in await ledger.submitted_batches(FOLDER)] == ["dlv-1"]
    assert await ledger.known_delivery_ids() == {"dlv-1"}
    assert (await ledger.batch(batch_id)).submitted_at == T0 + 12
    await ledger.complete_batch(batch_id, T0 + 13)
    assert (await ledger.batch(batch_id)).state == BatchState.COMPLETED
    assert [r.id for r in await ledger.pending_actions()] == ids
    await ledger.mark_done(ids, T0 + 14)
    assert await ledger.pending_actions() == []
    assert await states(ledger) == {"DONE": 3}
    assert all(f.action_done for f in await ledger.batch_files(batch_id))
    assert await ledger.next_open_at() is None


async def test_open_batches_filter_by_folder_and_due_time(ledger: LedgerStore) -> None:
    """open_batches returns due batches oldest first, optionally of one folder."""
    a = await ledger.create_batch("a", await ledger.add_stable("a", make_keys(1), T0), T0)
    b = await ledger.create_batch("b", await ledger.add_stable("b", make_keys(1), T0), T0)
    later = await ledger.create_batch(
        "a", await ledger.add_stable("a", make_keys(1, "z"), T0), T0, not_before=T0 + 60
    )
    assert [x.id for x in await ledger.open_batches(T0)] == [a, b]
    assert [x.id for x in await ledger.open_batches(T0 + 60, "a")] == [a, later]
    assert await ledger.next_open_at("b") == T0
    assert await ledger.next_open_at("none") is None


async def test_mark_submitted_counts_what_was_sent(ledger: LedgerStore) -> None:
    """A file that vanished before the POST stays GONE and is left out of the batch's counts."""
    ids = await ledger.add_stable(FOLDER, make_keys(3), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0)
    await ledger.mark_gone([ids[0]], T0)
    await ledger.mark_submitting(batch_id, "job", T0)
    await ledger.mark_submitted(batch_id, "dlv", T0)
    batch = await ledger.batch(batch_id)
    assert (batch.file_count, batch.total_bytes) == (2, 101 + 102)
    assert [f.state for f in await ledger.batch_files(batch_id)] == [
        "GONE",
        "SUBMITTED",
        "SUBMITTED",
    ]


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("open", lambda lg, b: lg.mark_submitted(b, "d", T0)),
        ("open", lambda lg, b: lg.complete_batch(b, T0)),
        ("open", lambda lg, b: lg.reopen(b, T0, T0, "x")),
        ("submitting", lambda lg, b: lg.mark_submitting(b, "job", T0)),
        ("submitting", lambda lg, b: lg.complete_batch(b, T0)),
        ("submitted", lambda lg, b: lg.mark_held(b, HoldReason.PAUSED, T0)),
        ("submitted", lambda lg, b: lg.reopen(b, T0, T0, None)),
        ("held", lambda lg, b: lg.mark_held(b, HoldReason.PAUSED, T0)),
        ("completed", lambda lg, b: lg.fail_batch(b, "late", T0, [], [])),
        ("completed", lambda lg, b: lg.mark_submitting(b, "job", T0)),
    ],
)
async def test_batch_transition_guards(
    ledger: LedgerStore, setup: str, action: Callable[[LedgerStore, int], object]
) -> None:
    """A transition from the wrong state raises and changes nothing."""
    ids = await ledger.add_stable(FOLDER, make_keys(2), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0)
    steps: dict[str, list[Callable[[], object]]] = {
        "submitting": [lambda: ledger.mark_submitting(batch_id, "job", T0)],
        "submitted": [
            lambda: ledger.mark_submitting(batch_id, "job", T0),
            lambda: ledger.mark_submitted(batch_id, "d", T0),
        ],
        "held": [lambda: ledger.mark_held(batch_id, HoldReason.PAUSED, T0)],
        "completed": [
            lambda: ledger.mark_submitting(batch_id, "job", T0),
            lambda: ledger.mark_submitted(batch_id, "d", T0),
            lambda: ledger.complete_batch(batch_id, T0),
        ],
    }
    for step in steps.get(setup, []):
        await step()
    before = (await ledger.batch(batch_id), await ledger.batch_files(batch_id))
    with pytest.raises(InvalidTransitionError):
        await action(ledger, batch_id)
    assert (await ledger.batch(batch_id), await ledger.batch_files(batch_id)) == before


async def test_unknown_batch(ledger: LedgerStore) -> None:
    """An unknown batch id raises KeyError on read and InvalidTransitionError on change."""
    with pytest.raises(KeyError):
        await ledger.batch(404)
    with pytest.raises(InvalidTransitionError, match="unknown batch"):
        await ledger.mark_submitting(404, "job", T0)
    assert await ledger.batch_files(404) == []


async def test_create_batch_guards(ledger: LedgerStore) -> None:
    """Only known STABLE files of the folder, one version per path, at least one file."""
    ids = await ledger.add_stable(FOLDER, make_keys(3), T0)
    other = await ledger.add_stable("other", make_keys(1), T0)
    await ledger.create_batch(FOLDER, ids[:1], T0)
    bad_calls: list[Callable[[], object]] = [
        lambda: ledger.create_batch(FOLDER, [], T0),
        lambda: ledger.create_batch(FOLDER, ids[1:2], T0, attempt=0),
        lambda: ledger.create_batch(FOLDER, ids[:2], T0),  # ids[0] already BATCHED
        lambda: ledger.create_batch(FOLDER, [ids[1], 999], T0),
        lambda: ledger.create_batch(FOLDER, [ids[1], *other], T0),
        lambda: ledger.create_batch(FOLDER, ids[1:], T0, parent_id=999),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidTransitionError):
            await call()
    assert await states(ledger) == {"STABLE": 2, "BATCHED": 1}
    assert len(await ledger.open_batches(T0)) == 1


async def test_hold_reopen_and_release(ledger: LedgerStore) -> None:
    """HELD keeps its reason; reopen and release_held bring it back to OPEN, due as asked."""
    ids = await ledger.add_stable(FOLDER, make_keys(2), T0)
    a = await ledger.create_batch(FOLDER, ids[:1], T0)
    b = await ledger.create_batch(FOLDER, ids[1:], T0)
    await ledger.mark_held(a, HoldReason.PAUSED, T0 + 1)
    await ledger.mark_submitting(b, "job", T0 + 1)
    await ledger.mark_held(b, HoldReason.FORBIDDEN, T0 + 2)
    assert [(x.id, x.held_reason) for x in await ledger.held_batches()] == [
        (a, "job paused"),
        (b, "forbidden (403)"),
    ]
    assert await ledger.held_batches("other") == []
    assert await ledger.open_batches(T0 + 100) == []
    assert await ledger.release_held([a, a, 999], T0 + 3) == 1
    released = await ledger.batch(a)
    assert (released.state, released.not_before, released.held_reason) == ("OPEN", T0 + 3, None)
    await ledger.reopen(b, T0 + 4, T0 + 30, None)
    reopened = await ledger.batch(b)
    assert (reopened.state, reopened.not_before) == (BatchState.OPEN, T0 + 30)


async def test_reopen_after_a_definite_post_failure(ledger: LedgerStore) -> None:
    """SUBMITTING → OPEN records the error and the new due time; files stay BATCHED."""
    ids = await ledger.add_stable(FOLDER, make_keys(2), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0)
    await ledger.mark_submitting(batch_id, "job", T0)
    await ledger.reopen(batch_id, T0 + 1, T0 + 20, "connection refused")
    batch = await ledger.batch(batch_id)
    assert (batch.state, batch.not_before, batch.last_error) == (
        "OPEN",
        T0 + 20,
        "connection refused",
    )
    assert await states(ledger) == {"BATCHED": 2}
    await ledger.mark_submitting(batch_id, "job", T0 + 20)
    await ledger.reopen(batch_id, T0 + 21, T0 + 40, None)
    assert (await ledger.batch(batch_id)).last_error == "connection refused"


# failing and retrying


async def test_fail_batch_rebatches_and_gives_up_in_one_transaction(ledger: LedgerStore) -> None:
    """A failed batch's files go to retry batches or FAILED; each counts one attempt."""
    batch_id, ids = await submitted_batch(ledger, FOLDER, make_keys(4), T0, "d1")
    plans = [RetryPlan((ids[0], ids[1]), 2, T0 + 30), RetryPlan((ids[2],), 2, T0 + 31)]
    new = await ledger.fail_batch(batch_id, "2 transfers failed", T0 + 5, plans, [ids[3]])
    failed = await ledger.batch(batch_id)
    assert (failed.state, failed.last_error) == (BatchState.FAILED, "2 transfers failed")
    first, second = [await ledger.batch(b) for b in new]
    assert (first.state, first.parent_id, first.attempt, first.not_before) == (
        BatchState.OPEN,
        batch_id,
        2,
        T0 + 30,
    )
    assert (first.file_count, second.file_count, second.not_before) == (2, 1, T0 + 31)
    assert [f.id for f in await ledger.batch_files(new[0])] == ids[:2]
    assert all(f.attempts == 1 and f.state == "BATCHED" for f in await ledger.batch_files(new[1]))
    (gave_up,) = await ledger.pending_actions()
    assert (gave_up.id, gave_up.state, gave_up.error, gave_up.attempts) == (
        ids[3],
        FileState.FAILED,
        "2 transfers failed",
        1,
    )
    assert await ledger.open_batches(T0 + 31) == [first, second]


async def test_retry_of_a_retry_counts_attempts(ledger: LedgerStore) -> None:
    """Failing a retry batch again adds another attempt to each of its files."""
    batch_id, ids = await submitted_batch(ledger, FOLDER, make_keys(2), T0, "d1")
    (retry,) = await ledger.fail_batch(batch_id, "x", T0, [RetryPlan(tuple(ids), 2, T0)], [])
    await ledger.mark_submitting(retry, "job", T0)
    await ledger.mark_submitted(retry, "d2", T0)
    await ledger.fail_batch(retry, "y", T0 + 1, [], ids)
    assert {(f.state, f.attempts, f.error) for f in await ledger.batch_files(retry)} == {
        (FileState.FAILED, 2, "y")
    }
    assert await ledger.known_delivery_ids() == {"d1", "d2"}


@pytest.mark.parametrize(
    ("retry_ids", "give_up"),
    [
        ([[0, 1]], [2]),  # file 3 missing
        ([[0, 1, 2]], [2, 3]),  # file 2 twice
        ([[0, 1]], [2, 3, 99]),  # an id not in the batch
        ([[]], [0, 1, 2, 3]),  # an empty plan
    ],
)
async def test_fail_batch_accounting_is_validated(
    ledger: LedgerStore, retry_ids: list[list[int]], give_up: list[int]
) -> None:
    """Unless every file is in exactly one retry or give_up, nothing changes at all."""
    batch_id, ids = await submitted_batch(ledger, FOLDER, make_keys(4), T0, "d1")
    pick = {i: ids[i] for i in range(4)} | {99: 99_999}
    plans = [RetryPlan(tuple(pick[i] for i in group), 2, T0) for group in retry_ids]
    with pytest.raises(InvalidTransitionError):
        await ledger.fail_batch(batch_id, "x", T0, plans, [pick[i] for i in give_up])
    assert (await ledger.batch(batch_id)).state == BatchState.SUBMITTED
    assert {(f.state, f.attempts) for f in await ledger.batch_files(batch_id)} == {("SUBMITTED", 0)}
    assert await ledger.open_batches(T0 + 1e6) == []


async def test_fail_an_open_batch_before_submission(ledger: LedgerStore) -> None:
    """A refused POST can fail an OPEN batch too; GONE files are not part of the accounting."""
    ids = await ledger.add_stable(FOLDER, make_keys(3), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0)
    await ledger.mark_gone([ids[2]], T0)
    (retry,) = await ledger.fail_batch(batch_id, "400", T0, [RetryPlan((ids[0],), 2, T0)], [ids[1]])
    assert [f.id for f in await ledger.batch_files(retry)] == [ids[0]]
    assert await states(ledger) == {"BATCHED": 1, "FAILED": 1, "GONE": 1}


async def test_fail_batch_skips_gone_files_the_caller_names(ledger: LedgerStore) -> None:
    """Plans built from batch_files may name GONE rows: they are dropped, never re-batched."""
    ids = await ledger.add_stable(FOLDER, make_keys(3), T0)
    batch_id = await ledger.create_batch(FOLDER, ids, T0)
    await ledger.mark_gone([ids[2]], T0)
    await ledger.mark_submitting(batch_id, "job", T0)
    await ledger.mark_submitted(batch_id, "d1", T0)
    plans = [RetryPlan((ids[0], ids[1]), 2, T0), RetryPlan((ids[2],), 1, T0)]
    (retry,) = await ledger.fail_batch(batch_id, "x", T0, plans, [])
    assert [(f.id, f.state) for f in await ledger.batch_files(retry)] == [
        (ids[0], FileState.BATCHED),
        (ids[1], FileState.BATCHED),
    ]
    assert (await ledger.batch(retry)).file_count == 2
    assert await states(ledger) == {"BATCHED": 2, "GONE": 1}


# post-actions


async def test_mark_done_is_all_or_nothing(ledger: LedgerStore) -> None:
    """mark_done on a row not TRANSFERRED raises and leaves the others TRANSFERRED too."""
    done = await delivered(ledger, FOLDER, make_keys(2), T0)
    (stable,) = await ledger.add_stable(FOLDER, make_keys(1, "s"), T0)
    with pytest.raises(InvalidTransitionError):
        await ledger.mark_done([*done, stable], T0)
    assert await states(ledger) == {"TRANSFERRED": 2, "STABLE": 1}
    await ledger.mark_done(done, T0)
    assert await states(ledger) == {"DONE": 2, "STABLE": 1}


async def test_failed_file_post_action_flow(ledger: LedgerStore) -> None:
    """A FAILED row waits for its post-action; errors show until it is handled."""
    batch_id, ids = await submitted_batch(ledger, FOLDER, make_keys(2), T0, "d1")
    await ledger.fail_batch(batch_id, "bad object", T0, [], ids)
    assert [r.id for r in await ledger.pending_actions(limit=1)] == ids[:1]
    await ledger.set_error(ids[0], "move failed: EACCES", T0 + 1)
    (row,) = [r for r in await ledger.pending_actions() if r.id == ids[0]]
    assert (row.state, row.error, row.action_error) == (
        "FAILED",
        "bad object",
        "move failed: EACCES",
    )
    assert [f.error for f in (await ledger.snapshot(T0 + 2)).action_errors] == [
        "move failed: EACCES"
    ]
    assert await ledger.mark_failed_handled([*ids, 12345], T0 + 2) == 2
    assert await ledger.pending_actions() == []
    assert (await ledger.snapshot(T0 + 3)).action_errors == ()
    assert await states(ledger) == {"FAILED": 2}


async def test_set_error_keeps_state_and_unknown_file_raises(ledger: LedgerStore) -> None:
    """set_error records the message without moving the row; an unknown id raises."""
    (file_id,) = await delivered(ledger, FOLDER, make_keys(1), T0)
    await ledger.set_error(file_id, "disk full", T0 + 1)
    (row,) = await ledger.pending_actions()
    assert (row.state, row.action_error, row.updated_at) == ("TRANSFERRED", "disk full", T0 + 1)
    with pytest.raises(InvalidTransitionError):
        await ledger.set_error(999, "x", T0)
    await ledger.mark_done([file_id], T0 + 2)
    assert (await ledger.batch_files(row.batch_id or 0))[0].action_error is None


async def test_requeue_failed_sends_again_unless_superseded(ledger: LedgerStore) -> None:
    """retry-failed makes FAILED rows STABLE with zero attempts; a newer version wins instead."""
    batch_id, ids = await submitted_batch(ledger, FOLDER, make_keys(2), T0, "d1")
    await ledger.fail_batch(batch_id, "x", T0, [], ids)
    (newer,) = await ledger.add_stable(FOLDER, [FileKey(make_keys(2)[1].relpath, 1, 1, 1)], T0)
    assert await ledger.requeue_failed(T0 + 5, "other") == 0
    assert await ledger.requeue_failed(T0 + 5) == 1
    pending = await stable_rows(ledger, FOLDER)
    assert [(r.id, r.attempts, r.error, r.batch_id) for r in pending] == [
        (newer, 0, None, None),
        (ids[0], 0, None, None),
    ]
    assert await states(ledger) == {"STABLE": 2, "FAILED": 1}


# status and upkeep


async def test_counts_per_folder_have_every_state(ledger: LedgerStore) -> None:
    """counts() maps folder → every state → count; a folder filter narrows it."""
    await ledger.add_stable("a", make_keys(2), T0)
    await delivered(ledger, "b", make_keys(1), T0)
    counts = await ledger.counts()
    assert set(counts) == {"a", "b"}
    assert set(counts["a"]) == {s.value for s in FileState}
    assert (counts["a"]["STABLE"], counts["b"]["TRANSFERRED"], counts["b"]["STABLE"]) == (2, 1, 0)
    assert list(await ledger.counts("b")) == ["b"]


async def test_snapshot_content(ledger: LedgerStore) -> None:
    """The snapshot holds folder counts and scans, in-flight, held, failures and ledger size."""
    await ledger.record_scan(
        FOLDER, mode="scan", mode_reason="nfs4 mount", finished_at=T0, files_seen=9, duration_s=2.5
    )
    await ledger.record_scan(
        FOLDER, mode="events", mode_reason="inotify", finished_at=T0 + 5, files_seen=10,
        duration_s=0.5,
    )  # fmt: skip
    await ledger.add_stable(FOLDER, make_keys(1, "waiting"), T0 + 1)
    flight, _ = await submitted_batch(ledger, FOLDER, make_keys(2, "f"), T0 + 2, "dlv-9")
    held_ids = await ledger.add_stable(FOLDER, make_keys(1, "h"), T0)
    held = await ledger.create_batch(FOLDER, held_ids, T0)
    await ledger.mark_held(held, HoldReason.PAUSED, T0 + 3)
    first, ids1 = await submitted_batch(ledger, FOLDER, make_keys(1, "bad1"), T0, "d1")
    await ledger.fail_batch(first, "older failure", T0 + 4, [], ids1)
    second, ids2 = await submitted_batch(ledger, FOLDER, make_keys(1, "bad2"), T0, "d2")
    await ledger.fail_batch(second, "newer failure", T0 + 6, [], ids2)
    await ledger.create_batch("other", await ledger.add_stable("other", make_keys(1), T0), T0)

    snap = await ledger.snapshot(T0 + 100, recent_failures=5)
    folder = {f.folder: f for f in snap.folders}[FOLDER]
    assert (folder.mode, folder.mode_reason, folder.files_seen) == ("events", "inotify", 10)
    assert (folder.last_scan_at, folder.scan_duration_s) == (T0 + 5, 0.5)
    assert folder.counts["STABLE"] == 1
    assert folder.counts["SUBMITTED"] == 2
    assert folder.counts["FAILED"] == 2
    assert folder.oldest_pending_at == T0  # the held file, stable since T0
    (in_flight,) = snap.in_flight
    assert (in_flight.batch_id, in_flight.delivery_id, in_flight.file_count) == (flight, "dlv-9", 2)
    assert in_flight.age_s == pytest.approx(98.0)
    assert [(h.batch_id, h.reason, h.since) for h in snap.held] == [(held, "job paused", T0 + 3)]
    assert [f.error for f in snap.recent_failures] == ["newer failure", "older failure"]
    assert snap.recent_failures[0].relpath == "bad2/000.mxf"
    assert snap.open_batches == 1
    assert snap.ledger_bytes == await ledger.size_bytes() > 0
    assert snap.ledger_path == where(ledger)
    assert [f.folder for f in snap.folders] == [FOLDER, "other"]
    assert (await ledger.snapshot(T0, recent_failures=1)).recent_failures[
        0
    ].error == "newer failure"


async def test_prune_deletes_only_old_finished_rows_whose_file_is_gone(
    ledger: LedgerStore, tmp_path: Path
) -> None:
    """Old DONE/GONE/handled FAILED rows of missing files go; everything else stays."""
    root = tmp_path / "folder"
    kept_on_disk = await delivered(ledger, FOLDER, make_keys(1, "still-here"), T0)
    (root / "still-here").mkdir(parents=True)
    (root / "still-here" / "000.mxf").write_bytes(b"x")
    moved_batch, gone_from_disk = await submitted_batch(
        ledger, FOLDER, make_keys(2, "moved"), T0, "dm"
    )
    await ledger.complete_batch(moved_batch, T0)
    await ledger.mark_done(kept_on_disk + gone_from_disk, T0)
    recent = await delivered(ledger, FOLDER, make_keys(1, "recent"), T0)
    await ledger.mark_done(recent, T0 + 5000)
    vanished = await ledger.add_stable(FOLDER, make_keys(1, "vanished"), T0)
    await ledger.mark_gone(vanished, T0)
    stable = await ledger.add_stable(FOLDER, make_keys(1, "waiting"), T0)
    batch_id, unhandled = await submitted_batch(ledger, FOLDER, make_keys(1, "failed"), T0, "df")
    await ledger.fail_batch(batch_id, "x", T0, [], unhandled)
    asked: list[str] = []

    def exists(folder: str, relpath: str) -> bool:
        asked.append(relpath)
        return (root / relpath).exists()

    removed = await ledger.prune(T0 + 6000, 3600, exists)
    assert removed == 3  # two moved + one vanished
    assert "waiting/000.mxf" not in asked
    remaining = (await ledger.counts())[FOLDER]
    assert (remaining["DONE"], remaining["GONE"], remaining["STABLE"], remaining["FAILED"]) == (
        2, 0, 1, 1,
    )  # fmt: skip
    assert not await ledger.is_known(FOLDER, make_keys(2, "moved")[0])
    assert await ledger.is_known(FOLDER, make_keys(1, "still-here")[0])
    assert stable[0] in [q.file_id for q in await ledger.stable_queue(FOLDER, 10)]
    # The moved files' batch has no file left and is old: it goes too; the others stay.
    with pytest.raises(KeyError):
        await ledger.batch(moved_batch)
    assert (await ledger.batch(batch_id)).state == BatchState.FAILED
    assert await ledger.known_delivery_ids() == {
        "df",
        "dlv-cams-still-here/000.mxf",
        "dlv-cams-recent/000.mxf",
    }


async def test_prune_walks_many_rows_in_chunks(ledger: LedgerStore) -> None:
    """More rows than one chunk are all pruned, and their empty batches with them."""
    ids = await delivered(ledger, FOLDER, make_keys(2_500), T0)
    await ledger.mark_done(ids, T0)
    assert await ledger.prune(T0 + 10, 5, lambda folder, relpath: False) == 2_500
    assert await ledger.counts() == {}
    assert await ledger.known_delivery_ids() == set()
    assert await ledger.prune(T0 + 10, 5, lambda folder, relpath: False) == 0


async def test_follow_version_takes_the_delivered_version(ledger: LedgerStore) -> None:
    """A growing file's SUBMITTED row takes the version Jet carried; the STABLE row of that
    version (never sent) goes; a row of it on its own way is left alone."""
    first = FileKey("rec.mxf", 10, 1, 7)
    final = FileKey("rec.mxf", 900, 5, 7)
    batch_id, [file_id] = await submitted_batch(ledger, FOLDER, [first], T0, "d1")
    await ledger.add_stable(FOLDER, [final], T0 + 1)
    assert [r.key for r in await stable_rows(ledger, FOLDER)] == [final]
    assert await ledger.follow_version(file_id, final, T0 + 2)
    assert await stable_rows(ledger, FOLDER) == []
    [row] = await ledger.batch_files(batch_id)
    assert (row.key, row.state) == (final, FileState.SUBMITTED)
    assert not await ledger.add_stable(FOLDER, [final], T0 + 3)  # known: not offered again
    with pytest.raises(InvalidTransitionError):
        await ledger.follow_version(file_id, FileKey("other.mxf", 1, 1, 1), T0 + 4)


async def test_earlier_versions_name_the_last_version_sent(ledger: LedgerStore) -> None:
    """For a new version, the newest older version of its path that was sent; none for a
    path never sent or only STABLE before."""
    v1, v2 = FileKey("a.mov", 10, 1, 1), FileKey("a.mov", 20, 2, 1)
    await ledger.mark_done(await delivered(ledger, FOLDER, [v1], T0), T0)
    await delivered(ledger, FOLDER, [v2], T0 + 1)
    (v3_id,) = await ledger.add_stable(FOLDER, [FileKey("a.mov", 20, 2, 9)], T0 + 2)
    (fresh_id,) = await ledger.add_stable(FOLDER, [FileKey("new.mov", 1, 1, 3)], T0 + 2)
    [found] = await ledger.earlier_versions(FOLDER, [v3_id, fresh_id])
    assert (found.new, found.old) == (FileKey("a.mov", 20, 2, 9), v2)
    assert (found.new_stable_at, found.old_stable_at) == (T0 + 2, T0 + 1)
    assert await ledger.earlier_versions(FOLDER, []) == []
