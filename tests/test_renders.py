"""The render queue with the real engine (builtin:tiny): events in, pixels and render events out."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from engine.builtins import default_registry
from engine.models.loader import ModelManager, ModelOptions
from engine.operation import Operation, OperationRegistry, Params
from engine.render import Renderer
from server.blobstore import LocalBlobStore
from server.core.commands import AddLayer, ChangeParams, DeleteLayer, RetryRender
from server.core.decide import Decider
from server.render_queue import RenderQueue
from server.service import CanvasService
from server.store.sql import SQLEventStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
os.environ["HF_HUB_OFFLINE"] = "1"

SMALL = {"width": 64, "height": 64, "steps": 2}


class Explode(Operation):
    name = "explode"
    title = "Explode"

    class Params(Params):
        pass

    def run(self, ctx, inputs, params):
        raise RuntimeError("the operation blew up")


class Split(Operation):
    """Stands in for a segmenter: several images from one render."""

    name = "split"
    title = "Split"
    multiple_outputs = True

    class Params(Params):
        count: int = 3

    def run(self, ctx, inputs, params):
        return [Image.new("L", (8, 8), 40 * index) for index in range(params.count)]


def operations() -> OperationRegistry:
    registry = default_registry()
    registry.register(Explode)
    registry.register(Split)
    return registry


@pytest.fixture(scope="session")
def model_options(tmp_path_factory) -> ModelOptions:
    models = tmp_path_factory.mktemp("models")
    return ModelOptions(device="cpu", models_dir=models, hash_cache=models / "hashes.json")


@pytest.fixture(scope="session")
def renderer(model_options) -> Renderer:
    return Renderer(ModelManager("builtin:tiny", model_options), operations())


@pytest.fixture
async def engine(tmp_path, renderer):
    store = SQLEventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    service = CanvasService(store, Decider(operations()))
    await service.start()
    blobs = LocalBlobStore(tmp_path / "blobs")
    queue = RenderQueue(service, store, blobs, operations(), lambda: renderer)
    renderer.blob_reader = blobs.get
    notices: list[tuple[str, dict]] = []
    queue.subscribe(lambda canvas_id, notice: notices.append((canvas_id, notice)))
    await queue.start()
    yield service, queue, blobs, store, notices
    await queue.stop()
    await service.stop()
    store.close()


async def canvas_with(service: CanvasService, *commands) -> str:
    canvas_id = (await service.create_canvas("t", "alice")).canvas_id
    for command in commands:
        await service.execute(canvas_id, command, "alice")
    return canvas_id


def txt2img(layer_id: str, prompt: str = "a red boat", seed: int = 1) -> AddLayer:
    return AddLayer(layer_id=layer_id, operation="txt2img", params={"prompt": prompt, **SMALL}, seed=seed)


def img2img(layer_id: str, source: str) -> AddLayer:
    params = {"source": source, "prompt": "at night", "strength": 0.5, "steps": 2}
    return AddLayer(layer_id=layer_id, operation="img2img", params=params, seed=2)


async def test_a_new_layer_is_rendered_and_recorded(engine):
    service, queue, blobs, store, notices = engine
    canvas_id = await canvas_with(service, txt2img("a"))
    await queue.wait_idle()
    layer = (await service.state(canvas_id)).layers["a"]
    assert layer.status == "rendered" and not layer.output.cached
    image = Image.open(io.BytesIO(blobs.get(layer.output.sha256)))
    assert (image.format, image.size, layer.output.width) == ("PNG", (64, 64), 64)
    assert layer.output.fingerprint["model"] == "builtin:tiny" and layer.output.fingerprint["device"] == "cpu"
    assert len(layer.output.cache_key) == 64 and layer.output.duration_ms > 0
    [rendered] = [e for e in store.read(canvas_id) if e.type == "layer.rendered"]
    assert rendered.actor == "engine"
    kinds = [notice["type"] for _, notice in notices if notice["type"] != "queue"]
    assert kinds[0] == "render_started" and kinds[-1] == "render_finished"
    assert ("progress" in kinds) and {n["total"] for _, n in notices if n["type"] == "progress" and n["total"]} == {2}


async def test_an_unchanged_layer_is_never_computed_twice(engine):
    service, queue, _, _, _ = engine
    first = await canvas_with(service, txt2img("a"), img2img("b", "a"))
    await queue.wait_idle()
    assert queue.stats["computed"] == 2
    # Same operations, params, seeds and inputs on another canvas, under other layer ids: all cache hits.
    second = await canvas_with(service, txt2img("x"), img2img("y", "x"))
    await queue.wait_idle()
    assert queue.stats["computed"] == 2 and queue.stats["cache_hits"] == 2
    one, two = await service.state(first), await service.state(second)
    assert two.layers["y"].output.cached and two.layers["y"].output.sha256 == one.layers["b"].output.sha256


async def test_editing_a_middle_layer_re_renders_exactly_its_descendants(engine):
    service, queue, _, store, _ = engine
    canvas_id = await canvas_with(service, txt2img("a"), img2img("b", "a"), img2img("c", "b"), txt2img("d", seed=9))
    await queue.wait_idle()
    before = await service.state(canvas_id)
    computed = queue.stats["computed"]
    await service.execute(
        canvas_id, ChangeParams(layer_id="b", params={"source": "a", "prompt": "in fog", "steps": 2}), "bob"
    )
    await queue.wait_idle()
    after = await service.state(canvas_id)
    assert queue.stats["computed"] - computed == 2
    rerendered = [e.data.layer_id for e in store.read(canvas_id, after=before.version) if e.type == "layer.rendered"]
    assert rerendered == ["b", "c"]
    assert (
        after.layers["a"].output == before.layers["a"].output and after.layers["d"].output == before.layers["d"].output
    )
    assert after.layers["b"].output.sha256 != before.layers["b"].output.sha256
    assert all(layer.status == "rendered" for layer in after.layers.values())


async def test_a_failing_operation_records_layer_failed_and_the_queue_goes_on(engine):
    service, queue, _, _, notices = engine
    canvas_id = await canvas_with(service, AddLayer(layer_id="boom", operation="explode"), txt2img("ok"))
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert state.layers["boom"].status == "failed"
    assert state.layers["boom"].error == "RuntimeError: the operation blew up"
    assert state.layers["ok"].status == "rendered"
    assert any(n["type"] == "render_failed" for _, n in notices)
    await service.execute(canvas_id, RetryRender(layer_id="boom"), "alice")
    await queue.wait_idle()
    retried = (await service.state(canvas_id)).layers["boom"]
    assert retried.status == "failed" and retried.revision == 2


async def test_a_running_render_can_be_cancelled(engine):
    service, queue, _, _, notices = engine
    slow = AddLayer(
        layer_id="slow", operation="txt2img", params={"prompt": "x", "width": 256, "height": 256, "steps": 150}
    )
    canvas_id = await canvas_with(service, slow, img2img("child", "slow"))
    for _ in range(600):
        if any(n["type"] == "progress" for _, n in notices):
            break
        await asyncio.sleep(0.05)
    assert await queue.cancel(canvas_id, "slow", "alice")
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert state.layers["slow"].status == "failed" and state.layers["slow"].error == "render cancelled"
    steps = [n["step"] for _, n in notices if n["type"] == "progress"]
    assert steps and max(steps) < 150
    assert state.layers["child"].status == "pending"  # waits for its input; nothing was rendered from nothing
    assert [n["type"] for _, n in notices if n["type"] != "queue"][-1] == "render_cancelled"


async def test_a_queued_render_can_be_cancelled_before_it_starts(engine):
    service, queue, _, _, _ = engine
    await queue.stop()  # nothing runs: the layer stays queued
    canvas_id = await canvas_with(service, txt2img("a"))
    assert await queue.cancel(canvas_id, "a", "alice")
    layer = (await service.state(canvas_id)).layers["a"]
    assert layer.status == "failed" and layer.error == "cancelled by alice"
    assert not await queue.cancel(canvas_id, "a", "alice")


async def test_renders_left_waiting_at_shutdown_run_after_a_restart(tmp_path, renderer):
    store = SQLEventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    service = CanvasService(store, Decider(operations()))
    await service.start()
    canvas_id = await canvas_with(service, txt2img("a"))  # no render queue running
    queue = RenderQueue(service, store, LocalBlobStore(tmp_path / "blobs"), operations(), lambda: renderer)
    await queue.start()
    await queue.wait_idle()
    assert (await service.state(canvas_id)).layers["a"].status == "rendered"
    await queue.stop()
    await service.stop()
    store.close()


async def test_replay_in_another_process_is_bit_identical(engine, tmp_path, model_options):
    service, queue, _, _, _ = engine
    canvas_id = await canvas_with(service, txt2img("a"), img2img("b", "a"), txt2img("c", seed=5))
    await queue.wait_idle()
    data = tmp_path  # the engine fixture keeps db.sqlite and blobs/ here, as a data directory would
    (data / "opendream.db").symlink_to(data / "db.sqlite")
    for suffix in ("-wal", "-shm"):
        if (data / f"db.sqlite{suffix}").exists():
            (data / f"opendream.db{suffix}").symlink_to(data / f"db.sqlite{suffix}")
    (data / "models").symlink_to(model_options.models_dir)
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "replay", "--canvas", canvas_id, "--data", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(layer["layer_id"], layer["outcome"]) for layer in report["layers"]] == [
        ("a", "identical"),
        ("b", "identical"),
        ("c", "identical"),
    ]
    recorded = await service.state(canvas_id)
    assert [layer["replayed"] for layer in report["layers"]] == [recorded.layers[i].output.sha256 for i in "abc"]


def pixel_of(blobs: LocalBlobStore, sha: str) -> object:
    return Image.open(io.BytesIO(blobs.get(sha))).getpixel((0, 0))


async def test_an_operation_making_several_images_makes_several_layers(engine):
    service, queue, blobs, _, _ = engine
    canvas_id = await canvas_with(service, AddLayer(layer_id="s", operation="split", params={"count": 3}))
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert state.order == ("s", "s.1", "s.2")
    assert [state.layers[i].operation for i in state.order] == ["split", "layer_output", "layer_output"]
    assert state.layers["s.2"].parents == ("s",) and state.layers["s.2"].name == "Split 1 · 3"
    assert [pixel_of(blobs, state.layers[i].output.sha256) for i in state.order] == [0, 40, 80]
    assert state.layers["s"].output.extra == (state.layers["s.1"].output.sha256, state.layers["s.2"].output.sha256)

    # A deleted output stays deleted; re-rendering the source updates the others; fewer images fail the rest.
    await service.execute(canvas_id, DeleteLayer(layer_id="s.1"), "alice")
    await service.execute(canvas_id, ChangeParams(layer_id="s", params={"count": 2}), "alice")
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert state.order == ("s", "s.2")
    assert state.layers["s.2"].status == "failed" and "made 2 images" in state.layers["s.2"].error
    await service.execute(canvas_id, ChangeParams(layer_id="s", params={"count": 4}), "alice")
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert state.order == ("s", "s.2", "s.3")
    assert pixel_of(blobs, state.layers["s.2"].output.sha256) == 80 and state.layers["s.3"].status == "rendered"


async def test_uploads_and_composites_render_through_the_queue(engine):
    service, queue, blobs, _, _ = engine
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 0, 0)).save(buffer, "PNG")
    sha = blobs.put(buffer.getvalue())
    canvas_id = await canvas_with(
        service,
        AddLayer(layer_id="up", operation="upload", params={"blob": sha}),
        AddLayer(layer_id="bg", operation="blank", params={"width": 4, "height": 4, "colour": "#0000ff"}),
        AddLayer(
            layer_id="mix", operation="composite", params={"layers": [{"layer": "bg"}, {"layer": "up", "opacity": 0.5}]}
        ),
    )
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert {i: state.layers[i].status for i in state.order} == {"up": "rendered", "bg": "rendered", "mix": "rendered"}
    assert state.layers["mix"].parents == ("bg", "up")
    assert pixel_of(blobs, state.layers["up"].output.sha256) == (200, 0, 0)
    red, _, blue, _ = pixel_of(blobs, state.layers["mix"].output.sha256)
    assert abs(red - 100) <= 1 and abs(blue - 128) <= 1
    # Editing operations do not depend on the diffusion model: their fingerprint does not name it.
    assert "model_hash" not in state.layers["bg"].output.fingerprint


async def test_an_upload_of_an_unknown_blob_is_rejected(tmp_path, ops):
    from server.core.decide import CommandRejected

    store = SQLEventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    blobs = LocalBlobStore(tmp_path / "blobs")
    service = CanvasService(store, Decider(operations(), blob_exists=blobs.exists))
    await service.start()
    canvas_id = (await service.create_canvas("t", "a")).canvas_id
    with pytest.raises(CommandRejected) as info:
        await service.execute(canvas_id, AddLayer(operation="upload", params={"blob": "0" * 64}), "a")
    assert info.value.code == "unknown_blob" and info.value.field == "params.blob"
    await service.stop()
    store.close()


async def test_a_past_state_whose_images_were_never_rendered_is_shown_without_computing_until_asked(
    engine, renderer, monkeypatch
):
    service, background, blobs, store, _ = engine
    await background.stop()  # nothing renders in the background: versions 2 and 3 never get their images
    rendered: list[str] = []
    real_render = renderer.render

    def counting_render(operation, *args, **kwargs):
        rendered.append(operation)
        return real_render(operation, *args, **kwargs)

    monkeypatch.setattr(renderer, "render", counting_render)
    queue = RenderQueue(service, store, blobs, operations(), lambda: renderer)  # not started: on demand only
    canvas_id = await canvas_with(service, txt2img("a"), img2img("b", "a"))
    past = await service.state(canvas_id, 3)
    assert all(layer.output is None for layer in past.layers.values())
    looked = await queue.images_at(past)  # what any viewer gets: nothing is computed
    assert {layer_id: image["sha256"] for layer_id, image in looked.items()} == {"a": None, "b": None}
    assert looked["a"]["missing"] == "not rendered at this version"
    assert "has no image" in looked["b"]["missing"]
    assert rendered == []
    images = await queue.render_images_at(past)  # an editor's "render this version"
    assert rendered == ["txt2img", "img2img"]
    assert {layer_id: image["source"] for layer_id, image in images.items()} == {"a": "rendered", "b": "rendered"}
    assert all(blobs.exists(image["sha256"]) for image in images.values())
    again = await queue.images_at(past)  # the next look costs nothing: the cache has them
    assert {layer_id: image["source"] for layer_id, image in again.items()} == {"a": "cache", "b": "cache"}
    assert len(store.read(canvas_id)) == 3  # and nothing was appended


GATE = threading.Event()


class Gate(Operation):
    """Holds the render thread until the test opens the gate."""

    name = "gate"
    title = "Gate"

    class Params(Params):
        pass

    def run(self, ctx, inputs, params):
        GATE.wait(30)
        return Image.new("RGB", (8, 8))


@contextlib.asynccontextmanager
async def running_queue(
    tmp_path, registry: OperationRegistry, renderer: Renderer, **options
) -> AsyncIterator[tuple[CanvasService, RenderQueue, SQLEventStore]]:
    """A service and a started render queue of their own (options as RenderQueue takes them)."""
    store = SQLEventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    service = CanvasService(store, Decider(registry))
    await service.start()
    queue = RenderQueue(service, store, LocalBlobStore(tmp_path / "blobs"), registry, lambda: renderer, **options)
    await queue.start()
    try:
        yield service, queue, store
    finally:
        await queue.stop()
        await service.stop()
        store.close()


async def test_users_take_turns_within_a_canvas(tmp_path, renderer):
    registry = operations()
    registry.register(Gate)
    GATE.clear()
    async with running_queue(tmp_path, registry, Renderer(renderer.models, registry)) as (service, queue, store):
        try:
            held = await canvas_with(service, AddLayer(layer_id="gate", operation="gate"))
            while queue.running() is None:
                await asyncio.sleep(0.01)
            shared = (await service.create_canvas("shared", "alice")).canvas_id
            for layer_id, user in (("a1", "alice"), ("a2", "alice"), ("a3", "alice"), ("b1", "bob")):
                await service.execute(shared, txt2img(layer_id, seed=len(layer_id) + ord(layer_id[-1])), user)
            waiting = {item["layer_id"]: item for item in queue.queue(await service.state(shared))}
            assert waiting["b1"]["user"] == "bob"
            assert waiting["a1"]["wait_reason"] == "behind 1 render on other canvases"
        finally:
            GATE.set()  # never leave the render thread held
        await queue.wait_idle()
        order = [e.data.layer_id for e in store.read(shared) if e.type == "layer.rendered"]
        assert order == ["a1", "b1", "a2", "a3"]  # bob is not made to wait behind all of alice's work
        assert (await service.state(held)).layers["gate"].status == "rendered"


async def test_a_canvas_whose_state_cannot_be_scheduled_is_set_aside_and_cured_by_an_edit(tmp_path, renderer):
    from server.core.commands import DeleteLayer
    from server.core.events import CanvasCreated, LayerAdded
    from server.quarantine import Backoff
    from server.service import RecordedEvent

    blocked_notices: list[dict] = []
    quick = Backoff(base_s=0.05, cap_s=0.4)
    async with running_queue(tmp_path, operations(), renderer, backoff=quick) as (service, queue, _):
        queue.subscribe(lambda canvas_id, n: blocked_notices.append(n) if n["type"].startswith("render_") else None)
        events = [CanvasCreated(name="bad"), LayerAdded("ghostly", "img2img", {"source": "ghost"}, 1, ("ghost",), "G")]
        bad = (await service.import_log([RecordedEvent(e, "import", None, 0.0) for e in events])).canvas_id
        good = await canvas_with(service, txt2img("fine"))
        for _ in range(200):
            if (queue.blocked(bad) or {}).get("attempts", 0) >= 3:
                break
            await asyncio.sleep(0.05)
        blocked = queue.blocked(bad)
        assert blocked is not None and blocked["attempts"] >= 3 and "KeyError" in blocked["reason"]
        await queue.wait_idle()
        assert (await service.state(good)).layers["fine"].status == "rendered"  # the others were served
        assert any(n["type"] == "render_blocked" for n in blocked_notices)
        await service.execute(bad, DeleteLayer(layer_id="ghostly"), "alice")  # the owner removes the cause
        for _ in range(100):
            if queue.blocked(bad) is None:
                break
            await asyncio.sleep(0.05)
        assert queue.blocked(bad) is None
        assert any(n["type"] == "render_unblocked" for n in blocked_notices)


async def test_a_private_render_cache_reuses_renders_only_within_a_canvas(tmp_path, renderer):
    async with running_queue(tmp_path, operations(), renderer, private_cache=True) as (service, queue, _):
        first = await canvas_with(service, txt2img("a", seed=31))
        await queue.wait_idle()
        second = await canvas_with(service, txt2img("x", seed=31))  # the same render on another canvas
        await queue.wait_idle()
        assert queue.stats["computed"] == 2 and queue.stats["cache_hits"] == 0
        one, two = (await service.state(first)).layers["a"], (await service.state(second)).layers["x"]
        assert not two.output.cached and two.output.sha256 == one.output.sha256  # computed again, same bits
        fork = (await service.fork(first, 3, "bob")).canvas_id  # a fork names its source's images: they are its own
        await service.execute(fork, ChangeParams(layer_id="a", params={"prompt": "a red boat", **SMALL}, seed=32),
                              "bob")  # fmt: skip
        await service.execute(fork, ChangeParams(layer_id="a", params={"prompt": "a red boat", **SMALL}, seed=31),
                              "bob")  # fmt: skip
        await queue.wait_idle()
        assert (await service.state(fork)).layers["a"].output.cached


async def test_renders_that_need_no_model_go_on_while_the_model_loads(tmp_path, renderer):
    """The model loads in the background after start (a first build of builtin:tiny, a large checkpoint): an
    upload, a blank or a crop renders meanwhile; a render that needs the model waits for it, then renders."""
    loading, release = threading.Event(), threading.Event()

    class SlowToLoad(Renderer):
        def load_model(self, model=None):
            loading.set()
            assert release.wait(30)
            super().load_model(model)

    registry = operations()
    async with running_queue(tmp_path, registry, SlowToLoad(renderer.models, registry)) as (service, queue, _):
        queue.preload_model()
        assert await asyncio.to_thread(loading.wait, 10)
        canvas_id = await canvas_with(
            service,
            AddLayer(layer_id="bg", operation="blank", params={"width": 4, "height": 4, "colour": "#0000ff"}),
            txt2img("boat"),
        )
        for _ in range(500):
            if (await service.state(canvas_id)).layers["bg"].status == "rendered":
                break
            await asyncio.sleep(0.02)
        state = await service.state(canvas_id)
        assert state.layers["bg"].status == "rendered" and not release.is_set()  # while the model still loads
        assert state.layers["boat"].status == "pending"
        release.set()
        for _ in range(500):
            if (await service.state(canvas_id)).layers["boat"].status != "pending":
                break
            await asyncio.sleep(0.02)
        await queue.wait_idle()
        boat = (await service.state(canvas_id)).layers["boat"]
        assert boat.status == "rendered", boat.error
