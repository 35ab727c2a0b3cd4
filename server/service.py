"""The canvas service: the one way into the log.

Commands from every client of every canvas are queued to a single writer, which takes them in batches:
for each it checks idempotency and the expected version, decides the events against the latest state, and
then commits the whole batch in one durable transaction (group commit: one fsync for many commands). Only
after the commit are the callers answered and the events published, so an acknowledged event is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import orjson
from sqlalchemy.exc import IntegrityError

from server.core.blob_names import LayerOperations, blob_names
from server.core.commands import Command
from server.core.decide import CommandRejected, Decider, decide_fork
from server.core.event_registry import WAKING_EVENTS
from server.core.events import CanvasCreated, Event, EventData
from server.core.ids import new_event_id
from server.core.projection import empty_state, project
from server.core.snapshot import SNAPSHOT_SCHEMA_VERSION, LayerRows, decode_state, encode_state
from server.core.state import CanvasState
from server.core.values import value
from server.store.base import AppendRequest, CommandRecord, ConcurrencyError, EventStore, Snapshot, WriteTransaction

log = logging.getLogger("opendream.service")

EventListener = Callable[[str, Sequence[Event]], None]


@value
class CommandResult:
    canvas_id: str
    command_id: str | None
    events: tuple[Event, ...]
    version: int  # the canvas version right after this command
    duplicate: bool = False  # a retry: the original result, nothing appended

    @property
    def seqs(self) -> list[int]:
        return [event.seq for event in self.events]

    def to_json(self) -> dict:
        return {
            "canvas_id": self.canvas_id,
            "command_id": self.command_id,
            "version": self.version,
            "seqs": self.seqs,
            "duplicate": self.duplicate,
            "events": [event.to_json() for event in self.events],
        }


class CanvasNotFound(LookupError):
    def __init__(self, canvas_id: str) -> None:
        super().__init__(f"canvas {canvas_id!r} does not exist")
        self.canvas_id = canvas_id


@value
class RecordedEvent:
    """An event to copy into a new canvas (a fork, an imported workflow) with its original attribution."""

    data: EventData
    actor: str
    command_id: str | None
    timestamp: float
    gesture: str | None = None


@value
class PreparedImport:
    """A new canvas's whole log, numbered, folded and snapshotted outside the writer (a fork, an imported
    workflow). The writer only stores it, `IMPORT_SLICE` events per turn, so that a large import takes turns
    with every other canvas's commands instead of holding them up."""

    events: tuple[Event, ...]
    snapshots: tuple[Snapshot, ...]
    state: CanvasState
    blobs: tuple[str, ...] = ()  # the images the log names

    @property
    def name(self) -> str:
        return self.state.name


IMPORT_SLICE = 2000  # events of an import written per writer turn (a few ms of inserts)


@dataclass(slots=True)
class _Submission:
    canvas_id: str
    command: Command | CanvasCreated | PreparedImport
    actor: str
    command_id: str | None
    expected_version: int | None
    future: asyncio.Future[CommandResult]
    command_hash: str = ""
    written: int = 0  # events of a PreparedImport already stored (unlisted) by earlier turns
    gesture: str | None = None


class _Unfinished(Exception):
    """An import wrote one more slice and waits for its next turn."""


@dataclass(slots=True)
class _Staged:
    """A canvas's state within a batch being written."""

    base_version: int
    state: CanvasState
    events: list[Event] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    name_changed: bool = False
    preloaded: int = 0  # an import's events stored by earlier turns
    blobs: list[str] = field(default_factory=list)  # images the staged events name
    # The state right after each command that passed a multiple of snapshot_every: snapshotted there, not at the
    # batch's end, so that no version is more than snapshot_every - 1 events (and one command) from a snapshot.
    crossings: list[CanvasState] = field(default_factory=list)
    unlisted: bool = False  # an import's slice: stored without creating the canvas yet


