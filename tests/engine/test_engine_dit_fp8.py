"""fp8 files load offline: their float8_e4m3fn / float8_e5m2 tensors are upcast to the render dtype as they are read
(fp32 on a CPU, fp16 / bf16 on a GPU), as ComfyUI and InvokeAI do when not running in fp8.

The stand-ins' files are re-saved with their tensors in fp8 (all of them, as flux1-dev-fp8.safetensors, or mixed:
an fp8 transformer beside bf16 / fp16 parts and an e5m2 T5); the reference is the same file with every tensor rounded
through fp8 and stored back in fp32. The fp8 file must load exactly those weights and paint what the reference
paints, whole or split into ComfyUI's separate files; its header, its library entry and its memory estimate must
hold up.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.models.checkpoint import inspect_checkpoint, read_dtypes, read_shapes, read_tensor_std
from engine.models.library import ModelLibrary
from engine.models.loader import ModelManager, ModelOptions
from engine.models.single_file import is_scaled
from engine.render import Renderer
from tests.engine.standins_dit import DiTStandIn, scaled_fp8, split_into_companions, stored_in
from tests.engine.test_engine_dit_single_files import PARAMS, dit_root, stand_ins
from tests.engine.test_engine_single_files import assert_same_picture, assert_same_weights, no_network, stand_in_root

# no_network: autouse, every test here fails on a connection; the stand-ins are the session's
__all__ = ["dit_root", "no_network", "stand_in_root", "stand_ins"]

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
# name -> (stand-in, each part's stored dtype)
FP8 = {
    "flux-dev": ("flux-dev", dict.fromkeys(("transformer", "vae", "clip_l", "t5xxl"), E4M3)),  # flux1-dev-fp8
    "sd35-mixed": ("sd35", {"transformer": E4M3, "vae": torch.bfloat16, "clip_l": torch.float16,
                            "clip_g": torch.float16, "t5xxl": E5M2}),
}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, stand_ins: dict[str, DiTStandIn]) -> dict[str, DiTStandIn]:
    """name -> the fp8 files; name + "-rounded" -> the same weights rounded through fp8, stored in fp32."""
    root = tmp_path_factory.mktemp("dit-fp8")
    made = {}
    for name, (base, dtypes) in FP8.items():
        made[name] = stored_in(stand_ins[base], root, name, dtypes)
        made[f"{name}-rounded"] = stored_in(stand_ins[base], root, f"{name}-rounded", dtypes, upcast=True)
    return made


@pytest.fixture(scope="module")
def renderers(model_options: ModelOptions, files: dict[str, DiTStandIn]) -> Iterator[dict[str, Renderer]]:
    yield {name: Renderer(ModelManager(f"file:{made.single_file}", model_options)) for name, made in files.items()}


def _txt2img(renderer: Renderer) -> np.ndarray:
    return np.asarray(renderer.render("txt2img", PARAMS["txt2img"][0], 7, {}).images[0])


def _weights(renderer: Renderer) -> dict[str, dict[str, torch.Tensor]]:
    pipe = renderer.models.get().pipeline("txt2img")
    return {name: m.state_dict() for name, m in pipe.components.items() if isinstance(m, torch.nn.Module)}


@pytest.mark.parametrize("name", list(FP8))
def test_an_fp8_file_loads_its_weights_upcast_and_paints_what_they_paint(
    name: str, renderers: dict[str, Renderer], files: dict[str, DiTStandIn], stand_ins: dict[str, DiTStandIn]
) -> None:
    fp8, rounded = renderers[name], renderers[f"{name}-rounded"]
    stored = {dtype for dtype, _ in read_dtypes(files[name].single_file).values()}
    assert "F8_E4M3" in stored, stored  # the file really holds fp8 tensors
    handle = fp8.models.get()
    estimate = handle.estimated_bytes()  # from the header, before it loads
    painted = _txt2img(fp8)
    loaded, expected = _weights(fp8), _weights(rounded)
    assert loaded.keys() == expected.keys()
    for component, tensors in expected.items():
        assert {t.dtype for t in loaded[component].values() if t.is_floating_point()} == {torch.float32}, component
        changed = [key for key, tensor in tensors.items() if not torch.equal(tensor, loaded[component][key])]
        assert not changed, f"{name} {component}: {changed[:3]} are not the fp8 values upcast"
    original = load_file(str(stand_ins[FP8[name][0]].single_file))
    rounding = load_file(str(files[f"{name}-rounded"].single_file))
    assert any(not torch.equal(original[key], rounding[key]) for key in original), "fp8 rounded nothing"
    assert_same_picture(_txt2img(rounded), painted, f"{name} from fp8")
    assert painted.std() > 1.0  # a picture, not a flat field
    # The memory estimate is what it holds once loaded (4x its fp8 tensors in fp32), not the file's size
    held = handle.memory_bytes()
    assert abs(estimate - held) <= held * 0.02, (estimate, held)
    assert files[name].single_file.stat().st_size < held * 0.45


def test_split_fp8_files_paint_what_the_whole_fp8_file_paints(
    tmp_path: Path, model_options: ModelOptions, renderers: dict[str, Renderer], files: dict[str, DiTStandIn]
) -> None:
    """ComfyUI's layout with fp8 files: the transformer, ae, clip_l and t5xxl_fp8_e4m3fn.safetensors."""
    models = tmp_path / "models"
    transformer = split_into_companions(files["flux-dev"], models)
    shutil.move(models / "text_encoders/t5xxl_fp16.safetensors", models / "text_encoders/t5xxl_fp8_e4m3fn.safetensors")
    t5 = models / "text_encoders/t5xxl_fp8_e4m3fn.safetensors"
    assert {dtype for dtype, _ in read_dtypes(t5).values()} == {"F8_E4M3"}
    parts = Renderer(ModelManager(f"file:{transformer}", model_options))
    assert_same_picture(_txt2img(renderers["flux-dev"]), _txt2img(parts), "flux-dev from split fp8 files")
    assert parts.fingerprint()["single_file"]["companions"]["t5xxl"] == t5.name
    entry = ModelLibrary("builtin:tiny", models).get(f"diffusion_models/{transformer.name}").describe()
    assert entry["usable"] and entry["parts"]["t5xxl"] == "text_encoders/t5xxl_fp8_e4m3fn.safetensors", entry


