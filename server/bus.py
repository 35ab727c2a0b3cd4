"""Cross-process news over PostgreSQL LISTEN/NOTIFY, so clients on different replicas see one canvas.

`opendream_events` carries "canvas_id:head" and is sent by the append transaction itself (delivered on commit
only); each replica then reads the events from the database and delivers them in order. `opendream_ephemeral`
carries presence and render progress, which are never stored. `opendream_models` says that the models directory
was scanned again (`POST /api/models/rescan` on one replica): every other process scans it too, so that all
offer and accept the same models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.engine import make_url

log = logging.getLogger("opendream.bus")

EVENTS = "opendream_events"
EPHEMERAL = "opendream_ephemeral"
MODELS = "opendream_models"
MAX_PAYLOAD = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://…) as the connection string psycopg itself takes."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PostgresBus:
    def __init__(
        self,
        url: str,
        on_head: Callable[[str, int], None],
        on_message: Callable[[str, dict[str, Any]], None] | None = None,
        on_models: Callable[[], None] | None = None,
    ) -> None:
        self.dsn = libpq_dsn(url)
        self.origin = secrets.token_hex(6)
        self._on_head = on_head
        self._on_message = on_message
        self._on_models = on_models
        self._listener: asyncio.Task[None] | None = None
        self._sender: Any = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="opendream-bus")
        async with asyncio.timeout(10):
            await self._ready.wait()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._sender is not None:
            await self._sender.close()

    async def _listen(self) -> None:
        import psycopg

        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {EVENTS}")
                    await conn.execute(f"LISTEN {EPHEMERAL}")
                    await conn.execute(f"LISTEN {MODELS}")
                    self._ready.set()
                    delay = 0.5
                    async for notify in conn.notifies():
                        self._dispatch(notify.channel, notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lost the LISTEN connection; reconnecting in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            if channel == EVENTS:
                canvas_id, _, head = payload.rpartition(":")
                self._on_head(canvas_id, int(head))
            elif channel == EPHEMERAL and self._on_message is not None:
                message = orjson.loads(payload)
                if message.get("origin") != self.origin:
                    self._on_message(message["canvas_id"], message["message"])
            elif channel == MODELS and self._on_models is not None and payload != self.origin:
                self._on_models()
        except Exception:
            log.exception("could not handle a %s notification", channel)

    async def publish(self, canvas_id: str, message: dict[str, Any]) -> None:
        """Send an ephemeral message (presence, progress) to the other replicas."""
        payload = orjson.dumps({"origin": self.origin, "canvas_id": canvas_id, "message": message}).decode()
        if len(payload) > MAX_PAYLOAD:
            log.warning("dropping a %d-byte ephemeral message for %s", len(payload), canvas_id)
            return
        await self._notify(EPHEMERAL, payload)

    async def announce_models(self) -> None:
        """Tell the other processes that the models directory was scanned again (they scan it too)."""
        await self._notify(MODELS, self.origin)

    async def _notify(self, channel: str, payload: str) -> None:
        import psycopg

        try:
            if self._sender is None or self._sender.closed:
                self._sender = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            await self._sender.execute("SELECT pg_notify(%s, %s)", (channel, payload))
        except Exception:
            log.exception("could not publish to other replicas")
            self._sender = None
