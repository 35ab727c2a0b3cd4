"""Single-file checkpoints load offline, whatever their size, and paint exactly what their diffusers folder paints.

The stand-ins (tests/engine/standins.py) keep each family's real block structure and CLIP's real vocabulary; the
single files are made from their folders by diffusers' own conversion scripts. A file in the original key layout
must give the same pixels as the folder it came from: any weight that the derived configs or the conversion lost
would show.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from engine.errors import ModelUnavailable
from engine.models.checkpoint import inspect_checkpoint, read_shapes
from engine.models.families import FAMILIES, model_capabilities
from engine.models.loader import ModelManager, ModelOptions
from engine.models.single_file import derive_configs
from engine.render import Renderer
from tests.engine.standins import StandIn, build_stand_in

# family name -> (stand-in family, UNet input channels)
STAND_INS = {
    "sd1": ("sd1", 4),
    "sd2": ("sd2", 4),
    "sd2-v": ("sd2-v", 4),
    "sdxl": ("sdxl", 4),
    "sd1-inpaint": ("sd1", 9),
    "sdxl-inpaint": ("sdxl", 9),
}
OPERATIONS = ("txt2img", "img2img", "inpaint", "instruct_pix2pix", "controlnet_canny")
SOURCE = Image.new("RGB", (64, 64), (90, 120, 200))
MASK = Image.new("L", (64, 64), 0)
MASK.paste(255, (16, 16, 48, 48))
PARAMS = {
    "txt2img": ({"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}, {}),
    "img2img": ({"source": "s", "prompt": "at dusk", "steps": 4, "strength": 0.5}, {"source": SOURCE}),
    "inpaint": ({"source": "s", "mask": "m", "prompt": "a boat", "steps": 2}, {"source": SOURCE, "mask": MASK}),
}
DOCS = Path(__file__).parents[2] / "docs" / "models.md"


@pytest.fixture(scope="session")
def stand_in_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Other modules import this fixture, and pytest makes an imported fixture once per module: one folder for
    # the session (with `_stand_in`'s cache) keeps each stand-in built once
    root = tmp_path_factory.getbasetemp() / "stand-ins"
    root.mkdir(exist_ok=True)
    return root


@cache
def _stand_in(root: Path, name: str) -> StandIn:
    family, channels = STAND_INS[name]
    return build_stand_in(root, family, channels)


@pytest.fixture(scope="session")
def stand_ins(stand_in_root: Path) -> Iterator[dict[str, StandIn]]:
    yield {name: _stand_in(stand_in_root, name) for name in STAND_INS}


@pytest.fixture(scope="session")
def renderers(model_options: ModelOptions, stand_ins: dict[str, StandIn]) -> dict[tuple[str, str], Renderer]:
    made = {}
    for name, stand_in in stand_ins.items():
        # a folder converted from an SD 2 v file keeps the scheduler's v_prediction; SD 2 epsilon files are not v
        made[(name, "folder")] = Renderer(ModelManager(f"folder:{stand_in.folder}", model_options))
        made[(name, "single file")] = Renderer(ModelManager(f"file:{stand_in.single_file}", model_options))
    return made


@cache
def _outcome(renderer: Renderer, operation: str) -> np.ndarray | str:
    handle = renderer.models.get()
    kind = operation
    if kind not in handle.family.pipelines:
        return "not in this family"
    if not handle.supports(kind):  # type: ignore[arg-type]
        return "needs a companion model"
    params, inputs = PARAMS[operation]
    return np.asarray(renderer.render(operation, params, 7, inputs).images[0])


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a single file must not reach for the hub: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def assert_same_weights(folder: Renderer, single: Renderer, name: str) -> None:
    """The conversion is exact: every component of the file holds the folder's tensors, bit for bit."""
    from_folder, from_file = folder.models.get().pipeline("txt2img"), single.models.get().pipeline("txt2img")
    for component, module in from_folder.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        expected, loaded = module.state_dict(), getattr(from_file, component).state_dict()
        assert expected.keys() == loaded.keys(), f"{name} {component}: other tensors"
        changed = [key for key in expected if not torch.equal(expected[key], loaded[key])]
        assert not changed, f"{name} {component}: {changed[:3]} differ"


def assert_same_picture(from_folder: np.ndarray, from_file: np.ndarray, what: str) -> None:
    """Equal; or, on CPUs whose SIMD kernels round by the weights' memory alignment (AMD EPYC here: the folder's
    tensors are read unaligned from their file), off by 1/255 in a few values, never more."""
    difference = np.abs(from_folder.astype(int) - from_file.astype(int))
    assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size // 1000, (
        f"{what}: the single file paints differently (max {difference.max()}, {np.count_nonzero(difference)} values)"
    )


