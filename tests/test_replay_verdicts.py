"""`opendream replay` tells the truth, layer by layer, and `opendream run` renders a workflow headlessly: each run
is the real CLI in another process, on workflow files exported from real canvases (builtin:tiny, 64 px, 2 steps)
and altered the way real files differ from a replay."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

from engine.png import encode_png
from server.config import WorkflowLimits
from server.core.commands import AddLayer
from server.workflow import export_workflow, extract_from_png
from tests.test_renders import canvas_with, engine, img2img, model_options, operations, renderer, txt2img  # noqa: F401 - fixtures

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ORIGINAL = {"source": "opendream-2023", "model": "runwayml/stable-diffusion-v1-5", "device": "cuda"}


def cli(tmp_path: Path, model_options, *args: str) -> subprocess.CompletedProcess:  # noqa: F811
    data = tmp_path / "cli-data"
    if not data.exists():
        data.mkdir()
        (data / "models").symlink_to(model_options.models_dir)
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--data", str(data)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path,
    )  # fmt: skip


def report_of(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


async def exported(engine, *commands) -> dict:  # noqa: F811
    service, queue, blobs, store, _ = engine
    canvas_id = await canvas_with(service, *commands)
    await queue.wait_idle()
    state = await service.state(canvas_id)
    return export_workflow(state.name, canvas_id, store.read(canvas_id), blobs, operations())


def render_event(document: dict, layer_id: str) -> dict:
    [event] = [e for e in document["events"] if e["type"] == "layer.rendered" and e["payload"]["layer_id"] == layer_id]
    return event["payload"]


def recorded_image(document: dict, layer_id: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(document["blobs"][render_event(document, layer_id)["output"]])))


def record(document: dict, layer_id: str, image: Image.Image) -> None:
    """Replace the recorded image of `layer_id` in the file with `image` (as a file that was altered would)."""
    png = encode_png(image)
    sha = hashlib.sha256(png).hexdigest()
    document["blobs"][sha] = base64.b64encode(png).decode()
    payload = render_event(document, layer_id)
    payload.update(output=sha, width=image.width, height=image.height)


def write(tmp_path: Path, document: dict, name: str = "canvas.opendream.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(document))
    return path


def png_bytes(colour=(10, 200, 30), size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_fresh_canvas_replays_identical_and_verifies(engine, tmp_path, model_options):  # noqa: F811
    upload = engine[2].put(png_bytes())
    document = await exported(
        engine,
        txt2img("a", seed=11),
        img2img("b", "a"),
        AddLayer(layer_id="u", operation="upload", params={"blob": upload}),
    )
    result = cli(tmp_path, model_options, "replay", str(write(tmp_path, document)), "--verify")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].endswith("3 layers") and lines[-1] == "opendream: 3 identical; 3 of 3 layers verified"
    assert all(" identical" in line for line in lines[1:-1]) and "[####################] 3/3" in lines[-2]


async def test_each_verdict_on_an_altered_file_and_verify_fails(engine, tmp_path, model_options):  # noqa: F811
    document = await exported(
        engine, txt2img("a", seed=11), img2img("b", "a"), txt2img("c", seed=5), txt2img("d", seed=7),
        txt2img("e", seed=9),
    )  # fmt: skip
    other_engine = recorded_image(document, "c")  # another picture of the same size, as another model makes
    nudged = recorded_image(document, "a").convert("RGB")
    r, g, b = nudged.getpixel((3, 4))
    nudged.putpixel((3, 4), (r + 1 if r < 255 else r - 1, g, b))
    record(document, "a", nudged)  # one value off by one: within the tolerance
    record(document, "c", Image.eval(recorded_image(document, "c").convert("RGB"), lambda v: 255 - v))  # inverted
    record(document, "d", recorded_image(document, "d").resize((32, 40)))  # another size
    record(document, "e", other_engine)
    render_event(document, "e")["fingerprint"] = ORIGINAL  # made by another engine
    result = cli(tmp_path, model_options, "replay", str(write(tmp_path, document)), "--verify", "--json")
    assert result.returncode == 1, result.stderr
    report = report_of(result)
    layers = {layer["layer_id"]: layer for layer in report["layers"]}
    assert {i: layer["outcome"] for i, layer in layers.items()} == {
        "a": "within_tolerance", "b": "identical", "c": "different", "d": "size_differs", "e": "not_comparable",
    }  # fmt: skip
    assert report["counts"] == {"identical": 1, "within_tolerance": 1, "different": 1, "size_differs": 1,
                                "not_comparable": 1}  # fmt: skip
    assert report["verified"] == 4
    assert layers["a"]["max_diff"] == 1 and layers["a"]["psnr"] > 80
    assert layers["a"]["detail"].startswith("max diff 1, PSNR ")
    assert layers["c"]["max_diff"] > 100
    # b is rendered from the *replayed* a, so a's altered record does not spread.
    assert layers["b"]["inputs_from_record"] == []
    assert layers["d"]["recorded_size"] == [32, 40] and layers["d"]["replayed_size"] == [64, 64]
    assert layers["d"]["detail"] == "recorded 32x40, replayed 64x64" and layers["d"]["max_diff"] is None
    assert layers["e"]["recorded_fingerprint"] == ORIGINAL
    assert layers["e"]["detail"] == "recorded by opendream-2023 (model runwayml/stable-diffusion-v1-5, device cuda)"
    assert "2 of 4 verified layers differ" in result.stderr

    text = cli(tmp_path, model_options, "replay", str(tmp_path / "canvas.opendream.json"))  # no --verify
    assert text.returncode == 0, text.stderr
    rows = [re.search(r"\] \d+/5\s+(\S+)\s+\S+\s+(.*)", line) for line in text.stdout.splitlines()[1:-1]]
    lines = {row[1]: " ".join(row[2].split()) for row in rows}
    assert lines["d"] == "size differs recorded 32x40, replayed 64x64"
    assert lines["e"].startswith("not comparable recorded by opendream-2023 (model runwayml/")
    assert lines["a"].startswith("within tolerance max diff 1, PSNR") and lines["b"] == "identical"
    assert text.stdout.strip().splitlines()[-1] == (
        "opendream: 1 identical, 1 within tolerance, 1 different, 1 size differs, 1 not comparable; "
        "4 of 5 layers verified"
    )


async def test_nothing_verified_fails_verify(engine, tmp_path, model_options):  # noqa: F811
    document = await exported(engine, txt2img("a", seed=11), txt2img("b", seed=12))
    pictures = {layer_id: recorded_image(document, layer_id) for layer_id in "ab"}
    for layer_id, other in (("a", "b"), ("b", "a")):  # pictures another model made, with its fingerprint
        record(document, layer_id, pictures[other].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        render_event(document, layer_id)["fingerprint"] = ORIGINAL
    result = cli(tmp_path, model_options, "replay", str(write(tmp_path, document)), "--verify", "--json")
    assert result.returncode == 1
    assert report_of(result)["counts"] == {"not_comparable": 2} and report_of(result)["verified"] == 0
    assert "nothing was verified" in result.stderr

    # A recipe whose renders never happened (no render events): every layer is not_rendered; still nothing verified.
    document["events"] = [e for e in document["events"] if e["type"] != "layer.rendered"]
    recipe = cli(tmp_path, model_options, "replay", str(write(tmp_path, document, "recipe.json")), "--verify")
    assert recipe.returncode == 1 and "nothing was verified" in recipe.stderr
    assert recipe.stdout.strip().splitlines()[-1] == "opendream: 2 not rendered; 0 of 2 layers verified"


async def test_could_not_render_and_downstream_continues_from_the_record(engine, tmp_path, model_options):  # noqa: F811
    """`split` exists where the canvas was made (an extension) and not where it is replayed: its layer cannot
    render, and the layers showing its further images continue from its recorded images. `explode` never
    rendered anywhere: the layer reading it cannot render either, and says why."""
    service, queue, _, _, _ = engine
    canvas_id = await canvas_with(
        service,
        txt2img("a"),
        AddLayer(layer_id="s", operation="split", params={"count": 3}),
        AddLayer(layer_id="x", operation="explode", params={}),
        img2img("y", "x"),
    )
    await queue.wait_idle()
    state = await service.state(canvas_id)
    assert state.order == ("a", "s", "x", "y", "s.1", "s.2")
    assert [state.layers[i].status for i in ("a", "s", "s.1", "s.2", "x")] == ["rendered"] * 4 + ["failed"]
    data = tmp_path / "cli-data"
    data.mkdir()
    (data / "models").symlink_to(model_options.models_dir)
    (data / "blobs").symlink_to(tmp_path / "blobs")
    (data / "opendream.db").symlink_to(tmp_path / "db.sqlite")
    for suffix in ("-wal", "-shm"):
        if (tmp_path / f"db.sqlite{suffix}").exists():
            (data / f"opendream.db{suffix}").symlink_to(tmp_path / f"db.sqlite{suffix}")
    result = cli(tmp_path, model_options, "replay", "--canvas", canvas_id, "--verify", "--json")
    assert result.returncode == 1, result.stderr
    layers = {layer["layer_id"]: layer for layer in report_of(result)["layers"]}
    assert {i: layer["outcome"] for i, layer in layers.items()} == {
        "a": "identical", "s": "could_not_render", "s.1": "identical", "s.2": "identical",
        "x": "could_not_render", "y": "could_not_render",
    }  # fmt: skip
    assert layers["s"]["error"] == "operation 'split' is not available here (a missing extension?)"
    assert layers["s.1"]["inputs_from_record"] == ["s"] and layers["s.2"]["inputs_from_record"] == ["s"]
    assert layers["s.1"]["detail"] == "from the recorded image of 's' (could not render)"
    assert layers["y"]["error"] == "input 'x' could not render and has no recorded image at hand"
    assert "has no image yet" not in result.stdout


async def test_run_writes_every_layer_and_the_composite(engine, tmp_path, model_options):  # noqa: F811
    upload = engine[2].put(png_bytes(size=(16, 16)))
    document = await exported(
        engine,
        txt2img("a", seed=11),
        img2img("b", "a"),
        AddLayer(layer_id="u", operation="upload", params={"blob": upload}),
    )
    result = cli(tmp_path, model_options, "run", str(write(tmp_path, document, "harbour.opendream.json")))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "opendream-run-harbour"
    assert sorted(p.name for p in out.iterdir()) == ["01-a.png", "02-b.png", "03-u.png", "composite.png"]
    for path in out.iterdir():
        image = Image.open(path)
        image.load()
        carried = extract_from_png(path.read_bytes(), WorkflowLimits())
        assert carried["format"] == "opendream.workflow" and len(carried["events"]) == len(document["events"])
    assert Image.open(out / "composite.png").size == (64, 64) and Image.open(out / "03-u.png").size == (16, 16)
    # The model rendered it again, to the pixels the canvas recorded.
    assert Image.open(out / "01-a.png").tobytes() == recorded_image(document, "a").tobytes()
    lines = result.stdout.strip().splitlines()
    assert "[####################] 3/3" in lines[-2] and any(line.endswith("rendered 16x16") for line in lines)
    assert lines[-1] == f"opendream: rendered 3 of 3 layers into {Path('opendream-run-harbour')}, and composite.png"


async def test_run_exits_non_zero_when_a_layer_cannot_render(engine, tmp_path, model_options):  # noqa: F811
    upload = engine[2].put(png_bytes(size=(32, 24)))
    document = await exported(
        engine,
        AddLayer(layer_id="u", operation="upload", params={"blob": upload}),
        txt2img("a", seed=3),
        img2img("b", "a"),
    )
    out = tmp_path / "out"
    # This machine allows smaller renders than the one that made the file: a's 64x64 is over its limit.
    os.environ["OPENDREAM_MAX_PIXELS"] = "2000"
    try:
        result = cli(tmp_path, model_options, "run", str(write(tmp_path, document)), "--out", str(out))
    finally:
        del os.environ["OPENDREAM_MAX_PIXELS"]
    assert result.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["01-u.png", "composite.png"]
    assert Image.open(out / "composite.png").size == (32, 24)
    assert "could not render" in result.stdout
    assert result.stdout.strip().endswith("rendered 1 of 3 layers into " + str(out) + ", and composite.png; "
                                          "2 could not render: a, b")  # fmt: skip


FIXTURES = Path(__file__).parent / "fixtures" / "opendream2023"


def test_an_original_opendream_file_is_not_comparable_and_verifies_nothing(tmp_path, model_options):  # noqa: F811
    """A dream saved by the original Opendream (its picture 68x70, which it rendered at the size floored to 8):
    another model made it, so nothing can be verified, the verdict says who made it and both sizes, and --verify
    fails saying so."""
    picture = base64.b64encode(png_bytes(size=(68, 70))).decode()
    options = {"seed": 3, "num_steps": 2, "model_ckpt": "runwayml/stable-diffusion-v1-5", "device": "mps"}
    original = {
        "0": {"op": "dream", "image": f"data:image/png;base64,{picture}", "params": ["a cat"], "options": options}
    }
    path = tmp_path / "original.json"
    path.write_text(json.dumps(original))
    result = cli(tmp_path, model_options, "replay", str(path), "--verify", "--json")
    assert result.returncode == 1
    report = report_of(result)
    assert report["verified"] == 0 and report["counts"] == {"not_comparable": 1}
    [layer] = report["layers"]
    assert layer["recorded_fingerprint"]["source"] == "opendream-2023"
    assert layer["detail"] == (
        "recorded by opendream-2023 (dream, model runwayml/stable-diffusion-v1-5, device mps); "
        "recorded 68x70, replayed 64x64"
    )
    assert "nothing was verified" in result.stderr


def test_run_an_original_opendream_file(tmp_path, model_options):  # noqa: F811
    """`opendream run`, as the original's `opendream.execute("workflow.json")`: its sam layer cannot render
    without a SAM checkpoint, the further masks continue from its recorded images, and the run says so."""
    result = cli(tmp_path, model_options, "run", str(FIXTURES / "webui-sam.json"), "--out", "out")
    assert result.returncode == 1
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "composite.png" in names and "03-layer-1-1.png" in names and not any("-layer-1.png" in n for n in names)
    assert "from the recorded image of 'layer-1' (could not render)" in result.stdout
    assert result.stdout.strip().endswith("1 could not render: layer-1")
    for name in names:
        extract_from_png((tmp_path / "out" / name).read_bytes(), WorkflowLimits())
