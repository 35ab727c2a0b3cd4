"""The canvas service over a real SQLite file: idempotency, optimistic concurrency, atomic rejection,
time travel, group commit, snapshots."""

from __future__ import annotations

import asyncio

import pytest

from server.core.commands import AddLayer, ChangeParams, DeleteLayer, MoveLayer, RenameCanvas, RenameLayer, SetOpacity
from server.core.commands import SetVisibility as Show
from server.core.decide import CommandRejected, Decider
from server.service import CanvasNotFound, CanvasService
from server.store.sql import SQLEventStore

pytestmark = pytest.mark.anyio


def log_of(store: SQLEventStore, canvas_id: str) -> list[tuple[int, str]]:
    return [(event.seq, event.type) for event in store.read(canvas_id)]


async def new_canvas(service: CanvasService) -> str:
    result = await service.create_canvas("Test", "alice")
    return result.canvas_id


async def test_creating_a_canvas_appends_canvas_created_at_seq_1(service, store):
    result = await service.create_canvas("Sketch", "alice", canvas_id="mine")
    assert (result.canvas_id, result.version, result.seqs) == ("mine", 1, [1])
    assert log_of(store, "mine") == [(1, "canvas.created")]
    assert store.canvas("mine").name == "Sketch"
    with pytest.raises(CommandRejected) as info:
        await service.create_canvas("Again", "bob", canvas_id="mine")
    assert info.value.code == "canvas_exists"


async def test_a_retried_command_id_returns_the_original_result_and_appends_nothing(service, store):
    canvas_id = await new_canvas(service)
    command = AddLayer(layer_id="a", operation="generate", params={"prompt": "x"})
    first = await service.execute(canvas_id, command, "alice", command_id="cmd-1")
    again = await service.execute(canvas_id, command, "alice", command_id="cmd-1")
    assert not first.duplicate and again.duplicate
    assert again.seqs == first.seqs == [2] and again.events == first.events
    assert log_of(store, canvas_id) == [(1, "canvas.created"), (2, "layer.added")]


async def test_retries_racing_in_one_batch_append_once(service, store):
    canvas_id = await new_canvas(service)
    command = AddLayer(layer_id="a", operation="generate")
    results = await asyncio.gather(*(service.execute(canvas_id, command, "alice", command_id="same") for _ in range(5)))
    assert sum(not result.duplicate for result in results) == 1
    assert {tuple(result.seqs) for result in results} == {(2,)}
    assert len(store.read(canvas_id)) == 2


async def test_idempotency_survives_a_restart(store, decider):
    first_service = CanvasService(store, decider)
    await first_service.start()
    canvas_id = await new_canvas(first_service)
    original = await first_service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "a", "cmd-1")
    await first_service.stop()

    second_service = CanvasService(store, decider)
    await second_service.start()
    retry = await second_service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "a", "cmd-1")
    await second_service.stop()
    assert retry.duplicate and retry.events == original.events
    assert len(store.read(canvas_id)) == 2


async def test_a_no_op_command_is_remembered_too(service, store):
    canvas_id = await new_canvas(service)
    await service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "a")
    noop = await service.execute(canvas_id, Show(layer_id="a", visible=True), "a", "show-1")
    assert noop.events == () and noop.version == 2
    await service.execute(canvas_id, Show(layer_id="a", visible=False), "a", "hide-1")
    retry = await service.execute(canvas_id, Show(layer_id="a", visible=True), "a", "show-1")
    assert retry.duplicate and retry.events == ()
    assert not (await service.state(canvas_id)).layers["a"].visible


async def test_reusing_a_command_id_for_another_command_is_rejected(service, store):
    canvas_id = await new_canvas(service)
    await service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "alice", command_id="cmd-1")
    with pytest.raises(CommandRejected) as info:
        await service.execute(canvas_id, AddLayer(layer_id="b", operation="generate"), "alice", command_id="cmd-1")
    assert info.value.code == "command_id_reused"
    assert len(store.read(canvas_id)) == 2


async def test_an_expected_version_that_does_not_match_is_rejected(service, store):
    canvas_id = await new_canvas(service)
    ok = await service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "a", expected_version=1)
    assert ok.version == 2
    with pytest.raises(CommandRejected) as info:
        await service.execute(canvas_id, AddLayer(layer_id="b", operation="generate"), "a", expected_version=1)
    assert info.value.code == "version_conflict" and "at version 2, not 1" in info.value.message
    assert log_of(store, canvas_id)[-1] == (2, "layer.added")


