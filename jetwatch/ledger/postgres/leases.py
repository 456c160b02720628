"""Folder leases and the fleet in the PostgreSQL ledger: claim, renew, release, fence.

A lease row per folder holds its owner's token and identity and an expiry on the database
server's clock (``now()``), never a host's. One round (one transaction) is the member's
heartbeat, its renewals and releases, then claims up to its fair share of free or lapsed
folders with ``FOR UPDATE SKIP LOCKED``, so racing daemons never wait on each other. A
fenced write locks its folders' lease rows ``FOR SHARE`` while it checks them: a claim
cannot slip in between the check and the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jetwatch.domain.fleet import Fleet, FleetMember, FolderOwner, LeaseGrant, Member, fair_share
from jetwatch.errors import LeaseLostError
from jetwatch.ledger.postgres.conn import Conn

FORGET_MEMBERS_S = 86_400  # members silent this long leave the fleet view


def owned_clause(column: str) -> str:
    """SQL: ``column`` names a folder whose live lease is ``%(token)s``'s."""
    live = "SELECT folder FROM leases WHERE token = %(token)s AND expires_at > now()"
    return f"{column} IN ({live})"


async def fence(conn: Conn, folders: set[str], token: str) -> None:
    """Raise LeaseLostError unless ``token`` holds a live lease on every folder (locked)."""
    if not folders:
        return
    cursor = await conn.execute(
        "SELECT folder FROM leases WHERE folder = ANY(%s) AND token = %s "
        "AND expires_at > now() ORDER BY folder FOR SHARE",
        (sorted(folders), token),
    )
    held = {str(r[0]) for r in await cursor.fetchall()}
    if held != folders:
        missing = ", ".join(sorted(folders - held))
        raise LeaseLostError(f"this daemon does not hold the lease of {missing}: not acted on")


async def lease_round(
    conn: Conn, member: Member, folders: Sequence[str], lease_s: float, release: Sequence[str]
) -> LeaseGrant:
    """One heartbeat: renew what is ours, release ``release``, claim up to a fair share."""
    wanted = sorted(set(folders) - set(release))
    args: dict[str, object] = {
        "token": member.token,
        "host": member.host,
        "pid": member.pid,
        "version": member.version,
        "lease": lease_s,
        "folders": wanted,
        "forget": FORGET_MEMBERS_S,
    }
    await conn.execute(
        "INSERT INTO members (token, host, pid, version, started_at, heartbeat_at, expires_at) "
        "VALUES (%(token)s, %(host)s, %(pid)s, %(version)s, now(), now(), "
        "now() + make_interval(secs => %(lease)s)) ON CONFLICT (token) DO UPDATE SET "
        "heartbeat_at = now(), expires_at = excluded.expires_at",
        args,
    )
    await conn.execute(
        "DELETE FROM members WHERE expires_at < now() - make_interval(secs => %(forget)s)", args
    )
    # Released on purpose, or no longer configured here: free at once for the others.
    await conn.execute(
        "DELETE FROM leases WHERE token = %(token)s AND NOT folder = ANY(%(folders)s)", args
    )
    cursor = await conn.execute(
        "UPDATE leases SET expires_at = now() + make_interval(secs => %(lease)s) "
        "WHERE token = %(token)s AND folder = ANY(%(folders)s) RETURNING folder",
        args,
    )
    owned = {str(r[0]) for r in await cursor.fetchall()}
    cursor = await conn.execute("SELECT count(*) FROM members WHERE expires_at > now()")
    row = await cursor.fetchone()
    members = int(row[0]) if row else 1
    share = fair_share(len(wanted), members)
    if len(owned) < share:
        owned |= await _claim(conn, args, share - len(owned))
    surplus = 0
    if len(owned) > share and await _someone_short(conn, member.token, share):
        surplus = len(owned) - share
    return LeaseGrant(frozenset(owned), lease_s, members, surplus)


async def _claim(conn: Conn, args: dict[str, object], wanted: int) -> set[str]:
    """Free folders (no row) first, then lapsed ones; in an order of this member's own."""
    claim = {**args, "wanted": wanted}
    cursor = await conn.execute(
        "INSERT INTO leases (folder, token, host, pid, version, acquired_at, expires_at) "
        "SELECT f, %(token)s, %(host)s, %(pid)s, %(version)s, now(), "
        "now() + make_interval(secs => %(lease)s) FROM unnest(%(folders)s::text[]) AS f "
        "WHERE NOT EXISTS (SELECT 1 FROM leases WHERE folder = f) "
        "ORDER BY md5(f || %(token)s) LIMIT %(wanted)s ON CONFLICT (folder) DO NOTHING "
        "RETURNING folder",
        claim,
    )
    got = {str(r[0]) for r in await cursor.fetchall()}
    if len(got) < wanted:
        claim["wanted"] = wanted - len(got)
        cursor = await conn.execute(
            "UPDATE leases SET token = %(token)s, host = %(host)s, pid = %(pid)s, "
            "version = %(version)s, acquired_at = now(), "
            "expires_at = now() + make_interval(secs => %(lease)s) WHERE folder IN ("
            "SELECT folder FROM leases WHERE folder = ANY(%(folders)s) AND expires_at <= now() "
            "ORDER BY md5(folder || %(token)s) LIMIT %(wanted)s FOR UPDATE SKIP LOCKED) "
            "RETURNING folder",
            claim,
        )
        got |= {str(r[0]) for r in await cursor.fetchall()}
    return got


async def _someone_short(conn: Conn, token: str, share: int) -> bool:
    """Another live member owns fewer than ``share`` folders: handing one over helps."""
    cursor = await conn.execute(
        "SELECT 1 FROM members AS m WHERE m.expires_at > now() AND m.token <> %s AND "
        "(SELECT count(*) FROM leases AS l WHERE l.token = m.token AND l.expires_at > now()) "
        "< %s LIMIT 1",
        (token, share),
    )
    return await cursor.fetchone() is not None


async def leave(conn: Conn, token: str) -> None:
    """A clean stop: every lease of ``token`` is free now, the member is gone."""
    await conn.execute("DELETE FROM leases WHERE token = %s", (token,))
    await conn.execute("DELETE FROM members WHERE token = %s", (token,))


async def read_fleet(conn: Conn) -> Fleet:
    """Every member (live or recently seen) with its folders, and every folder's owner."""
    cursor = await conn.execute(
        "SELECT folder, token, host, pid, extract(epoch FROM expires_at - now()) "
        "FROM leases ORDER BY folder"
    )
    owners = tuple(
        FolderOwner(str(r[0]), str(r[2]), int(r[3]), float(r[4]), token=str(r[1]))
        for r in await cursor.fetchall()
    )
    cursor = await conn.execute(
        "SELECT token, host, pid, version, started_at, "
        "extract(epoch FROM now() - heartbeat_at), expires_at > now() "
        "FROM members ORDER BY host, pid"
    )
    members = []
    for token, host, pid, version, started, age_s, alive in await cursor.fetchall():
        mine = tuple(o.folder for o in owners if o.token == token and o.expires_in_s > 0)
        members.append(
            FleetMember(
                str(host), int(pid), str(version), _epoch(started), float(age_s), bool(alive),
                mine, token=str(token),
            )
        )  # fmt: skip
    return Fleet(shared=True, members=tuple(members), owners=owners)


def _epoch(value: datetime) -> float:
    return value.timestamp()
