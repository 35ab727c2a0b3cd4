"""A transformer-only SD 3 / FLUX file (BFL's flux1-dev.safetensors) loads with its VAE and text encoders taken
from their own files, as ComfyUI users keep them (models/diffusion_models, models/vae, models/text_encoders).

The tiny stand-ins' whole single files are split into those separate files, in their real layouts; the
transformer alone must load the whole file's weights bit for bit and paint what it paints, offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from engine.errors import ModelUnavailable
from engine.models.checkpoint import read_shapes
from engine.models.families import FAMILIES
from engine.models.library import ModelLibrary
from engine.models.loader import ModelManager, ModelOptions
from engine.models.single_file import (
    AmbiguousCompanions,
    CompanionFile,
    choose_companions,
    companion_file,
    scan_companions,
)
from engine.render import Renderer
from tests.engine.standins_dit import DiTStandIn, split_into_companions
from tests.engine.test_engine_dit_single_files import PARAMS, _outcome, dit_root, renderers, stand_ins
from tests.engine.test_engine_single_files import assert_same_picture, assert_same_weights, no_network

# no_network: autouse, every test here fails on a connection attempt; the stand-ins and their whole files'
# renderers are the session's (tests/engine/test_engine_dit_single_files.py renders them too)
__all__ = ["dit_root", "no_network", "renderers", "stand_ins"]

NAMES = ["sd3", "flux"]
ALL = [*NAMES, "sd35", "flux-dev"]  # and SD 3.5's MMDiT-X, FLUX.1 dev's guidance embedding
T5 = "text_encoders/t5xxl_fp16.safetensors"


def _models(tmp_path: Path, stand_in: DiTStandIn, skip: tuple[str, ...] = ()) -> Path:
    return split_into_companions(stand_in, tmp_path / "models", skip)


@pytest.mark.parametrize("name", ALL)
def test_a_transformer_with_its_parts_beside_it_paints_what_the_whole_file_paints(
    name: str, tmp_path: Path, model_options: ModelOptions, stand_ins: dict, renderers: dict
) -> None:
    transformer = _models(tmp_path, stand_ins[name])
    whole = renderers[(name, "single file")]
    parts = Renderer(ModelManager(f"file:{transformer}", model_options))
    assert_same_weights(whole, parts, f"{name} from separate files")
    for operation in ("txt2img", "img2img", "inpaint"):  # every operation the families have
        from_whole, from_parts = _outcome(whole, operation), _outcome(parts, operation)
        assert isinstance(from_whole, np.ndarray) and isinstance(from_parts, np.ndarray), from_parts
        assert_same_picture(from_whole, from_parts, f"{name} {operation} from separate files")
        assert from_parts.std() > 1.0
    used = parts.fingerprint()["single_file"]["companions"]
    expected = {"vae", "clip_l", "t5xxl"} | ({"clip_g"} if name.startswith("sd") else set())
    assert set(used) == expected, used
    assert used["vae"] == "ae.safetensors"
    unloaded = Renderer(ModelManager(f"file:{transformer}", model_options))  # its fingerprint, read from headers
    assert unloaded.fingerprint()["single_file"] == parts.fingerprint()["single_file"]
    hashes = parts.fingerprint()["single_file"]["companions_sha256"]
    assert set(hashes) == expected and all(digest.startswith("sha256:") for digest in hashes.values()), hashes


@pytest.mark.parametrize(("name", "skip", "named"), [("flux", T5, "T5-XXL"), ("sd3", "vae/ae.safetensors", "VAE")])
def test_a_missing_part_is_refused_naming_it(
    name: str, skip: str, named: str, tmp_path: Path, model_options: ModelOptions, stand_ins: dict
) -> None:
    transformer = _models(tmp_path, stand_ins[name], skip=(skip,))
    renderer = Renderer(ModelManager(f"file:{transformer}", model_options))
    with pytest.raises(ModelUnavailable) as refused:
        renderer.render("txt2img", PARAMS["txt2img"][0], 1, {})
    message = str(refused.value)
    lacking = message.split(", not ", 1)[1].split(". ", 1)[0]  # "it holds …, not <what it lacks> (with …)"
    assert named in lacking and "CLIP-L" not in lacking.split(" (with ")[0], message
    assert "clip_l.safetensors" in lacking and skip.split("/")[1] not in lacking  # what it did find
    assert "text_encoders/" in message and "vae/" in message  # where to put it


def test_several_fitting_files_and_none_named_are_refused_saying_which_to_name(tmp_path: Path, stand_ins: dict) -> None:
    transformer = _models(tmp_path, stand_ins["flux"])
    models = transformer.parent.parent
    (models / "clip").mkdir()  # ComfyUI's older folder for text encoders
    shutil.copyfile(models / T5, models / "clip" / "t5xxl_fp8_e4m3fn.safetensors")
    shapes, flux = read_shapes(transformer), FAMILIES["flux"]
    with pytest.raises(AmbiguousCompanions) as refused:
        choose_companions(shapes, flux, scan_companions(models))
    assert "t5xxl_fp16.safetensors, t5xxl_fp8_e4m3fn.safetensors" in str(refused.value)
    assert "name one as t5xxl in models.toml" in str(refused.value)
    chosen = choose_companions(shapes, flux, scan_companions(models), {"t5xxl": models / T5})
    assert chosen["t5xxl"].path == models / T5


def test_each_files_kind_is_told_from_its_header(tmp_path: Path, stand_ins: dict) -> None:
    models = _models(tmp_path, stand_ins["sd3"]).parent.parent
    kinds = {path: companion_file(models / path) for path in ("vae/ae.safetensors", "text_encoders/clip_l.safetensors",
                                                              "text_encoders/clip_g.safetensors", T5)}  # fmt: skip
    assert {path: (found.kind, found.width) for path, found in kinds.items() if found} == {
        "vae/ae.safetensors": ("vae", 16),
        "text_encoders/clip_l.safetensors": ("clip", 32),
        "text_encoders/clip_g.safetensors": ("clip", 64),
        T5: ("t5", 128),
    }
    assert companion_file(stand_ins["sd3"].transformer_only) is None  # a transformer is no companion
    chosen = choose_companions(read_shapes(stand_ins["sd3"].transformer_only), FAMILIES["sd3"], scan_companions(models))
    assert {role: file.path.name for role, file in chosen.items()} == {
        "vae": "ae.safetensors", "clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors",
        "t5xxl": "t5xxl_fp16.safetensors",
    }  # fmt: skip


# --- the library lists a transformer-only file as it will load ---------------------------------------------------

TRANSFORMER = "diffusion_models/flux-transformer.safetensors"


def test_the_library_lists_a_transformer_with_its_parts_as_usable(tmp_path: Path, stand_ins: dict) -> None:
    models = _models(tmp_path, stand_ins["flux"]).parent.parent
    entry = ModelLibrary("builtin:tiny", models).get(TRANSFORMER).describe()
    assert entry["usable"] and entry["family"] == "flux", entry["problem"]
    assert entry["parts"] == {"vae": "vae/ae.safetensors", "clip_l": "text_encoders/clip_l.safetensors",
                              "t5xxl": "text_encoders/t5xxl_fp16.safetensors"}  # fmt: skip


def test_the_library_lists_a_transformer_lacking_a_part_as_unusable_naming_it(tmp_path: Path, stand_ins: dict) -> None:
    """FLUX cannot run without T5 (SD 3 can: tests/engine/test_engine_dit_without_t5.py)."""
    models = _models(tmp_path, stand_ins["flux"], skip=(T5,)).parent.parent
    entry = ModelLibrary("builtin:tiny", models).get(TRANSFORMER).describe()
    assert not entry["usable"] and entry["parts"] == {}
    assert "not T5-XXL (text_encoders.t5xxl) (with ae.safetensors, clip_l" in entry["problem"], entry["problem"]
    assert str(models) not in entry["problem"]  # the listing is open to every client: no server paths


def test_sd3s_clip_l_is_the_narrower_and_a_released_one_is_told_alone(stand_ins: dict) -> None:
    """The tiny CLIPs (32 and 64 wide) are told apart as a pair (their widths sum to the pooled width); a released
    CLIP-L (768) is told alone, so a missing CLIP-G is the only part named."""
    shapes = dict(read_shapes(stand_ins["sd3"].transformer_only))
    shapes["y_embedder.mlp.0.weight"] = (shapes["y_embedder.mlp.0.weight"][0], 768 + 1280)
    clip_l = CompanionFile(Path("clip_l.safetensors"), "clip", 768, "")
    chosen = choose_companions(shapes, FAMILIES["sd3"], [clip_l])
    assert chosen == {"clip_l": clip_l}
    clip_g = CompanionFile(Path("clip_g.safetensors"), "clip", 1280, "")
    assert choose_companions(shapes, FAMILIES["sd3"], [clip_g, clip_l]) == {"clip_l": clip_l, "clip_g": clip_g}


def test_models_toml_names_the_part_when_several_fit(
    tmp_path: Path, model_options: ModelOptions, stand_ins: dict, renderers: dict
) -> None:
    models = _models(tmp_path, stand_ins["flux"]).parent.parent
    shutil.copyfile(models / T5, models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors")
    unnamed = ModelLibrary("builtin:tiny", models).get(TRANSFORMER).describe()
    assert not unnamed["usable"] and "name one as t5xxl in models.toml" in unnamed["problem"]
    (models / "models.toml").write_text(f'[[model]]\nname = "flux-dev"\nspec = "{TRANSFORMER}"\nt5xxl = "{T5}"\n')
    library = ModelLibrary("builtin:tiny", models)
    for name in ("flux-dev", TRANSFORMER):  # the parts belong to the file: its directory entry uses them too
        named = library.get(name).describe()
        assert named["usable"] and named["parts"]["t5xxl"] == T5, named["problem"]
    renderer = Renderer(ModelManager("builtin:tiny", model_options), library=library)
    painted = np.asarray(renderer.render("txt2img", {**PARAMS["txt2img"][0], "model": "flux-dev"}, 7, {}).images[0])
    whole = _outcome(renderers[("flux", "single file")], "txt2img")
    assert isinstance(whole, np.ndarray)
    assert_same_picture(whole, painted, "flux with its T5 named in models.toml")


def test_the_memory_budget_counts_the_part_files_too(
    tmp_path: Path, model_options: ModelOptions, stand_ins: dict
) -> None:
    """The LRU evicts by what a model will hold: a transformer-only file brings its VAE and encoders with it."""
    transformer = _models(tmp_path, stand_ins["flux"])
    handle = ModelManager(f"file:{transformer}", model_options).get()
    parts = [path for path in transformer.parent.parent.rglob("*.safetensors") if path != transformer]
    assert len(parts) == 3, "the split wrote the part files"
    files = [load_file(str(path)) for path in (transformer, *parts)]  # fp32 stand-ins, loaded in fp32
    assert handle.estimated_bytes() == sum(t.numel() * t.element_size() for tensors in files for t in tensors.values())


def test_sft_files_are_read_as_safetensors(
    tmp_path: Path, model_options: ModelOptions, stand_ins: dict, renderers: dict
) -> None:
    """Early FLUX files are safetensors named .sft (BFL's first flux1-dev.sft and ae.sft)."""
    transformer = _models(tmp_path, stand_ins["flux"])
    sft = transformer.rename(transformer.with_suffix(".sft"))
    models = sft.parent.parent
    (models / "vae/ae.safetensors").rename(models / "vae/ae.sft")
    entry = ModelLibrary("builtin:tiny", models).get(f"diffusion_models/{sft.name}").describe()
    assert entry["usable"] and entry["family"] == "flux" and entry["parts"]["vae"] == "vae/ae.sft", entry
    parts = Renderer(ModelManager(f"file:{sft}", model_options))
    assert_same_weights(renderers[("flux", "single file")], parts, "flux from .sft files")
    assert parts.fingerprint()["single_file"]["companions"]["vae"] == "ae.sft"
