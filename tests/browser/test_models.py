"""The model library in the editor (headless Chromium, a real server with a models folder): the placeholder
notice for builtin:tiny, the model picker listing the library, a LoRA with its weight slider in a layer's params."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.support import Canvas, open_editor, set_range, wait_until
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    from diffusers import UNet2DConditionModel

    from engine.models.loader import ModelManager, ModelOptions
    from tests.engine.standins import build_lora

    models = tmp_path_factory.mktemp("models")
    built = ModelManager("builtin:tiny", ModelOptions(device="cpu", models_dir=tmp_path_factory.mktemp("built")))
    shutil.copytree(built.get("builtin:tiny-sdxl")._resolve_path(), models / "checkpoints" / "tiny-xl")
    unet = UNet2DConditionModel.from_pretrained(str(built.get("builtin:tiny")._resolve_path()), subfolder="unet")
    build_lora(unet, models / "loras" / "style.safetensors")
    with ServerProcess(tmp_path_factory.mktemp("browser-models") / "data", None, "--models", str(models)) as running:
        yield running


def test_the_placeholder_model_is_said_and_the_library_offered(pages, server, shoot):
    canvas = Canvas(server, "Models")
    page = open_editor(pages, canvas.path)
    notice = page.locator("[data-testid=placeholder-notice]")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Placeholder model (builtin:tiny): pictures are noise")
    expect(notice.locator("a")).to_have_attribute("href", "help/models.html")
    form = page.locator(".op-form[data-operation=txt2img]")
    options = form.locator("[data-field=model] select option")
    expect(options).to_have_text(["Default", "builtin:tiny (Stable Diffusion 1.x, 512 px)",
                                  "checkpoints/tiny-xl (Stable Diffusion XL, 1024 px)"])  # fmt: skip
    shoot(page, "models-01-placeholder-and-picker")

    help_page = pages.new("/help/models.html")
    expect(help_page.locator("h1")).to_have_text("Models: what --model can point at")
    shoot(help_page, "models-02-help-page")

    notice.locator("button").click()
    expect(notice).to_be_hidden()
    page.reload()
    expect(page.locator("[data-testid=connection]")).to_have_attribute("data-status", "live")
    expect(page.locator("[data-testid=placeholder-notice]")).to_be_hidden()  # dismissed stays dismissed


def test_a_lora_and_its_weight_go_into_the_layers_params(pages, server, shoot):
    canvas = Canvas(server, "LoRA")
    page = open_editor(pages, canvas.path)
    form = page.locator(".op-form[data-operation=txt2img]")
    form.locator("[data-field=prompt] textarea").fill("a harbour")
    form.locator("[data-field=model] select").select_option(label="checkpoints/tiny-xl (Stable Diffusion XL, 1024 px)")
    form.locator("[data-field=model] select").select_option(label="Default")
    loras = form.locator("[data-field=loras]")
    loras.get_by_role("button", name="Add").click()
    item = loras.locator(".list-item").first
    expect(item.locator('[data-field="loras.0.name"] select option')).to_have_text(["loras/style.safetensors"])
    set_range(item.locator('[data-field="loras.0.weight"] input[type=range]'), 0.6)
    set_range(form.locator("[data-field=steps] input[type=range]"), 2)
    shoot(page, "models-03-lora-slider")
    page.click("[data-testid=generate]")
    state = wait_until(lambda: canvas.state() if canvas.state()["layers"] else None, 30, message="the new layer")
    (layer,) = state["layers"]
    assert layer["params"]["loras"] == [{"name": "loras/style.safetensors", "weight": 0.6}]
    assert layer["params"]["model"] is None
    canvas.wait_rendered(layer["id"], timeout=120)
