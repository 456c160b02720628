"""What only the PostgreSQL ledger has: folder leases, fencing, the fleet, refusing bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from jetwatch.domain.fleet import Member
from jetwatch.domain.states import BatchState
from jetwatch.errors import LeaseLostError, LedgerCorruptError, LedgerError, LedgerUnavailableError
from jetwatch.ledger.postgres.importer import copy_sqlite
from jetwatch.ledger.postgres.ledger import PostgresLedger
from jetwatch.ledger.postgres.schema import SCHEMA_VERSION
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.ledger import T0, delivered, make_keys, submitted_batch
from tests.fixtures.postgres import PASSWORD, PgCluster


def member(n: int) -> Member:
    return Member(f"token-{n}", f"host-{n}", 1000 + n, "test")


@pytest.fixture
async def ledgers(pg_url: str) -> AsyncIterator[list[PostgresLedger]]:
    """Three daemons' ledgers on one fresh database."""
    opened = [await PostgresLedger.open(pg_url, member=member(n)) for n in range(3)]
    yield opened
    for ledger in opened:
        await ledger.aclose()


def lapse(url: str, folder: str) -> None:
    """Make a folder's lease lapse now, as if its owner had stopped renewing."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE leases SET expires_at = now() - interval '1 second' WHERE folder = %s",
            (folder,),
        )


async def test_one_owner_per_folder_and_a_standby(ledgers: list[PostgresLedger]) -> None:
    """The first daemon owns the folder; the second stands by and its fenced writes fail."""
    a, b, _ = ledgers
    assert (await a.lease_round(["cams"], 30)).owned == {"cams"}
    grant = await b.lease_round(["cams"], 30)
    assert (grant.owned, grant.members) == (frozenset(), 2)
    ids = await a.add_stable("cams", make_keys(2), T0)
    batch_id = await a.create_batch("cams", ids, T0)
    with pytest.raises(LeaseLostError):
        await b.mark_submitting(batch_id, "job", T0)
    with pytest.raises(LeaseLostError):
        await b.create_batch("cams", ids, T0)
    assert (await a.batch(batch_id)).state == BatchState.OPEN  # the fence changed nothing
    await a.mark_submitting(batch_id, "job", T0)
    assert (await b.batch(batch_id)).state == BatchState.SUBMITTING


async def test_lapsed_lease_is_taken_over_and_fences_the_old_owner(
    ledgers: list[PostgresLedger], pg_url: str
) -> None:
    """After its lease lapsed (server clock), the old owner can neither submit nor post-act."""
    a, b, _ = ledgers
    await a.lease_round(["cams"], 30)
    done_ids = await delivered(a, "cams", make_keys(1, "sent"), T0)
    ids = await a.add_stable("cams", make_keys(1, "next"), T0)
    batch_id = await a.create_batch("cams", ids, T0)
    lapse(pg_url, "cams")
    with pytest.raises(LeaseLostError):  # lapsed, even before anyone took it
        await a.mark_submitting(batch_id, "job", T0)
    assert await a.pending_actions() == []
    assert (await b.lease_round(["cams"], 30)).owned == {"cams"}
    with pytest.raises(LeaseLostError):
        await a.mark_done(done_ids, T0)
    assert (await a.lease_round(["cams"], 30)).owned == frozenset()  # b's now
    assert [r.id for r in await b.pending_actions()] == done_ids
    await b.mark_done(done_ids, T0)
    fleet = await a.fleet()
    assert [(o.folder, o.host) for o in fleet.owners] == [("cams", "host-1")]
    assert {m.host: m.folders for m in fleet.members} == {"host-0": (), "host-1": ("cams",)}


async def test_folders_are_spread_and_handed_over(ledgers: list[PostgresLedger]) -> None:
    """Alone a daemon takes every folder; joiners make it report a surplus to hand over."""
    a, b, c = ledgers
    folders = [f"f{i}" for i in range(6)]
    assert (await a.lease_round(folders, 30)).owned == set(folders)
    assert (await b.lease_round(folders, 30)).owned == frozenset()
    grant = await a.lease_round(folders, 30)
    assert (grant.members, grant.surplus) == (2, 3)
    given = sorted(grant.owned)[-grant.surplus :]
    kept = await a.lease_round(folders, 30, release=given)
    assert kept.owned == set(folders) - set(given)
    assert (await b.lease_round(folders, 30)).owned == set(given)
    assert (await c.lease_round(folders, 30)).owned == frozenset()
    grant_a, grant_b = await a.lease_round(folders, 30), await b.lease_round(folders, 30)
    assert (grant_a.surplus, grant_b.surplus) == (1, 1)  # share of 2 each with three alive
    await a.lease_round(folders, 30, release=sorted(grant_a.owned)[-1:])
    await b.lease_round(folders, 30, release=sorted(grant_b.owned)[-1:])
    owned = [(await x.lease_round(folders, 30)).owned for x in (a, b, c)]
    assert [len(o) for o in owned] == [2, 2, 2]
    assert set().union(*owned) == set(folders)


async def test_leave_frees_every_lease_at_once(ledgers: list[PostgresLedger]) -> None:
    """A clean stop releases the folders: the standby takes them on its next round."""
    a, b, _ = ledgers
    await a.lease_round(["x", "y"], 30)
    await a.leave()
    grant = await b.lease_round(["x", "y"], 30)
    assert (grant.owned, grant.members) == ({"x", "y"}, 1)


async def test_a_folder_no_longer_configured_is_released(ledgers: list[PostgresLedger]) -> None:
    """Leases of folders a daemon no longer names are freed in its next round."""
    a, b, _ = ledgers
    await a.lease_round(["x", "y"], 30)
    await a.lease_round(["x"], 30)
    assert (await b.lease_round(["y"], 30)).owned == {"y"}


async def test_bad_input_is_refused_with_one_clear_message(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    """Wrong password, missing database, nothing listening, a foreign or newer schema."""
    url = pg_cluster.url(password=False)
    with pytest.raises(LedgerError, match="password authentication failed") as refused:
        await PostgresLedger.open(url, "wrong")
    assert "wrong" not in str(refused.value)
    with pytest.raises(LedgerError, match="does not exist"):
        await PostgresLedger.open(pg_cluster.url("no_such_db", password=False), PASSWORD)
    with pytest.raises(LedgerUnavailableError, match="cannot"):
        await PostgresLedger.open("postgresql://postgres@127.0.0.1:9/db", PASSWORD)
    foreign = pg_cluster.new_database()
    with psycopg.connect(foreign, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    with pytest.raises(LedgerCorruptError, match="not a jetwatch ledger"):
        await PostgresLedger.open(foreign)
    async with await PostgresLedger.open(pg_url):
        pass
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE jetwatch_meta SET value = %s WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION + 1),))  # fmt: skip
    with pytest.raises(LedgerCorruptError, match="newer than this jetwatch"):
        await PostgresLedger.open(pg_url)
    empty = pg_cluster.new_database()
    with pytest.raises(LedgerError, match="start the daemon once"):
        await PostgresLedger.open(empty, readonly=True)


async def test_copy_from_sqlite_keeps_every_row_and_the_ids(tmp_path: Path, pg_url: str) -> None:
    """Files, batches and scans arrive with their ids, states and counts; ids go on after."""
    source = tmp_path / "ledger.db"
    async with await SqliteLedger.open(source) as lite:
        await lite.record_scan("cams", mode="events", mode_reason="inotify", finished_at=T0,
                               files_seen=3, duration_s=0.1)  # fmt: skip
        done = await delivered(lite, "cams", make_keys(2, "done"), T0)
        await lite.mark_done(done, T0)
        batch_id, _ = await submitted_batch(lite, "cams", make_keys(1, "flying"), T0, "dlv-1")
        await lite.add_stable("cams", make_keys(1, "waiting"), T0)
        before = await lite.counts()
        flying = await lite.batch(batch_id)
    async with await PostgresLedger.open(pg_url) as pg:
        report = await copy_sqlite(source, pg)
        assert (report.files, report.batches, report.folders) == (4, 2, 1)
        assert await pg.counts() == before
        assert await pg.batch(batch_id) == flying
        assert await pg.known_delivery_ids() == {"dlv-1", "dlv-cams-done/000.mxf"}
        assert await pg.is_known("cams", make_keys(2, "done")[1])
        await pg.lease_round(["cams"], 60)
        (new_id,) = await pg.add_stable("cams", make_keys(1, "new"), T0)
        assert new_id == 5
        with pytest.raises(LedgerError, match="already holds"):
            await copy_sqlite(source, pg)


async def test_daemons_starting_together_on_an_empty_database_migrate_once(
    pg_cluster: PgCluster,
) -> None:
    """Several daemons creating the schema at the same moment: all open, one migrates."""
    url = pg_cluster.new_database()
    with capture_logs() as logs:
        opened = await asyncio.gather(*(PostgresLedger.open(url) for _ in range(4)))
    for ledger in opened:
        await ledger.aclose()
    assert [e["event"] for e in logs].count("ledger_migrated") == 1


async def test_records_that_only_repeat_work_do_not_wait_for_the_wal_flush(
    ledgers: list[PostgresLedger],
) -> None:
    """tx(durable=False) commits with synchronous_commit off, for that transaction only;
    every other transaction (SUBMITTING before a POST among them) waits for the flush."""
    pg = ledgers[0]._pg

    async def setting(durable: bool) -> str:
        async with pg.tx(durable=durable) as conn:
            cursor = await conn.execute("SHOW synchronous_commit")
            row = await cursor.fetchone()
            assert row is not None
            return str(row[0])

    assert await setting(durable=False) == "off"
    assert await setting(durable=True) == "on"
    assert await setting(durable=False) == "off"
    assert await setting(durable=True) == "on"  # SET LOCAL ended with its transaction
