"""SD 3 and FLUX.1 single files load offline and paint what their diffusers folders paint.

The stand-ins (tests/engine/standins_dit.py) keep the real class structure, CLIP's and T5's real vocabularies and
the real head widths; their single files are in the original key layout, made by inverting diffusers' own
conversions and proven by converting back bit for bit. Each file must load the folder's weights bit for bit and
paint what the folder paints, with every network connection refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelUnavailable
from engine.models.checkpoint import classify, inspect_checkpoint, read_shapes
from engine.models.families import FAMILIES, FLUX, model_capabilities
from engine.models.loader import ModelManager, ModelOptions
from engine.models.single_file import derive_configs
from engine.render import Renderer
from tests.engine.standins_dit import DiTStandIn, build_dit_stand_in
from tests.engine.test_engine_single_files import (  # the same checks as the UNet families' files
    MASK,
    SOURCE,
    assert_same_picture,
    assert_same_weights,
    no_network,
)

__all__ = ["no_network"]  # autouse: every test here fails on a connection attempt

# name -> (family, variant: SD 3.5 medium's MMDiT-X, FLUX.1 dev's guidance embedding)
STAND_INS = {"sd3": ("sd3", False), "sd35": ("sd3", True), "flux": ("flux", False), "flux-dev": ("flux", True)}
LABELS = {"sd3": "`sd3` (SD 3 medium)", "sd35": "`sd3` (SD 3.5 medium: q/k norms, MMDiT-X)",
          "flux": "`flux` (schnell)", "flux-dev": "`flux` (dev: guidance embedding)"}  # fmt: skip
OPERATIONS = ("txt2img", "img2img", "inpaint", "instruct_pix2pix", "controlnet_canny")
PARAMS = {
    "txt2img": ({"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}, {}),
    "img2img": ({"source": "s", "prompt": "at dusk", "steps": 4, "strength": 0.5}, {"source": SOURCE}),
    "inpaint": ({"source": "s", "mask": "m", "prompt": "a boat", "steps": 2}, {"source": SOURCE, "mask": MASK}),
}
DOCS = Path(__file__).parents[2] / "docs" / "models.md"


@pytest.fixture(scope="session")
def dit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The other DiT modules import these fixtures, and pytest makes an imported fixture once per module: one folder
    # for the session (and the caches below) keep the stand-ins and their renderers built once
    root = tmp_path_factory.getbasetemp() / "dit-stand-ins"
    root.mkdir(exist_ok=True)
    return root


@cache
def _stand_in(root: Path, name: str) -> DiTStandIn:
    family, variant = STAND_INS[name]
    return build_dit_stand_in(root, family, variant)


@pytest.fixture(scope="session")
def stand_ins(dit_root: Path) -> Iterator[dict[str, DiTStandIn]]:
    yield {name: _stand_in(dit_root, name) for name in STAND_INS}


_RENDERERS: dict[tuple[Path, str], Renderer] = {}  # (folder or file, layout) -> its renderer, for the session


def _renderer(location: Path, layout: str, options: ModelOptions) -> Renderer:
    spec = f"{'folder' if layout == 'folder' else 'file'}:{location}"
    return _RENDERERS.setdefault((location, layout), Renderer(ModelManager(spec, options)))


@pytest.fixture(scope="session")
def renderers(model_options: ModelOptions, stand_ins: dict[str, DiTStandIn]) -> dict[tuple[str, str], Renderer]:
    made = {}
    for name, stand_in in stand_ins.items():
        made[(name, "folder")] = _renderer(stand_in.folder, "folder", model_options)
        made[(name, "single file")] = _renderer(stand_in.single_file, "single file", model_options)
    return made


@cache
def _outcome(renderer: Renderer, operation: str) -> np.ndarray | str:
    handle = renderer.models.get()
    if operation not in handle.family.pipelines:
        return "not in this family"
    params, inputs = PARAMS[operation]
    return np.asarray(renderer.render(operation, params, 7, inputs).images[0])


@pytest.mark.parametrize("name", list(STAND_INS))
def test_a_single_file_paints_what_its_folder_paints(name: str, renderers: dict, stand_ins: dict) -> None:
    family = FAMILIES[STAND_INS[name][0]]
    folder, single = renderers[(name, "folder")], renderers[(name, "single file")]
    assert inspect_checkpoint(stand_ins[name].single_file).family is family
    assert single.models.get().family is family
    assert_same_weights(folder, single, name)
    for operation in ("txt2img", "img2img", "inpaint"):
        from_folder, from_file = _outcome(folder, operation), _outcome(single, operation)
        assert isinstance(from_file, np.ndarray) and isinstance(from_folder, np.ndarray), from_file
        assert_same_picture(from_folder, from_file, f"{name} {operation}")
        assert from_file.std() > 1.0  # a picture, not a flat field
    pipe = single.models.get().pipeline("txt2img")
    assert type(pipe).__name__ == family.pipelines["txt2img"]
    fingerprint = single.fingerprint()
    assert fingerprint["family"] == family.name and fingerprint["single_file"]["derived_from"] == "tensor shapes"


def test_the_configs_are_read_from_the_tensor_shapes(stand_ins: dict) -> None:
    for name, stand_in in stand_ins.items():
        derived = derive_configs(read_shapes(stand_in.single_file), FAMILIES[STAND_INS[name][0]])
        for component, config in derived.components.items():
            real = json.loads((stand_in.folder / component / "config.json").read_text())
            for key, value in config.items():
                if key in ("_class_name", "architectures", "model_type", "sample_size"):
                    continue
                expected = real[key]
                assert value == (list(expected) if isinstance(expected, tuple | list) else expected), (
                    f"{name} {component}.{key}: derived {value!r}, the folder has {real[key]!r}"
                )
        scheduler = json.loads((stand_in.folder / "scheduler" / "scheduler_config.json").read_text())
        assert {key: scheduler[key] for key in derived.scheduler if key != "_class_name"} == {
            key: value for key, value in derived.scheduler.items() if key != "_class_name"
        }, f"{name}: the scheduler is not the one its transformer was trained with"


def test_the_family_is_told_at_start_from_the_header_alone(stand_ins: dict) -> None:
    for name, stand_in in stand_ins.items():
        family, capabilities = model_capabilities(str(stand_in.single_file))
        assert family is FAMILIES[STAND_INS[name][0]]
        assert capabilities["txt2img"] is None
        assert capabilities["instruct_pix2pix"] is not None  # not in these families
        assert model_capabilities(str(stand_in.transformer_only))[0] is family  # BFL's layout: no prefix


@pytest.mark.parametrize("name", ["sd3", "flux"])
def test_a_transformer_alone_is_refused_naming_what_it_lacks(
    name: str, model_options: ModelOptions, stand_ins: dict
) -> None:
    """BFL's FLUX files (and SD 3 transformers saved alone) hold no VAE and no text encoders: the render says
    which, and where to get a whole model, before anything is converted."""
    renderer = Renderer(ModelManager(f"file:{stand_ins[name].transformer_only}", model_options))
    with pytest.raises(ModelUnavailable) as refused:
        renderer.render("txt2img", PARAMS["txt2img"][0], 1, {})
    message = str(refused.value)
    lacking = message.split(", not ", 1)[1]
    for missing in ("the VAE", "CLIP-L (text_encoders.clip_l)", "T5-XXL (text_encoders.t5xxl)"):
        assert missing in lacking, message
    assert "CLIP-G" in message if name == "sd3" else "CLIP-G" not in message
    # SD 3 runs without T5 (it is named as optional), FLUX cannot
    optional = "(nor T5-XXL (text_encoders.t5xxl), which it can run without)"
    assert optional in message if name == "sd3" else "run without" not in message
    assert "it holds the transformer" in message and "diffusers folder" in message


def test_the_tokenizers_are_clips_and_t5s_own(renderers: dict) -> None:
    pipe = renderers[("sd3", "single file")].models.get().pipeline("txt2img")
    prompt = "a photograph of an astronaut riding a horse"
    assert pipe.tokenizer(prompt).input_ids == [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
    assert pipe.tokenizer_3(prompt).input_ids == [3, 9, 6419, 13, 46, 30059, 7494, 3, 9, 4952, 1]
    assert len(pipe.tokenizer_3) == 32100 and pipe.tokenizer_3.model_max_length == 512


def test_sd35s_q_k_norms_and_second_attention_are_read(stand_ins: dict) -> None:
    derived = derive_configs(read_shapes(stand_ins["sd35"].single_file), FAMILIES["sd3"])
    transformer = derived.components["transformer"]
    assert transformer["qk_norm"] == "rms_norm" and transformer["dual_attention_layers"] == [0]
    assert transformer["attention_head_dim"] == 64 and transformer["num_attention_heads"] == 2


def test_flux_dev_is_told_from_its_guidance_embedding(stand_ins: dict) -> None:
    derived = derive_configs(read_shapes(stand_ins["flux-dev"].single_file), FLUX)
    assert derived.components["transformer"]["guidance_embeds"] is True
    assert derived.scheduler["use_dynamic_shifting"] is True and derived.scheduler["shift"] == 3.0
    schnell = derive_configs(read_shapes(stand_ins["flux"].single_file), FLUX)
    assert schnell.scheduler["use_dynamic_shifting"] is False and schnell.scheduler["shift"] == 1.0


def test_other_flux_shaped_transformers_are_not_taken_for_flux_1() -> None:
    """FLUX Fill (384 input channels) and Depth (128) take more than the latents; Chroma has no pooled CLIP input."""
    base = {"double_blocks.0.img_attn.norm.key_norm.scale": (128,), "vector_in.in_layer.weight": (3072, 768)}
    assert classify({**base, "img_in.weight": (3072, 64)}).family is FLUX
    fill = classify({**base, "img_in.weight": (3072, 384)})
    assert fill.family is None and "384 input channels" in fill.what
    chroma = classify({"double_blocks.0.img_attn.norm.key_norm.scale": (128,), "img_in.weight": (3072, 64)})
    assert chroma.family is None and "not FLUX.1" in chroma.what


def test_the_flux_converter_is_diffusers_own_with_the_width_read_from_the_file() -> None:
    """Only FLUX.1's width, written in diffusers' converter as 3072, is read from the file; the rest is diffusers'
    own source (so a real 3072-wide FLUX.1 converts exactly as diffusers converts it)."""
    import inspect
    import textwrap

    from diffusers.loaders import single_file_utils

    from engine.models import single_file

    original = textwrap.dedent(inspect.getsource(single_file_utils.convert_flux_transformer_checkpoint_to_diffusers))
    assert original.count(single_file._FLUX_WIDTH_LINE) == 1  # a diffusers that changes this line is noticed
    converter = single_file.flux_converter()
    assert converter.__code__.co_filename == single_file_utils.__file__
    assert converter is not single_file_utils.convert_flux_transformer_checkpoint_to_diffusers


def _table(renderers: dict) -> str:
    rows = ["| family | layout | " + " | ".join(OPERATIONS) + " |", "| --- | --- |" + " --- |" * len(OPERATIONS)]
    for name in STAND_INS:
        for layout in ("folder", "single file"):
            cells = []
            for operation in OPERATIONS:
                outcome = _outcome(renderers[(name, layout)], operation)
                cells.append("renders" if isinstance(outcome, np.ndarray) else outcome)
            rows.append(f"| {LABELS[name]} | {layout} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_docs_show_the_table_this_run_produced(renderers: dict) -> None:
    table = _table(renderers)
    text = DOCS.read_text()
    found = re.search(r"<!-- dit-single-file-table -->\n(.*?)\n<!-- /dit-single-file-table -->", text, re.S)
    assert found is not None and found.group(1) == table, f"docs/models.md should hold this table:\n{table}"
