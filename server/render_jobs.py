"""Which canvases have renders to do, and whose turn it is.

`LocalWork` is the single-process default: an in-memory round-robin of canvases, woken by events.
`SharedWork` is for several processes on PostgreSQL: canvases with work are rows of `render_jobs`, claimed
with `FOR UPDATE SKIP LOCKED` under a lease that the claiming worker renews; a worker that dies stops renewing,
its lease expires, and another worker takes the canvas over. One canvas is rendered by one worker at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict

from sqlalchemy import Engine

log = logging.getLogger("opendream.work")


class LocalWork:
    def __init__(self) -> None:
        self._dirty: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()

    def mark(self, canvas_id: str) -> None:
        self._dirty[canvas_id] = None
        self._wake.set()

    async def take(self) -> str:
        while not self._dirty:
            self._wake.clear()
            await self._wake.wait()
        canvas_id, _ = self._dirty.popitem(last=False)
        return canvas_id

    async def scan(self, canvas_ids: list[str]) -> None:
        for canvas_id in canvas_ids:
            self.mark(canvas_id)

    async def again(self, canvas_id: str) -> None:
        """More to do: back of the line, so that other canvases take their turn first."""
        self.mark(canvas_id)

    async def done(self, canvas_id: str) -> None:
        """Nothing left that can render now."""

    def pending(self) -> bool:
        return bool(self._dirty)

    async def waiting(self) -> list[str]:
        """The canvases marked as having work, in turn order."""
        return list(self._dirty)

    async def close(self) -> None:
        pass


class SharedWork:
    def __init__(
        self, engine: Engine, lease_s: float = 30.0, poll_s: float = 0.2, worker_id: str | None = None
    ) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.worker_id = worker_id or f"worker-{secrets.token_hex(4)}"
        self._claimed: dict[str, float] = {}  # canvas -> its requested_at when claimed
        self._renewer: asyncio.Task[None] | None = None

    async def scan(self, canvas_ids: list[str]) -> None:
        """Appends mark their canvases in the same transaction (see the store); this covers a start-up scan."""

        def mark_all() -> None:
            with self.engine.begin() as conn:
                for canvas_id in canvas_ids:
                    conn.exec_driver_sql(
                        "INSERT INTO render_jobs (canvas_id, requested_at) VALUES (%s, %s)"
                        " ON CONFLICT (canvas_id) DO NOTHING",
                        (canvas_id, time.time()),
                    )

        await asyncio.to_thread(mark_all)

    def _claim(self) -> tuple[str, float] | None:
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.exec_driver_sql(
                "UPDATE render_jobs SET claimed_by = %s, lease_until = %s WHERE canvas_id = ("
                " SELECT canvas_id FROM render_jobs WHERE lease_until IS NULL OR lease_until < %s"
                " ORDER BY requested_at FOR UPDATE SKIP LOCKED LIMIT 1"
                ") RETURNING canvas_id, requested_at",
                (self.worker_id, now + self.lease_s, now),
            ).first()
        return None if row is None else (row[0], row[1])

    async def take(self) -> str:
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_leases(), name="opendream-lease")
        while True:
            claimed = await asyncio.to_thread(self._claim)
            if claimed is not None:
                canvas_id, requested_at = claimed
                self._claimed[canvas_id] = requested_at
                return canvas_id
            await asyncio.sleep(self.poll_s)

    async def again(self, canvas_id: str) -> None:
        self._claimed.pop(canvas_id, None)

        def requeue() -> None:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE render_jobs SET claimed_by = NULL, lease_until = NULL, requested_at = %s"
                    " WHERE canvas_id = %s AND claimed_by = %s",
                    (time.time(), canvas_id, self.worker_id),
                )

        await asyncio.to_thread(requeue)

    async def done(self, canvas_id: str) -> None:
        requested_at = self._claimed.pop(canvas_id, None)

        def release() -> None:
            with self.engine.begin() as conn:
                # Asked again while we worked: leave the row for the next worker, unclaimed.
                deleted = conn.exec_driver_sql(
                    "DELETE FROM render_jobs WHERE canvas_id = %s AND claimed_by = %s AND requested_at = %s",
                    (canvas_id, self.worker_id, requested_at),
                ).rowcount
                if not deleted:
                    conn.exec_driver_sql(
                        "UPDATE render_jobs SET claimed_by = NULL, lease_until = NULL"
                        " WHERE canvas_id = %s AND claimed_by = %s",
                        (canvas_id, self.worker_id),
                    )

        await asyncio.to_thread(release)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if not self._claimed:
                continue
            claimed = list(self._claimed)

            def renew(claimed: list[str] = claimed) -> None:
                with self.engine.begin() as conn:
                    for canvas_id in claimed:
                        conn.exec_driver_sql(
                            "UPDATE render_jobs SET lease_until = %s WHERE canvas_id = %s AND claimed_by = %s",
                            (time.time() + self.lease_s, canvas_id, self.worker_id),
                        )

            try:
                await asyncio.to_thread(renew)
            except Exception:
                log.exception("renewing render leases failed")

    def pending(self) -> bool:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM render_jobs").scalar() > 0

    async def waiting(self) -> list[str]:
        def read() -> list[str]:
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT canvas_id FROM render_jobs ORDER BY requested_at LIMIT 1000")
                return [row[0] for row in rows]

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for canvas_id in list(self._claimed):
            with contextlib.suppress(Exception):
                await self.again(canvas_id)