def test_an_fp8_file_loads_in_half_precision_exactly(model_options: ModelOptions, files: dict[str, DiTStandIn]) -> None:
    """On a GPU the render dtype is fp16 / bf16: fp8 values are exact in both, so nothing is rounded twice."""
    handle = ModelManager(f"file:{files['flux-dev'].single_file}", replace(model_options, dtype="bfloat16")).get()
    estimate = handle.estimated_bytes()
    tensors = load_file(str(files["flux-dev"].single_file))
    floats = sum(t.numel() for t in tensors.values() if t.is_floating_point())
    others = sum(t.numel() * t.element_size() for t in tensors.values() if not t.is_floating_point())
    assert estimate == 2 * floats + others  # bf16: 2 bytes a weight, twice the fp8 file
    pipe = handle.load().pipeline("txt2img")
    transformer = pipe.transformer.state_dict()
    assert {t.dtype for t in transformer.values()} == {torch.bfloat16}
    fp8 = load_file(str(files["flux-dev"].transformer_only))
    assert torch.equal(transformer["x_embedder.weight"].float(), fp8["img_in.weight"].float())
    t5 = pipe.text_encoder_2.state_dict()
    assert torch.equal(t5["shared.weight"].float(), tensors["text_encoders.t5xxl.transformer.shared.weight"].float())


def test_an_fp8_files_header_and_library_entry(files: dict[str, DiTStandIn], tmp_path: Path) -> None:
    """Told from the header alone (family, shapes, dtypes), listed usable with its size; an fp8 tensor's spread (the
    SD 2.x v-prediction probe) is read although numpy has no fp8 type."""
    for name in FP8:
        path = files[name].single_file
        assert inspect_checkpoint(path).family is not None
        shapes = {key: shape for key, (_, shape) in read_dtypes(path).items()}
        tensors = load_file(str(path))
        assert shapes == {key: tuple(t.shape) for key, t in tensors.items()}
        key = next(key for key, t in tensors.items() if t.dtype == E4M3 and t.numel() > 1)
        spread = read_tensor_std(path, key)
        assert spread is not None and math.isclose(spread, float(tensors[key].double().std(unbiased=False)))
    (tmp_path / "checkpoints").mkdir()
    shutil.copyfile(files["flux-dev"].single_file, tmp_path / "checkpoints/flux1-dev-fp8.safetensors")
    entry = ModelLibrary("builtin:tiny", tmp_path).get("checkpoints/flux1-dev-fp8.safetensors").describe()
    assert entry["usable"] and entry["family"] == "flux" and entry["capabilities"]["txt2img"] is None, entry
    assert entry["size_bytes"] == files["flux-dev"].single_file.stat().st_size


