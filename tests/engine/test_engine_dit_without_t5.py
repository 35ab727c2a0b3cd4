"""SD 3 runs without T5, as Stability's sd3_medium_incl_clips.safetensors is and as users keep it to save memory:
diffusers' StableDiffusion3Pipeline takes text_encoder_3=None (zeros in T5's place). A whole file without T5, or a
transformer with CLIP-L, CLIP-G and a VAE beside it but no T5, loads offline and paints what diffusers paints from
the model's folder without T5; the library lists it usable with a note, the fingerprint says it ran without T5, and
a T5 added later changes the fingerprint (so the layers re-render). FLUX cannot: it is refused naming T5
(tests/engine/test_engine_dit_companions.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.defaults import choice_label
from engine.models.library import ModelLibrary
from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer
from tests.engine.standins_dit import DiTStandIn, split_into_companions, without_t5
from tests.engine.test_engine_dit_single_files import PARAMS, dit_root, stand_ins
from tests.engine.test_engine_single_files import assert_same_picture, no_network

__all__ = ["dit_root", "no_network", "stand_ins"]  # no_network: autouse, every test here fails on a connection

T5 = "text_encoders/t5xxl_fp16.safetensors"
TRANSFORMER = "diffusion_models/sd3-transformer.safetensors"


@pytest.fixture(scope="module")
def no_t5(tmp_path_factory: pytest.TempPathFactory, stand_ins: dict[str, DiTStandIn]) -> DiTStandIn:
    return without_t5(stand_ins["sd3"], tmp_path_factory.mktemp("sd3-without-t5"))


@pytest.fixture(scope="module")
def whole(model_options: ModelOptions, no_t5: DiTStandIn) -> Renderer:
    return Renderer(ModelManager(f"file:{no_t5.single_file}", model_options))


def _paint(renderer: Renderer, operation: str) -> np.ndarray:
    params, inputs = PARAMS[operation]
    return np.asarray(renderer.render(operation, params, 7, inputs).images[0])


def test_a_file_without_t5_paints_what_diffusers_paints_without_t5(
    model_options: ModelOptions, no_t5: DiTStandIn, whole: Renderer
) -> None:
    folder = Renderer(ModelManager(f"folder:{no_t5.folder}", model_options))
    for operation in ("txt2img", "img2img", "inpaint"):
        painted = _paint(whole, operation)
        assert_same_picture(_paint(folder, operation), painted, f"sd3 without T5 {operation}")
        assert painted.std() > 1.0
    pipe = whole.models.get().pipeline("txt2img")
    assert pipe.text_encoder_3 is None and pipe.tokenizer_3 is None
    assert pipe.text_encoder is not None and pipe.text_encoder_2 is not None
    assert whole.fingerprint()["single_file"]["without"] == ["t5xxl"]


def test_a_transformer_with_its_clips_and_no_t5_paints_what_the_whole_file_without_t5_paints(
    tmp_path: Path, model_options: ModelOptions, stand_ins: dict[str, DiTStandIn], whole: Renderer
) -> None:
    models = tmp_path / "models"
    transformer = split_into_companions(stand_ins["sd3"], models, skip=(T5,))
    parts = Renderer(ModelManager(f"file:{transformer}", model_options))
    assert_same_picture(_paint(whole, "txt2img"), _paint(parts, "txt2img"), "sd3 from clip_l + clip_g, no T5")
    facts = parts.fingerprint()["single_file"]
    assert facts["without"] == ["t5xxl"] and set(facts["companions"]) == {"vae", "clip_l", "clip_g"}, facts
    entry = ModelLibrary("builtin:tiny", models).get(TRANSFORMER).describe()
    assert entry["usable"], entry["problem"]
    assert set(entry["parts"]) == {"vae", "clip_l", "clip_g"}
    assert entry["note"] is not None and "without T5-XXL" in entry["note"], entry["note"]
    assert choice_label(ModelLibrary("builtin:tiny", models).get(TRANSFORMER)).endswith("px; runs without T5-XXL)")


def test_a_t5_added_later_is_used_and_changes_the_fingerprint(
    tmp_path: Path, model_options: ModelOptions, stand_ins: dict[str, DiTStandIn]
) -> None:
    """The render's cache key changes once a T5 is there: layers painted without it are painted again."""
    models = tmp_path / "models"
    transformer = split_into_companions(stand_ins["sd3"], models, skip=(T5,))
    renderer = Renderer(ModelManager(f"file:{transformer}", model_options))
    before = renderer.fingerprint()
    full = split_into_companions(stand_ins["sd3"], tmp_path / "full").parent.parent
    shutil.copyfile(full / T5, models / T5)
    after = renderer.fingerprint()  # not loaded yet: what it would load now, the same as a new server's
    assert after == Renderer(ModelManager(f"file:{transformer}", model_options)).fingerprint()
    assert "without" not in after["single_file"], after["single_file"]
    assert after["single_file"]["companions"]["t5xxl"] == "t5xxl_fp16.safetensors"
    assert after["single_file"] != before["single_file"]
    entry = ModelLibrary("builtin:tiny", models).get(TRANSFORMER).describe()
    assert entry["usable"] and entry["note"] is None and entry["parts"]["t5xxl"] == T5, entry


def test_a_whole_file_without_t5_takes_one_from_the_models_directory(
    tmp_path: Path, no_t5: DiTStandIn, stand_ins: dict[str, DiTStandIn]
) -> None:
    """sd3_medium_incl_clips.safetensors in checkpoints/ with a T5 in text_encoders/: it runs with that T5."""
    models = split_into_companions(stand_ins["sd3"], tmp_path / "models").parent.parent
    (models / "checkpoints").mkdir()
    shutil.copyfile(no_t5.single_file, models / "checkpoints" / no_t5.single_file.name)
    entry = ModelLibrary("builtin:tiny", models).get(f"checkpoints/{no_t5.single_file.name}").describe()
    assert entry["usable"] and entry["parts"] == {"t5xxl": T5} and entry["note"] is None, entry


def test_a_loaded_model_whose_parts_changed_is_unloaded_after_a_rescan_and_loads_with_them(
    tmp_path: Path, model_options: ModelOptions, stand_ins: dict[str, DiTStandIn]
) -> None:
    """A T5 put in text_encoders/ while an SD 3 is loaded without one: the rescan (POST /api/models/rescan calls
    `unload_changed`) unloads it, and its next render loads it with the T5 and says so in its fingerprint."""
    models = tmp_path / "models"
    transformer = split_into_companions(stand_ins["sd3"], models, skip=(T5,))
    renderer = Renderer(ModelManager(f"file:{transformer}", model_options))
    first = renderer.render("txt2img", PARAMS["txt2img"][0], 7, {})
    handle = renderer.models.get()
    assert handle.loaded and not handle.parts_changed() and renderer.models.unload_changed() == []
    full = split_into_companions(stand_ins["sd3"], tmp_path / "full").parent.parent
    shutil.copyfile(full / T5, models / T5)
    assert handle.parts_changed()
    assert renderer.models.unload_changed() == [handle] and not handle.loaded
    again = renderer.render("txt2img", PARAMS["txt2img"][0], 7, {})
    assert first.fingerprint["single_file"]["without"] == ["t5xxl"]
    assert "without" not in again.fingerprint["single_file"]
    assert again.fingerprint["single_file"]["companions"]["t5xxl"] == "t5xxl_fp16.safetensors"
    assert handle.loaded and handle._base.text_encoder_3 is not None
