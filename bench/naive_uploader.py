"""The reference peer: a naive hot-folder uploader that POSTs one delivery per file it sees.

What a quick watchdog script does: watch the folder (``watchfiles`` here, as ``watchdog``
is not installed), and for each file created or modified POST it at once, one delivery
per file, with no settling, no batching and no memory of what was sent. Usage:
``python -m bench.naive_uploader URL JOB_ID ROOT``; stops on SIGTERM and prints one JSON
summary line (``posts``, ``errors``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp
from watchfiles import Change, awatch

CREDENTIALS = {"client_id": "demo", "client_secret": "demo-secret"}


async def token(session: aiohttp.ClientSession, url: str) -> str:
    body = {**CREDENTIALS, "grant_type": "client_credentials"}
    async with session.post(f"{url}/oauth/token", json=body) as response:
        return str((await response.json())["access_token"])


async def upload(url: str, job_id: str, root: str) -> dict[str, int]:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = {"posts": 0, "errors": 0}
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {await token(session, url)}"}
        target = f"{url}/v1/jobs/{job_id}/deliveries"
        ready = False
        async for changes in awatch(root, stop_event=stop, yield_on_timeout=True, rust_timeout=200):
            if not ready:
                ready = True
                print(json.dumps({"kind": "ready"}), flush=True)
            for path in sorted({p for change, p in changes if change is not Change.deleted}):
                if stop.is_set():
                    break
                try:
                    size = os.path.getsize(path)
                    if not os.path.isfile(path):
                        continue
                except OSError:
                    continue
                rel = "/" + os.path.relpath(path, root)
                body = {"objects": [{"relativePath": rel, "sizeInBytes": size}]}
                async with session.post(target, json=body, headers=headers) as response:
                    counts["posts" if response.status < 300 else "errors"] += 1
    return counts


def main() -> int:
    url, job_id, root = sys.argv[1:4]
    counts = asyncio.run(upload(url.rstrip("/"), job_id, os.path.abspath(root)))
    print(json.dumps({"kind": "summary", **counts}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