async def test_a_rejected_command_writes_nothing(service, store):
    canvas_id = await new_canvas(service)
    await service.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "a", "ok-1")
    before = (store.read(canvas_id), store.head(canvas_id), store.find_command(canvas_id, "bad-1"))
    for command in (
        AddLayer(operation="edit", params={"source": "missing"}),
        AddLayer(operation="generate", params={"steps": 1000}),
        AddLayer(operation="nope"),
        ChangeParams(layer_id="a", params={"bogus": 1}),
        DeleteLayer(layer_id="zzz"),
    ):
        with pytest.raises(CommandRejected):
            await service.execute(canvas_id, command, "a", command_id="bad-1")
    after = (store.read(canvas_id), store.head(canvas_id), store.find_command(canvas_id, "bad-1"))
    assert after == before and before[2] is None


async def test_commands_on_a_missing_canvas(service):
    with pytest.raises(CanvasNotFound):
        await service.execute("nope", AddLayer(operation="generate"), "a")
    with pytest.raises(CanvasNotFound):
        await service.state("nope")


async def scripted_history(service: CanvasService, canvas_id: str) -> dict[int, dict]:
    """Run a history touching every command; return the state seen after each command, by version."""
    commands = [
        AddLayer(layer_id="a", operation="generate", params={"prompt": "sea"}),
        AddLayer(layer_id="b", operation="edit", params={"source": "a"}),
        AddLayer(layer_id="c", operation="edit", params={"source": "a"}),
        AddLayer(layer_id="d", operation="blend", params={"a": "b", "b": "c"}),
        RenameLayer(layer_id="d", name="Join"),
        SetOpacity(layer_id="b", opacity=0.5),
        Show(layer_id="c", visible=False),
        MoveLayer(layer_id="d", index=0),
        ChangeParams(layer_id="a", params={"prompt": "storm"}),
        AddLayer(layer_id="e", operation="generate"),
        DeleteLayer(layer_id="b"),
        RenameCanvas(name="Renamed"),
        AddLayer(layer_id="f", operation="edit", params={"source": "e"}),
        ChangeParams(layer_id="f", params={"source": "c"}),
        DeleteLayer(layer_id="a"),
    ]
    seen = {1: (await service.state(canvas_id)).to_json()}
    for round_ in range(3):  # long enough to cross several snapshots (every 10 events)
        for command in commands:
            if round_:
                command = command.model_copy(update=_renamed_ids(command, round_))
            result = await service.execute(canvas_id, command, "alice")
            seen[result.version] = (await service.state(canvas_id)).to_json()
    return seen


def _renamed_ids(command, round_: int) -> dict:
    update = {}
    if getattr(command, "layer_id", None):
        update["layer_id"] = f"{command.layer_id}{round_}"
    if getattr(command, "params", None):
        update["params"] = {
            key: f"{value}{round_}" if key in {"source", "a", "b"} else value for key, value in command.params.items()
        }
    return update


async def test_state_at_every_version_equals_the_state_seen_at_that_time(service, store):
    canvas_id = await new_canvas(service)
    seen = await scripted_history(service, canvas_id)
    head = store.head(canvas_id)
    assert sorted(seen) == list(range(1, head + 1))
    assert len(store.read(canvas_id)) == head > 40
    for version, expected in seen.items():
        assert (await service.state(canvas_id, version)).to_json() == expected, f"version {version}"
        assert service.project_at(canvas_id, version, use_snapshots=False).to_json() == expected
    assert (await service.state(canvas_id, 0)).to_json()["layers"] == []
    with pytest.raises(ValueError, match="out of range"):
        await service.state(canvas_id, head + 1)


async def test_snapshots_are_taken_every_n_events(service, store):
    canvas_id = await new_canvas(service)
    for index in range(35):
        await service.execute(canvas_id, AddLayer(layer_id=f"l{index}", operation="generate"), "a")
    snapshot = store.snapshot_at_or_before(canvas_id, 36)
    assert snapshot is not None and snapshot.version == 30
    assert store.snapshot_at_or_before(canvas_id, 19).version == 10
    assert store.snapshot_at_or_before(canvas_id, 9) is None