@pytest.mark.parametrize("name", list(STAND_INS))
def test_a_single_file_paints_what_its_folder_paints(name: str, renderers: dict, stand_ins: dict) -> None:
    family = FAMILIES[name]
    folder, single = renderers[(name, "folder")], renderers[(name, "single file")]
    assert inspect_checkpoint(stand_ins[name].single_file).family is family
    assert single.models.get().family is family
    assert_same_weights(folder, single, name)
    for operation in ("txt2img", "img2img", "inpaint"):
        from_folder, from_file = _outcome(folder, operation), _outcome(single, operation)
        assert isinstance(from_file, np.ndarray), from_file
        assert_same_picture(from_folder, from_file, f"{name} {operation}")
        assert from_file.std() > 1.0  # a picture, not a flat field
    pipe = single.models.get().pipeline("txt2img")
    assert type(getattr(pipe, "_inpaint", pipe)).__name__ == family.pipelines["txt2img"]
    fingerprint = single.fingerprint()
    assert fingerprint["family"] == name and fingerprint["single_file"]["derived_from"] == "tensor shapes"


def test_the_configs_are_read_from_the_tensor_shapes(stand_ins: dict) -> None:
    for name, stand_in in stand_ins.items():
        derived = derive_configs(read_shapes(stand_in.single_file), FAMILIES[name])
        for component, config in derived.components.items():
            real = json.loads((stand_in.folder / component / "config.json").read_text())
            for key, value in config.items():
                if key in ("_class_name", "architectures", "model_type", "sample_size"):
                    continue
                expected = real[key]
                if isinstance(value, list) and not isinstance(expected, list):
                    expected = [expected] * len(value)
                assert value == (list(expected) if isinstance(expected, tuple | list) else expected), (
                    f"{name} {component}.{key}: derived {value!r}, the folder has {real[key]!r}"
                )


def test_a_ckpt_loads_too_with_weights_only(model_options: ModelOptions, stand_in_root: Path, renderers: dict) -> None:
    from tests.engine.standins import convert_to_single_file

    folder = _stand_in(stand_in_root, "sd1").folder
    ckpt = convert_to_single_file(folder, stand_in_root / "sd1.ckpt", "sd1")
    renderer = Renderer(ModelManager(f"file:{ckpt}", model_options))
    assert_same_picture(_outcome(renderers[("sd1", "folder")], "txt2img"), _outcome(renderer, "txt2img"), "sd1 .ckpt")


def test_stabilitys_sd2_layout_keeps_the_unused_last_layer(
    model_options: ModelOptions, stand_in_root: Path, renderers: dict
) -> None:
    """Stability's SD 2 files hold all 24 layers of OpenCLIP ViT-H, the last one unused (the script's output
    has 23): with a 24th layer added, the file still paints what the 23-layer folder paints."""
    import torch

    source = _stand_in(stand_in_root, "sd2").single_file
    state = load_file(str(source))
    prefix = "cond_stage_model.model.transformer.resblocks."
    for key in [key for key in state if key.startswith(prefix + "22.")]:
        state[key.replace(prefix + "22.", prefix + "23.")] = torch.randn_like(state[key])
    full = stand_in_root / "sd2-24-layers.safetensors"
    save_file(state, str(full))
    renderer = Renderer(ModelManager(f"file:{full}", model_options))
    assert np.array_equal(_outcome(renderer, "txt2img"), _outcome(renderers[("sd2", "folder")], "txt2img"))


def test_the_family_is_told_at_start_from_the_header_alone(stand_ins: dict) -> None:
    for name, stand_in in stand_ins.items():
        family, capabilities = model_capabilities(str(stand_in.single_file))
        assert family is FAMILIES[name]
        assert capabilities["txt2img"] is None


def test_the_tokenizer_is_clips_own(renderers: dict) -> None:
    pipe = renderers[("sd1", "single file")].models.get().pipeline("txt2img")
    ids = pipe.tokenizer("a photograph of an astronaut riding a horse").input_ids
    assert ids == [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
    assert len(pipe.tokenizer) == 49408


def test_a_checkpoint_missing_a_component_is_refused_saying_which(
    model_options: ModelOptions, stand_in_root: Path
) -> None:
    state = load_file(str(_stand_in(stand_in_root, "sd1").single_file))
    cut = stand_in_root / "no-vae.safetensors"
    save_file({key: value for key, value in state.items() if not key.startswith("first_stage_model.")}, str(cut))
    renderer = Renderer(ModelManager(f"file:{cut}", model_options))
    with pytest.raises(ModelUnavailable, match=r"no VAE"):
        renderer.render("txt2img", PARAMS["txt2img"][0], 1, {})


def _table(renderers: dict) -> str:
    rows = ["| family | layout | " + " | ".join(OPERATIONS) + " |", "| --- | --- |" + " --- |" * len(OPERATIONS)]
    for name in STAND_INS:
        for layout in ("folder", "single file"):
            cells = []
            for operation in OPERATIONS:
                outcome = _outcome(renderers[(name, layout)], operation)
                cells.append("renders" if isinstance(outcome, np.ndarray) else outcome)
            rows.append(f"| `{name}` | {layout} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_docs_show_the_table_this_run_produced(renderers: dict) -> None:
    table = _table(renderers)
    text = DOCS.read_text()
    found = re.search(r"<!-- single-file-table -->\n(.*?)\n<!-- /single-file-table -->", text, re.S)
    assert found is not None and found.group(1) == table, f"docs/models.md should hold this table:\n{table}"