# --- ComfyUI's scaled fp8: each Linear's fp8 weight beside its scale ---------------------------------------------


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory, stand_ins: dict[str, DiTStandIn]) -> dict[str, tuple]:
    """name -> (the scaled fp8 files, the weights they stand for in fp32): SD 3.5 in the older layout (scaled_fp8,
    .scale_weight), FLUX in the newer (.weight_scale, .input_scale, .comfy_quant)."""
    root = tmp_path_factory.mktemp("dit-fp8-scaled")
    return {"sd35": scaled_fp8(stand_ins["sd35"], root, "sd35-fp8-scaled", "legacy"),
            "flux": scaled_fp8(stand_ins["flux"], root, "flux-fp8-scaled", "comfy_quant")}  # fmt: skip


def test_a_scaled_fp8_file_loads_each_weight_times_its_scale(model_options: ModelOptions, scaled: dict) -> None:
    """sd3.5_large_fp8_scaled.safetensors' layout, every component in one file: loaded with its scales applied
    (diffusers alone would load the fp8 values unscaled, thousands of times too large), painting what they paint."""
    stored, meant = scaled["sd35"]
    shapes = read_shapes(stored.single_file)
    assert is_scaled(shapes) and "model.diffusion_model.scaled_fp8" in shapes
    got, expected = (Renderer(ModelManager(f"file:{made.single_file}", model_options)) for made in (stored, meant))
    assert_same_weights(expected, got, "sd35 from scaled fp8")
    assert_same_picture(_txt2img(expected), _txt2img(got), "sd35 from scaled fp8")


def test_a_scaled_fp8_t5_and_transformer_from_split_files(
    tmp_path: Path, model_options: ModelOptions, scaled: dict
) -> None:
    """ComfyUI's t5xxl_fp8_e4m3fn_scaled.safetensors (the older layout) beside a FLUX transformer in the newer one:
    dequantised as read, before the FLUX converter splits the fused projections."""
    stored, meant = scaled["flux"]
    models = tmp_path / "models"
    transformer = split_into_companions(stored, models)
    t5 = models / "text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors"
    shutil.move(models / "text_encoders/t5xxl_fp16.safetensors", t5)
    assert is_scaled(read_shapes(t5)) and is_scaled(read_shapes(transformer))
    parts = Renderer(ModelManager(f"file:{transformer}", model_options))
    assert_same_weights(Renderer(ModelManager(f"file:{meant.single_file}", model_options)), parts, "flux scaled fp8")


def test_a_scaled_fp8_file_of_a_unet_family_is_refused_saying_so(
    tmp_path: Path, model_options: ModelOptions, stand_in_root: Path
) -> None:
    """SD 1.x / SDXL files load through diffusers' own reading, which would drop the scales: refused, not noise."""
    from safetensors.torch import save_file

    from engine.errors import ModelUnavailable
    from tests.engine.standins_dit import scaled_tensors
    from tests.engine.test_engine_single_files import _stand_in as unet_stand_in

    single = unet_stand_in(stand_in_root, "sd1").single_file  # the session's SD 1.x stand-in
    scaled_file = tmp_path / "sd15_fp8_scaled.safetensors"
    tensors = scaled_tensors(load_file(str(single)), "legacy", "model.diffusion_model.")[0]
    save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(scaled_file))
    with pytest.raises(ModelUnavailable, match="scaled fp8 weights"):
        Renderer(ModelManager(f"file:{scaled_file}", model_options)).render("txt2img", PARAMS["txt2img"][0], 1, {})