def command_hash(command: Command | CanvasCreated | PreparedImport, expected_version: int | None) -> str:
    body = command.model_dump(mode="json") if hasattr(command, "model_dump") else {"create": command.name}
    raw = orjson.dumps({"command": body, "expected_version": expected_version}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


class CanvasService:
    def __init__(
        self,
        store: EventStore,
        decider: Decider,
        *,
        snapshot_every: int = 500,
        max_batch: int = 512,
        cache_size: int = 256,
    ) -> None:
        self.store = store
        self.decider = decider
        self.snapshot_every = snapshot_every
        self.max_batch = max_batch
        self._cache_size = cache_size
        self._latest: OrderedDict[str, CanvasState] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._queue: asyncio.Queue[_Submission] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        # One thread owns all writes: SQLite has one writer anyway, and the state cache stays single-writer.
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opendream-writer")
        self._listeners: list[EventListener] = []
        self._published: dict[str, int] = {}  # canvas -> last seq delivered to the listeners
        self._filling: dict[str, list[tuple[int, list[Event]]]] = {}  # canvas -> deliveries waiting for a read
        self._layer_rows = LayerRows()  # the writer thread's alone, like the snapshots it writes

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._write_loop(), name="opendream-writer")

    async def stop(self) -> None:
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
        self._writer_thread.shutdown(wait=True)

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Call `listener(canvas_id, events)` on the event loop after every commit; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # --- commands ----------------------------------------------------------------------------------------

    async def create_canvas(
        self, name: str, actor: str, canvas_id: str | None = None, command_id: str | None = None
    ) -> CommandResult:
        return await self._submit(
            canvas_id or "c" + secrets.token_hex(8), CanvasCreated(name=name), actor, command_id, 0
        )

    async def import_log(self, events: list[RecordedEvent], canvas_id: str | None = None) -> CommandResult:
        """A new canvas whose log starts with `events` (a fork, an imported workflow)."""
        if not events or not isinstance(events[0].data, CanvasCreated):
            raise ValueError("an imported log starts with canvas.created")
        canvas_id = canvas_id or "c" + secrets.token_hex(8)
        prepared = await asyncio.to_thread(self._prepare_import, canvas_id, events, None)
        return await self._submit(canvas_id, prepared, "import", None, 0)

    async def fork(self, canvas_id: str, version: int, actor: str) -> CommandResult:
        """A new canvas whose log is this one's first `version` events, recording where it came from. Its state
        is folded from the source's nearest snapshot, not from seq 1."""
        head = await asyncio.to_thread(self.store.head, canvas_id)
        if head is None:
            raise CanvasNotFound(canvas_id)
        log = await asyncio.to_thread(self.store.read, canvas_id, 0, max(0, min(version, head)))
        source = log[0].data if log else CanvasCreated("")
        assert isinstance(source, CanvasCreated)
        created = decide_fork(canvas_id, source, version, head)  # the decider's: refuses a version out of range
        origin = created.origin
        first = RecordedEvent(created, actor, None, time.time())
        copied = [RecordedEvent(event.data, event.actor, event.command_id, event.timestamp, event.gesture)
                  for event in log[1:]]  # fmt: skip
        snapshot = await asyncio.to_thread(self.store.snapshot_at_or_before, canvas_id, version)
        new_id = "c" + secrets.token_hex(8)
        base = None
        if snapshot is not None and snapshot.schema_version == SNAPSHOT_SCHEMA_VERSION and snapshot.version > 1:
            source = decode_state(snapshot.state)
            renamed = any(event.type == "canvas.renamed" for event in log[1 : snapshot.version])
            base = replace(source, canvas_id=new_id, origin=origin, name=source.name if renamed else first.data.name)
        prepared = await asyncio.to_thread(self._prepare_import, new_id, [first, *copied], base)
        return await self._submit(new_id, prepared, "import", None, 0)

    def _prepare_import(
        self, canvas_id: str, recorded: list[RecordedEvent], base: CanvasState | None
    ) -> PreparedImport:
        """Number and fold the log (from `base`, a state part-way through it, when given), keeping a snapshot
        at every boundary as if the events had been appended one by one."""
        new_events = tuple(
            Event(canvas_id, seq, new_event_id(), item.data, item.actor, item.command_id, item.timestamp,
                  item.data.schema_version, item.gesture)
            for seq, item in enumerate(recorded, start=1)
        )  # fmt: skip
        state = base if base is not None else empty_state(canvas_id)
        snapshots: list[Snapshot] = []
        if base is not None and base.version % self.snapshot_every == 0:
            snapshots.append(Snapshot(canvas_id, base.version, SNAPSHOT_SCHEMA_VERSION, encode_state(base)))
        while state.version < len(new_events):
            until = min(len(new_events), (state.version // self.snapshot_every + 1) * self.snapshot_every)
            state = project(state, new_events[state.version : until])
            if state.version % self.snapshot_every == 0:
                snapshots.append(Snapshot(canvas_id, state.version, SNAPSHOT_SCHEMA_VERSION, encode_state(state)))
        names = tuple(dict.fromkeys(blob_names(new_events, self.decider.operations, {})))
        return PreparedImport(new_events, tuple(snapshots), state, names)

    async def execute(
        self,
        canvas_id: str,
        command: Command,
        actor: str,
        command_id: str | None = None,
        expected_version: int | None = None,
        gesture: str | None = None,
    ) -> CommandResult:
        """Decide and durably append `command` (part of the client's `gesture`, if any). Raises CommandRejected
        or CanvasNotFound."""
        return await self._submit(canvas_id, command, actor, command_id, expected_version, gesture)

    async def _submit(
        self,
        canvas_id: str,
        command: Command | CanvasCreated,
        actor: str,
        command_id: str | None,
        expected_version: int | None,
        gesture: str | None = None,
    ) -> CommandResult:
        if self._queue is None:
            raise RuntimeError("CanvasService.start() was not called")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        submission = _Submission(canvas_id, command, actor, command_id, expected_version, future, gesture=gesture)
        if command_id is not None:
            submission.command_hash = command_hash(command, expected_version)
        self._queue.put_nowait(submission)  # unbounded: put() would only add a coroutine to await
        return await future

    async def _write_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            taken = [await self._queue.get()]
            while len(taken) < self.max_batch and not self._queue.empty():
                taken.append(self._queue.get_nowait())
            # Commands first, in one group commit; then one slice of one import, in a transaction of its own:
            # a command waits for at most one slice, however large the import.
            commands = [submission for submission in taken if not isinstance(submission.command, PreparedImport)]
            imports = [submission for submission in taken if isinstance(submission.command, PreparedImport)]
            if commands:
                await self._write_and_answer(loop, commands)
            if imports:
                for waiting in imports[1:]:
                    self._queue.put_nowait(waiting)
                await self._write_and_answer(loop, imports[:1])

    async def _write_and_answer(self, loop: asyncio.AbstractEventLoop, batch: list[_Submission]) -> None:
        outcomes = await self._write_isolating(loop, batch)
        published: dict[str, list[Event]] = {}
        for submission, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, _Unfinished):
                self._queue.put_nowait(submission)  # its next slice after what is queued now
            elif isinstance(outcome, BaseException):
                if isinstance(submission.command, PreparedImport) and submission.written:
                    await loop.run_in_executor(self._writer_thread, self._discard, submission.canvas_id)
                if not submission.future.done():  # a caller that gave up must not stop the writer
                    submission.future.set_exception(outcome)
            else:
                if not outcome.duplicate and outcome.events:
                    published.setdefault(submission.canvas_id, []).extend(outcome.events)
                if not submission.future.done():
                    submission.future.set_result(outcome)
        for canvas_id, new_events in published.items():
            self._publish(canvas_id, new_events)

    async def _write_isolating(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Submission]
    ) -> list[CommandResult | BaseException]:
        """Write a batch; if the batch as a whole fails, write its submissions one by one, so that one bad
        submission fails alone and never anyone else's command."""
        try:
            return await loop.run_in_executor(self._writer_thread, self._write_batch, batch)
        except Exception as exc:  # nothing of the batch was committed, so nothing acknowledged is lost
            if len(batch) == 1:
                log.exception("storing a command for canvas %s failed", batch[0].canvas_id)
                return [CommandRejected("storage_error", f"the command could not be stored: {exc}")]
            log.warning("a batch of %d commands failed (%s); writing them one by one", len(batch), exc)
        outcomes: list[CommandResult | BaseException] = []
        for submission in batch:
            outcomes.extend(await self._write_isolating(loop, [submission]))
        return outcomes

    def _discard(self, canvas_id: str) -> None:
        try:
            self.store.discard_unlisted(canvas_id)
        except Exception:
            log.exception("removing the unfinished import of %s failed", canvas_id)

    # --- publication: every subscriber sees each canvas's events once, in order, without gaps --------------

    def watch(self, canvas_id: str, version: int) -> None:
        """A subscriber has seen `canvas_id` up to `version`: deliver from there on (events appended by other
        processes included, which `on_remote_head` learns of)."""
        if canvas_id not in self._published:
            self._published[canvas_id] = version

    def _publish(self, canvas_id: str, events: Sequence[Event]) -> None:
        last = self._published.get(canvas_id)
        if (last is not None and events[0].seq > last + 1) or canvas_id in self._filling:
            # Another process appended in between and we have not delivered it yet: fetch it first.
            self._schedule_fill(canvas_id, events[-1].seq, list(events))
            return
        self._deliver(canvas_id, events)

    def _deliver(self, canvas_id: str, events: Sequence[Event]) -> None:
        last = self._published.get(canvas_id, 0)
        fresh = [event for event in events if event.seq > last]
        if not fresh:
            return
        self._published[canvas_id] = fresh[-1].seq
        for listener in list(self._listeners):
            try:
                listener(canvas_id, fresh)
            except Exception:
                log.exception("event listener failed")

    def on_remote_head(self, canvas_id: str, head: int) -> None:
        """Another process committed `canvas_id` up to `head` (PostgreSQL NOTIFY)."""
        cached = self._cached(canvas_id)
        if cached is not None and cached.version < head:
            self._forget(canvas_id)
        last = self._published.get(canvas_id)
        if last is not None and head > last:
            self._schedule_fill(canvas_id, head, [])

    def _schedule_fill(self, canvas_id: str, head: int, events: list[Event]) -> None:
        self._filling.setdefault(canvas_id, []).append((head, events))
        if len(self._filling[canvas_id]) == 1:
            asyncio.get_running_loop().create_task(self._fill(canvas_id))

    async def _fill(self, canvas_id: str) -> None:
        while self._filling.get(canvas_id):
            head, events = self._filling[canvas_id][0]
            last = self._published.get(canvas_id, 0)
            try:
                if head > last:
                    missing = await asyncio.to_thread(self.store.read, canvas_id, last, head)
                    known = {event.seq for event in missing}
                    self._deliver(canvas_id, missing + [event for event in events if event.seq not in known])
            except Exception:
                log.exception("catching up with canvas %s failed", canvas_id)
            self._filling[canvas_id].pop(0)
        self._filling.pop(canvas_id, None)

    def _write_batch(self, batch: list[_Submission]) -> list[CommandResult | BaseException]:
        for attempt in range(20):
            try:
                return self._try_write_batch(batch)
            except ConcurrencyError as exc:
                # Another process appended: forget what we believed and decide again from the store.
                log.info("concurrent append to %s (attempt %d): reloading", exc.canvas_id, attempt + 1)
                self._forget(exc.canvas_id)
            except IntegrityError:
                # Another replica recorded the same command id first: decide again, and find its record.
                log.info("concurrent duplicate command (attempt %d): retrying", attempt + 1)
                for submission in batch:
                    self._forget(submission.canvas_id)
            time.sleep(min(0.05, 0.002 * 2**attempt) * random.random())  # let the other writer finish
        return [CommandRejected("busy", "the canvas is too busy right now; try again") for _ in batch]

    def _try_write_batch(self, batch: list[_Submission]) -> list[CommandResult | BaseException]:
        staged: dict[str, _Staged] = {}
        outcomes: list[CommandResult | BaseException] = []
        seen_commands: dict[tuple[str, str], tuple[str, CommandResult]] = {}
        with self.store.write() as tx:
            earlier = self._earlier_commands(tx, batch)
            now = time.time()
            for submission in batch:
                try:
                    outcomes.append(self._stage(submission, staged, seen_commands, earlier, now))
                except (CommandRejected, CanvasNotFound, _Unfinished) as exc:
                    outcomes.append(exc)
                except Exception as exc:  # a bug deciding this one command: it fails alone, nothing was staged
                    log.exception("deciding a command for canvas %s failed", submission.canvas_id)
                    outcomes.append(CommandRejected("internal_error", f"the command could not be decided: {exc}"))
            tx.append([request for request in map(self._append_request, staged.values()) if request is not None])
        for stage in staged.values():
            if stage.state.created:
                self._remember(stage.state)
        for submission, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, _Unfinished):  # committed: the next turn writes from here
                submission.written += outcome.args[0]
        return outcomes

    def _append_request(self, stage: _Staged) -> AppendRequest | None:
        if not stage.events and not stage.commands:
            return None
        state = stage.state
        snapshots = list(stage.snapshots)
        crossed = state.version // self.snapshot_every > stage.base_version // self.snapshot_every
        if stage.events and not stage.unlisted and not stage.preloaded:
            for due in stage.crossings or ([state] if crossed else []):  # an import: at its end
                if not any(snapshot.version == due.version for snapshot in snapshots):
                    encoded = encode_state(due, self._layer_rows)
                    snapshots.append(Snapshot(due.canvas_id, due.version, SNAPSHOT_SCHEMA_VERSION, encoded))
        return AppendRequest(
            canvas_id=state.canvas_id,
            expected_version=stage.base_version,
            events=stage.events,
            commands=tuple(stage.commands),
            canvas_name=state.name if stage.name_changed else None,
            snapshots=tuple(snapshots),
            wake_renders=any(event.type in WAKING_EVENTS for event in stage.events),
            preloaded=stage.preloaded,
            unlisted=stage.unlisted,
            blobs=tuple(stage.blobs),
        )

    def _stage(
        self,
        submission: _Submission,
        staged: dict[str, _Staged],
        seen_commands: dict[tuple[str, str], tuple[str, CommandResult]],
        earlier_commands: dict[tuple[str, str], CommandRecord],
        now: float,
    ) -> CommandResult:
        canvas_id = submission.canvas_id
        stage = staged.get(canvas_id)
        if stage is None:
            state = self._load_latest(canvas_id)
            stage = _Staged(base_version=state.version, state=state)
            staged[canvas_id] = stage
        state = stage.state

        if submission.command_id is not None:
            earlier = seen_commands.get((canvas_id, submission.command_id))
            if earlier is not None:
                if earlier[0] != submission.command_hash:
                    raise _reused(submission.command_id)
                original = earlier[1]
            else:
                record = earlier_commands.get((canvas_id, submission.command_id))
                original = None if record is None else self._earlier_result(record, submission.command_hash)
            if original is not None:
                return CommandResult(
                    canvas_id, submission.command_id, original.events, original.version, duplicate=True
                )

        if isinstance(submission.command, PreparedImport):
            return self._stage_import(stage, submission)
        if isinstance(submission.command, CanvasCreated):
            if state.created:
                raise CommandRejected("canvas_exists", f"canvas {canvas_id!r} already exists")
            new_data: list[EventData] = [submission.command]
        else:
            if not state.created:
                raise CanvasNotFound(canvas_id)
            if submission.expected_version is not None and submission.expected_version != state.version:
                raise CommandRejected(
                    "version_conflict",
                    f"canvas {canvas_id!r} is at version {state.version}, not {submission.expected_version}",
                    "expected_version",
                )
            # The decider decides every command; undo, redo and restore read the past through `_Past`.
            new_data = self.decider.decide(state, submission.command, submission.actor, _Past(self, stage))

        # Events of one command share its id: undo takes them back together. A command sent without an id
        # gets one here (no idempotency record is kept for it: nobody can retry it by id).
        events_command_id = submission.command_id or f"~{uuid.uuid4().hex}"
        new_events = [
            Event(
                canvas_id=canvas_id,
                seq=state.version + offset,
                event_id=new_event_id(),
                data=data,
                actor=submission.actor,
                command_id=events_command_id,
                timestamp=now,
                schema_version=data.schema_version,
                gesture=submission.gesture,
            )
            for offset, data in enumerate(new_data, start=1)
        ]
        new_state = project(state, new_events) if new_events else state
        names = list(blob_names(new_events, self.decider.operations, LayerOperations(state.layers)))
        stage.state = new_state
        if new_state.version // self.snapshot_every > state.version // self.snapshot_every:
            stage.crossings.append(new_state)
        stage.events.extend(new_events)
        stage.blobs.extend(names)
        stage.name_changed |= new_state.name != state.name
        result = CommandResult(canvas_id, submission.command_id, tuple(new_events), new_state.version)
        if submission.command_id is not None:
            stage.commands.append(
                CommandRecord(
                    canvas_id=canvas_id,
                    command_id=submission.command_id,
                    command_hash=submission.command_hash,
                    first_seq=new_events[0].seq if new_events else state.version,
                    count=len(new_events),
                )
            )
            seen_commands[(canvas_id, submission.command_id)] = (submission.command_hash, result)
        return result

    def _stage_import(self, stage: _Staged, submission: _Submission) -> CommandResult:
        prepared = submission.command
        assert isinstance(prepared, PreparedImport)
        canvas_id = submission.canvas_id
        if stage.state.created or stage.events:
            raise CommandRejected("canvas_exists", f"canvas {canvas_id!r} already exists")
        start = submission.written
        end = min(len(prepared.events), start + IMPORT_SLICE)
        stage.events.extend(prepared.events[start:end])
        stage.snapshots.extend(s for s in prepared.snapshots if start < s.version <= end)
        stage.preloaded = start
        if end < len(prepared.events):
            stage.unlisted = True
            raise _Unfinished(end - start)
        stage.state = prepared.state
        stage.name_changed = True
        stage.blobs.extend(prepared.blobs)
        return CommandResult(canvas_id, None, prepared.events, prepared.state.version)

    def _events_between(self, stage: _Staged, after: int, until: int) -> list[Event]:
        """Committed events from the store plus this batch's staged ones."""
        committed = self.store.read(stage.state.canvas_id, after=after, until=min(until, stage.base_version))
        return committed + [event for event in stage.events if after < event.seq <= until]

    def _state_at(self, stage: _Staged, version: int) -> CanvasState:
        if version <= stage.base_version:
            return self.project_at(stage.state.canvas_id, version)
        base = self.project_at(stage.state.canvas_id, stage.base_version)
        return project(base, [event for event in stage.events if event.seq <= version])

    @staticmethod
    def _earlier_commands(tx: WriteTransaction, batch: list[_Submission]) -> dict[tuple[str, str], CommandRecord]:
        """Idempotency records for the batch's command ids: one query per canvas, not one per command."""
        wanted: dict[str, list[str]] = {}
        for submission in batch:
            if submission.command_id is not None:
                wanted.setdefault(submission.canvas_id, []).append(submission.command_id)
        return {
            (canvas_id, command_id): record
            for canvas_id, command_ids in wanted.items()
            for command_id, record in tx.find_commands(canvas_id, command_ids).items()
        }

    def _earlier_result(self, record: CommandRecord, command_hash: str) -> CommandResult:
        if record.command_hash != command_hash:
            raise _reused(record.command_id)
        if record.count == 0:
            return CommandResult(record.canvas_id, record.command_id, (), record.first_seq)
        original = self.store.read(
            record.canvas_id, after=record.first_seq - 1, until=record.first_seq + record.count - 1
        )
        return CommandResult(record.canvas_id, record.command_id, tuple(original), original[-1].seq)

    # --- reads -------------------------------------------------------------------------------------------

    def _remember(self, state: CanvasState) -> None:
        with self._cache_lock:
            self._latest[state.canvas_id] = state
            self._latest.move_to_end(state.canvas_id)
            while len(self._latest) > self._cache_size:
                self._latest.popitem(last=False)

    def refresh(self, canvas_id: str) -> None:
        """Forget the cached latest state of a canvas, which another process has appended to."""
        self._forget(canvas_id)

    def _forget(self, canvas_id: str) -> None:
        with self._cache_lock:
            self._latest.pop(canvas_id, None)

    def _cached(self, canvas_id: str) -> CanvasState | None:
        with self._cache_lock:
            return self._latest.get(canvas_id)

    def _load_latest(self, canvas_id: str) -> CanvasState:
        cached = self._cached(canvas_id)
        if cached is not None:
            return cached
        head = self.store.head(canvas_id)
        if head is None:
            return empty_state(canvas_id)
        state = self.project_at(canvas_id, head)
        self._remember(state)
        return state

    def project_at(self, canvas_id: str, version: int, use_snapshots: bool = True) -> CanvasState:
        """Fold the log up to `version`, starting from the nearest snapshot at or before it (blocking I/O)."""
        state = empty_state(canvas_id)
        if use_snapshots:
            snapshot = self.store.snapshot_at_or_before(canvas_id, version)
            if snapshot is not None and snapshot.schema_version == SNAPSHOT_SCHEMA_VERSION:
                state = decode_state(snapshot.state)
        if state.version < version:
            state = project(state, self.store.read(canvas_id, after=state.version, until=version))
        return state

    async def state(self, canvas_id: str, version: int | None = None) -> CanvasState:
        """The canvas at `version` (latest when None). Raises CanvasNotFound, or ValueError for a bad version."""
        cached = self._cached(canvas_id)
        if cached is not None and (version is None or version == cached.version):
            return cached
        head = await asyncio.to_thread(self.store.head, canvas_id)
        if head is None:
            raise CanvasNotFound(canvas_id)
        if version is None:
            version = head
        if version < 0 or version > head:
            raise ValueError(f"version {version} is out of range: canvas {canvas_id!r} has versions 0..{head}")
        return await asyncio.to_thread(self.project_at, canvas_id, version)

    async def events(self, canvas_id: str, after: int = 0, limit: int | None = None) -> list[Event]:
        if await asyncio.to_thread(self.store.head, canvas_id) is None:
            raise CanvasNotFound(canvas_id)
        return await asyncio.to_thread(self.store.read, canvas_id, after, None, limit)


@value
class _Past:
    """The log before a staged state, for the decider (`PastReader`): the store plus this batch's events."""

    service: CanvasService
    stage: _Staged

    def events_between(self, after: int, until: int) -> list[Event]:
        return self.service._events_between(self.stage, after, until)

    def state_at(self, version: int) -> CanvasState:
        return self.service._state_at(self.stage, version)


def _reused(command_id: str) -> CommandRejected:
    return CommandRejected(
        "command_id_reused", f"command_id {command_id!r} was already used for a different command", "command_id"
    )