async def test_a_group_commit_snapshots_where_it_passes_each_multiple_not_at_its_end(service, store):
    """One batch of 25 one-event commands from version 1 passes 10 and 20: its snapshots are the states at 10
    and 20 (each equal to a fold from seq 1), so no version is more than 9 events from one."""
    canvas_id = await new_canvas(service)
    await asyncio.gather(
        *(service.execute(canvas_id, AddLayer(layer_id=f"l{i}", operation="generate"), "a") for i in range(25))
    )
    assert store.head(canvas_id) == 26
    assert [store.snapshot_at_or_before(canvas_id, v).version for v in (19, 26)] == [10, 20]
    for version in (10, 20):
        snapshotted = service.project_at(canvas_id, version)
        assert snapshotted.to_json() == service.project_at(canvas_id, version, use_snapshots=False).to_json()


async def test_concurrent_writers_get_a_gapless_log_with_every_acknowledged_event(service, store):
    canvas_id = await new_canvas(service)

    async def writer(name: str) -> list[int]:
        seqs = []
        for index in range(20):
            result = await service.execute(
                canvas_id,
                AddLayer(layer_id=f"{name}-{index}", operation="generate"),
                name,
                command_id=f"{name}-{index}",
            )
            seqs.extend(result.seqs)
        return seqs

    acknowledged = await asyncio.gather(*(writer(f"w{n}") for n in range(10)))
    log = store.read(canvas_id)
    assert [event.seq for event in log] == list(range(1, 202))
    assert sorted(seq for seqs in acknowledged for seq in seqs) == list(range(2, 202))
    state = await service.state(canvas_id)
    assert len(state.layers) == 200 and state.version == 201


async def test_two_services_on_one_database_never_fork_the_log(store, ops):
    # As two server processes sharing a file would: each believes its cached head until an append says otherwise.
    first = CanvasService(store, Decider(ops))
    second = CanvasService(store, Decider(ops))
    await first.start()
    await second.start()
    try:
        canvas_id = await new_canvas(first)
        await second.state(canvas_id)  # second caches version 1
        await first.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "one")
        result = await second.execute(canvas_id, AddLayer(layer_id="b", operation="generate"), "two")
        assert result.seqs == [3]
        with pytest.raises(CommandRejected) as info:  # decided again on the fresh state: 'a' exists now
            await second.execute(canvas_id, AddLayer(layer_id="a", operation="generate"), "two")
        assert info.value.code == "layer_exists"
    finally:
        await first.stop()
        await second.stop()
    assert [event.seq for event in store.read(canvas_id)] == [1, 2, 3]


async def test_writers_in_two_processes_racing_on_one_canvas_keep_one_gapless_log(store, ops):
    # Two services on one database stand for two server replicas: their appends interleave at random.
    replicas = [CanvasService(store.__class__(store.url), Decider(ops)) for _ in range(2)]
    for replica in replicas:
        replica.store.migrate()
        await replica.start()
    try:
        canvas_id = await new_canvas(replicas[0])

        async def writer(replica: CanvasService, name: str) -> list[int]:
            seqs = []
            for index in range(15):
                command = AddLayer(layer_id=f"{name}-{index}", operation="generate")
                seqs += (await replica.execute(canvas_id, command, name, command_id=f"{name}-{index}")).seqs
                # and a retry of the same command through the other replica: answered, never applied twice
                other = replicas[1] if replica is replicas[0] else replicas[0]
                retry = await other.execute(canvas_id, command, name, command_id=f"{name}-{index}")
                assert retry.duplicate and retry.seqs == seqs[-1:]
            return seqs

        acknowledged = await asyncio.gather(*(writer(replicas[n % 2], f"w{n}") for n in range(6)))
    finally:
        for replica in replicas:
            await replica.stop()
            replica.store.close()
    log = store.read(canvas_id)
    assert [event.seq for event in log] == list(range(1, 92))
    assert sorted(seq for seqs in acknowledged for seq in seqs) == list(range(2, 92))


