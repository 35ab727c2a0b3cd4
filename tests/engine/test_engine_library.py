"""The model library: several models per server, a model per layer, an LRU bounded by memory, LoRAs applied to
one render only (engine.models.library, engine.models.loader, engine.render)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from engine.errors import CapabilityMissing, ModelUnavailable
from engine.models.library import ModelLibrary
from engine.models.loader import ModelManager, ModelOptions
from engine.render import Renderer
from tests.engine.standins import build_lora

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def library_root(tmp_path_factory: pytest.TempPathFactory, model_options: ModelOptions) -> Path:
    """A models directory as ComfyUI users keep theirs: an SD 1.x and an SDXL model (diffusers folders), LoRAs
    in both layouts, a LoRA of the other family, and files in the wrong place."""
    root = tmp_path_factory.mktemp("library")
    manager = ModelManager("builtin:tiny", model_options)
    sd1 = manager.get("builtin:tiny")._resolve_path()
    sdxl = manager.get("builtin:tiny-sdxl")._resolve_path()
    shutil.copytree(sd1, root / "checkpoints" / "tiny-sd1", ignore=shutil.ignore_patterns("unet_*", "controlnet_*"))
    shutil.copytree(sdxl, root / "checkpoints" / "tiny-xl")
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(sd1), subfolder="unet")
    build_lora(unet, root / "loras" / "style.safetensors", "peft")
    build_lora(unet, root / "loras" / "style-kohya.safetensors", "kohya")
    build_lora(unet, root / "loras" / "other.safetensors", "peft", seed=5)
    xl_unet = UNet2DConditionModel.from_pretrained(str(sdxl), subfolder="unet")
    build_lora(xl_unet, root / "loras" / "xl-style.safetensors", "peft")
    shutil.copy(root / "loras" / "style.safetensors", root / "checkpoints" / "misplaced-lora.safetensors")
    (root / "checkpoints" / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    import torch

    (root / "embeddings").mkdir()
    torch.manual_seed(3)
    width = unet.config.cross_attention_dim  # the tiny text encoder's width
    save_file({"emb_params": torch.randn(2, width)}, str(root / "embeddings" / "my-style.safetensors"))  # A1111
    torch.save({"string_to_param": {"*": torch.randn(1, 768)}}, str(root / "embeddings" / "sd15-style.pt"))
    (root / "models.toml").write_text(
        '[[model]]\nname = "xl"\nspec = "checkpoints/tiny-xl"\n\n'
        '[[model]]\nname = "hub-model"\nspec = "someone/not-cached-anywhere"\n\n'
        '[[model]]\nname = "broken"\n'
    )
    return root


@pytest.fixture(scope="module")
def library(library_root: Path) -> ModelLibrary:
    return ModelLibrary("builtin:tiny", library_root)


@pytest.fixture(scope="module")
def renderer(model_options: ModelOptions, library: ModelLibrary) -> Renderer:
    return Renderer(ModelManager("builtin:tiny", model_options), library=library)


def _pixels(renderer: Renderer, **params: object) -> np.ndarray:
    return np.asarray(renderer.render("txt2img", {**SMALL, **params}, 7, {}).images[0])


def test_the_library_lists_every_model_and_why_one_cannot_be_used(library: ModelLibrary) -> None:
    listed = {entry["name"]: entry for entry in library.describe()}
    assert listed["builtin:tiny"]["default"] and listed["builtin:tiny"]["family"] == "sd1"
    assert listed["checkpoints/tiny-sd1"]["family"] == "sd1" and listed["checkpoints/tiny-sd1"]["usable"]
    assert listed["checkpoints/tiny-xl"]["native_size"] == 1024
    assert listed["xl"]["source"] == "models.toml" and listed["xl"]["family"] == "sdxl"
    assert listed["loras/style.safetensors"]["kind"] == "lora" and listed["loras/style.safetensors"]["usable"]
    assert listed["loras/style-kohya.safetensors"]["usable"]
    assert "put it in loras/" in listed["checkpoints/misplaced-lora.safetensors"]["problem"]
    assert "not a readable .safetensors" in listed["checkpoints/cut.safetensors"]["problem"]
    assert "not cached on this machine" in listed["hub-model"]["problem"]
    assert "needs a name, a spec and a kind" in listed["models.toml [[model]] #3"]["problem"]
    assert listed["checkpoints/tiny-sd1"]["size_bytes"] > 0
    assert listed["checkpoints/tiny-sd1"]["capabilities"]["txt2img"] is None


def test_a_rescan_finds_new_files(library_root: Path) -> None:
    library = ModelLibrary("builtin:tiny", library_root)
    assert not any(entry.name == "loras/new.safetensors" for entry in library.entries())
    shutil.copy(library_root / "loras" / "other.safetensors", library_root / "loras" / "new.safetensors")
    try:
        library.scan()
        assert library.get("loras/new.safetensors", "lora").usable
    finally:
        (library_root / "loras" / "new.safetensors").unlink()


def test_layers_use_their_own_model_and_record_it(renderer: Renderer) -> None:
    sd1 = renderer.render("txt2img", {**SMALL, "model": "checkpoints/tiny-sd1"}, 7, {})
    xl = renderer.render("txt2img", {**SMALL, "model": "xl"}, 7, {})
    assert sd1.fingerprint["family"] == "sd1" and xl.fingerprint["family"] == "sdxl"
    assert sd1.fingerprint["model_hash"] != xl.fingerprint["model_hash"]
    handle = renderer.models.get(renderer.model_spec({"model": "checkpoints/tiny-sd1"}))
    modules = handle._base
    renderer.render("txt2img", {**SMALL, "model": "checkpoints/tiny-sd1"}, 8, {})
    assert handle._base is modules  # switching back hits the loaded pipeline, nothing reloads
    with pytest.raises(ModelUnavailable, match="no checkpoint named 'nope'"):
        renderer.render("txt2img", {**SMALL, "model": "nope"}, 7, {})
    with pytest.raises(ModelUnavailable, match="cannot be used"):
        renderer.render("txt2img", {**SMALL, "model": "checkpoints/misplaced-lora.safetensors"}, 7, {})


def test_the_lru_keeps_loaded_models_within_the_memory_bound(
    model_options: ModelOptions, library: ModelLibrary
) -> None:
    from dataclasses import replace

    probe = ModelManager("builtin:tiny", model_options)
    one_model = probe.get(library.get("checkpoints/tiny-sd1").spec).estimated_bytes()
    bounded = Renderer(ModelManager("builtin:tiny", replace(model_options, memory_budget=int(one_model * 1.5))),
                       library=library)  # fmt: skip
    a = bounded.models.get(library.get("checkpoints/tiny-sd1").spec)
    b = bounded.models.get(library.get("xl").spec)
    bounded.render("txt2img", {**SMALL, "model": "checkpoints/tiny-sd1"}, 1, {})
    assert a.loaded
    bounded.render("txt2img", {**SMALL, "model": "xl"}, 1, {})
    assert b.loaded and not a.loaded  # evicted: both do not fit
    first = _pixels(bounded, model="checkpoints/tiny-sd1")
    assert a.loaded and not b.loaded
    assert np.array_equal(first, _pixels(bounded, model="checkpoints/tiny-sd1"))  # reloaded, the same model
    roomy = Renderer(ModelManager("builtin:tiny", replace(model_options, memory_budget=one_model * 10)),
                     library=library)  # fmt: skip
    roomy.render("txt2img", {**SMALL, "model": "checkpoints/tiny-sd1"}, 1, {})
    roomy.render("txt2img", {**SMALL, "model": "xl"}, 1, {})
    assert all(handle.loaded for handle in roomy.models.loaded()) and len(roomy.models.loaded()) == 2


def test_a_lora_changes_the_pixels_its_weight_matters_and_it_leaves_no_trace(renderer: Renderer) -> None:
    base = _pixels(renderer)
    styled = _pixels(renderer, loras=[{"name": "loras/style.safetensors", "weight": 1.0}])
    half = _pixels(renderer, loras=[{"name": "loras/style.safetensors", "weight": 0.5}])
    assert not np.array_equal(base, styled) and not np.array_equal(styled, half)
    assert np.array_equal(base, _pixels(renderer))  # removed after the render: the base output, bit for bit
    kohya = _pixels(renderer, loras=[{"name": "loras/style-kohya.safetensors", "weight": 1.0}])
    assert np.abs(kohya.astype(int) - styled.astype(int)).max() <= 1  # the same LoRA in A1111's layout
    both = _pixels(renderer, loras=[{"name": "loras/style.safetensors"}, {"name": "loras/other.safetensors"}])
    assert not np.array_equal(both, styled)
    assert np.array_equal(base, _pixels(renderer))


def test_loras_enter_the_fingerprint_with_their_hash(renderer: Renderer) -> None:
    params = {**SMALL, "loras": [{"name": "loras/style.safetensors", "weight": 0.8}]}
    fingerprint = renderer.fingerprint_for("txt2img", params=params)
    (lora,) = fingerprint["loras"]
    assert lora["name"] == "loras/style.safetensors" and lora["weight"] == 0.8 and len(lora["sha256"]) > 20
    assert "loras" not in renderer.fingerprint_for("txt2img", params=SMALL)
    result = renderer.render("txt2img", params, 7, {})
    assert result.fingerprint["loras"] == fingerprint["loras"]


def test_a_lora_of_another_family_is_refused_and_changes_nothing(renderer: Renderer) -> None:
    base = _pixels(renderer)
    with pytest.raises(CapabilityMissing, match=r"xl-style.*was made for a model with 64-wide text embeddings"):
        _pixels(renderer, loras=[{"name": "loras/xl-style.safetensors"}])
    assert np.array_equal(base, _pixels(renderer))
    with pytest.raises(ModelUnavailable, match="no lora named"):
        _pixels(renderer, loras=[{"name": "loras/missing.safetensors"}])


def test_a_damaged_lora_is_listed_unusable(library_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "loras").mkdir(parents=True)
    state = load_file(str(library_root / "loras" / "style.safetensors"))
    save_file(
        {"first_stage_model.encoder.conv_in.weight": next(iter(state.values()))},
        str(root / "loras" / "vae.safetensors"),
    )
    (root / "loras" / "empty.safetensors").write_bytes(b"")
    library = ModelLibrary("builtin:tiny", root)
    assert "not a LoRA" in library.get("loras/vae.safetensors").problem
    assert "not a readable" in library.get("loras/empty.safetensors").problem


def test_the_schemas_offer_the_librarys_models_and_loras(library: ModelLibrary) -> None:
    from pydantic import ValidationError

    from engine.builtins import default_registry
    from engine.defaults import apply_family_defaults

    registry = default_registry()
    apply_family_defaults(registry, 512, None, library)
    params = registry.get("txt2img").Params
    schema = params.model_json_schema()
    (choice,) = [option for option in schema["properties"]["model"]["anyOf"] if "enum" in option]
    assert {"builtin:tiny", "checkpoints/tiny-sd1", "xl"} <= set(choice["enum"])
    assert "checkpoints/misplaced-lora.safetensors" not in choice["enum"]  # unusable: not offered
    lora = schema["$defs"]["LoraRef"]["properties"]["name"]
    assert "loras/style.safetensors" in lora["enum"] and "loras/style-kohya.safetensors" in lora["enum"]
    with pytest.raises(ValidationError):
        params.model_validate({"model": "checkpoints/misplaced-lora.safetensors"})
    with pytest.raises(ValidationError):
        params.model_validate({"loras": [{"name": "loras/missing.safetensors"}]})
    assert params.model_validate({"loras": [{"name": "loras/style.safetensors", "weight": 0.5}]}).loras[0].weight == 0.5
    # instruct-pix2pix: only the models that can run it (builtin:tiny has the component, the copied folder not)
    pix2pix = registry.get("instruct_pix2pix").Params.model_json_schema()["properties"]["model"]
    (offered,) = [option for option in pix2pix["anyOf"] if "enum" in option]
    assert "builtin:tiny" in offered["enum"] and "checkpoints/tiny-sd1" not in offered["enum"]


def test_an_embedding_named_in_the_prompt_is_used_for_that_render_only(renderer: Renderer, model_options) -> None:
    plain = Renderer(ModelManager("builtin:tiny", model_options))  # no library: "my-style" is just words
    prompt = {"prompt": "a lighthouse in my-style"}
    words = _pixels(plain, **prompt)
    styled = _pixels(renderer, **prompt)
    assert not np.array_equal(words, styled)  # the embedding's vectors, not the words' tokens
    tokenizer = renderer.models.get().pipeline("txt2img").tokenizer
    size = len(tokenizer)
    assert np.array_equal(_pixels(renderer), _pixels(plain))  # a prompt not naming it: the base, bit for bit
    assert len(tokenizer) == size and "my-style" not in tokenizer.get_vocab()  # taken out after the render
    fingerprint = renderer.fingerprint_for("txt2img", params={**SMALL, **prompt})
    assert [e["name"] for e in fingerprint["embeddings"]] == ["embeddings/my-style.safetensors"]
    assert "embeddings" not in renderer.fingerprint_for("txt2img", params={**SMALL, "prompt": "my-styles"})


def test_an_embedding_of_another_family_is_refused(renderer: Renderer, library: ModelLibrary) -> None:
    assert library.get("embeddings/sd15-style.pt").family == "sd1"
    with pytest.raises(CapabilityMissing, match="768 wide"):
        _pixels(renderer, prompt="a boat, sd15-style")
    assert np.array_equal(_pixels(renderer, prompt="a boat"), _pixels(renderer, prompt="a boat"))


def test_the_generic_controlnet_offers_the_librarys_controlnets(library_root: Path, tmp_path: Path) -> None:
    from engine.builtins import default_registry
    from engine.defaults import apply_family_defaults

    root = tmp_path / "models"
    shutil.copytree(library_root / "checkpoints" / "tiny-xl", root / "checkpoints" / "tiny-xl")
    registry = default_registry()
    apply_family_defaults(registry, 512, None, ModelLibrary("builtin:tiny", root))
    field = registry.get("controlnet").Params.model_json_schema()["properties"]["controlnet"]
    assert "enum" not in field and "No ControlNets in the library" in field["description"]
    sd1 = ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=tmp_path / "built")).get()._resolve_path()
    shutil.copytree(sd1 / "controlnet_canny", root / "controlnet" / "canny")
    apply_family_defaults(registry, 512, None, ModelLibrary("builtin:tiny", root))
    field = registry.get("controlnet").Params.model_json_schema()["properties"]["controlnet"]
    assert field["enum"] == ["controlnet/canny"]