def _import_of(count: int, *, bad_at: int | None = None) -> list:
    """A recorded log of `count` events: a layer and opacity changes (one unstorable when `bad_at` is set)."""
    from server.core.events import CanvasCreated, LayerAdded, LayerOpacityChanged, LayerRenamed
    from server.service import RecordedEvent

    events = [RecordedEvent(CanvasCreated("imported"), "import", None, 0.0),
              RecordedEvent(LayerAdded("a", "generate", {"prompt": "", "steps": 4}, 1, (), "A"), "import", None, 0.0)]  # fmt: skip
    for index in range(count - 2):
        data = LayerOpacityChanged("a", (index % 100) / 100)
        if index == bad_at:
            data = LayerRenamed("a", {"too big for JSON": 2**70})  # type: ignore[arg-type]
        events.append(RecordedEvent(data, "import", f"c{index}", 0.0))
    return events


async def test_a_large_import_is_written_in_slices_and_shows_only_when_complete(service, store):
    from server.service import IMPORT_SLICE

    others = await new_canvas(service)
    total = 3 * IMPORT_SLICE + 7
    importing = asyncio.ensure_future(service.import_log(_import_of(total)))
    served_meanwhile = 0
    for index in range(200):  # other canvases' commands go on while the import takes its turns
        await service.execute(others, RenameCanvas(name=f"n{index}"), "alice")
        listed = [info.version for info in store.canvases() if info.name == "imported"]
        assert listed in ([], [total]), f"a half-written import was listed at version {listed}"
        if importing.done():
            break
        served_meanwhile += 1
    result = await importing
    assert served_meanwhile >= 2
    assert store.head(result.canvas_id) == 3 * IMPORT_SLICE + 7
    assert [event.seq for event in store.read(result.canvas_id)] == list(range(1, 3 * IMPORT_SLICE + 8))
    assert (await service.state(result.canvas_id)) == service.project_at(result.canvas_id, result.version, False)


async def test_one_bad_submission_never_fails_another_canvas_s_commands(service, store):
    from server.core.commands import RecordRender

    others = [await new_canvas(service) for _ in range(5)]
    target = await new_canvas(service)
    await service.execute(target, AddLayer(layer_id="a", operation="generate"), "alice")
    # Decided fine, but its event cannot be stored (an integer JSON cannot hold): it fails in the writer's
    # transaction, which it once failed for every command of the batch.
    unstorable = RecordRender(layer_id="a", revision=1, output="0" * 64, width=8, height=8,
                              fingerprint={"seed": 2**70}, duration_ms=1.0)  # fmt: skip
    outcomes = await asyncio.gather(
        service.execute(target, unstorable, "engine"),
        *(service.execute(canvas_id, RenameCanvas(name="fine"), "alice") for canvas_id in others),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], CommandRejected) and outcomes[0].code == "storage_error"
    assert all(not isinstance(outcome, BaseException) for outcome in outcomes[1:]), outcomes
    assert all(store.canvas(canvas_id).name == "fine" for canvas_id in others)
    assert [event.type for event in store.read(target)] == ["canvas.created", "layer.added"]


async def test_an_import_that_cannot_be_stored_leaves_nothing(service, store):
    from server.service import IMPORT_SLICE

    def rows() -> tuple[int, int]:  # every row, hidden ones included
        with store.writer_engine.connect() as conn:
            return (conn.exec_driver_sql("SELECT count(*) FROM canvases").scalar(),
                    conn.exec_driver_sql("SELECT count(*) FROM events").scalar())  # fmt: skip

    before = rows()
    with pytest.raises(CommandRejected) as rejected:  # unstorable in its last slice, after earlier ones were
        await service.import_log(_import_of(2 * IMPORT_SLICE + 9, bad_at=2 * IMPORT_SLICE + 5))
    assert rejected.value.code == "storage_error"
    assert rows() == before


async def test_a_fork_starts_from_the_nearest_snapshot_and_equals_a_fold_from_seq_1(service, store):
    source = (await service.import_log(_import_of(57))).canvas_id  # snapshots every 10 events
    await service.execute(source, RenameCanvas(name="renamed later"), "alice")
    for version in (9, 10, 35, 57):
        fork = await service.fork(source, version, "bob")
        state = await service.state(fork.canvas_id)
        assert state == service.project_at(fork.canvas_id, version, use_snapshots=False)
        assert state.name == "imported (fork)" and state.origin == {"kind": "fork", "canvas_id": source,
                                                                      "version": version}  # fmt: skip
