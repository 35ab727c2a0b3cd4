"""segment with a tiny random-weight SAM built here (no weights can be downloaded): several masks, one per point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.builtins import default_registry
from engine.errors import CapabilityMissing
from engine.operation import InvalidParams
from engine.ops.segment import SAM_ENV, Segment, grid_points
from engine.render import Renderer


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~40k-parameter SamModel (64 px input, 8 px patches) and its processor, saved like a real checkpoint."""
    import torch
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    folder = tmp_path_factory.mktemp("tiny-sam")
    config = SamConfig(
        vision_config={
            "hidden_size": 32,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 8,
            "window_size": 4,
            "global_attn_indexes": [1],
            "num_pos_feats": 8,
            "mlp_dim": 64,
        },
        prompt_encoder_config={"hidden_size": 16, "image_size": 64, "patch_size": 8, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 16,
            "mlp_dim": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
    )
    torch.manual_seed(0)
    SamModel(config).save_pretrained(folder)
    # The PIL image processor: the default one needs torchvision, which this project does not install.
    processor = SamImageProcessorPil(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16},
    )
    SamProcessor(image_processor=processor).save_pretrained(folder)
    return folder


@pytest.fixture
def with_sam(tiny_sam: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SAM_ENV, str(tiny_sam))
    return tiny_sam


def scene() -> Image.Image:
    image = Image.new("RGB", (48, 40), (20, 30, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, 22, 22), fill=(240, 200, 40))
    draw.rectangle((28, 18, 44, 36), fill=(200, 30, 30))
    return image


def test_segment_without_a_checkpoint_is_unavailable(renderer: Renderer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SAM_ENV, raising=False)
    assert "segment" in default_registry()
    assert SAM_ENV in default_registry().unavailable()["segment"]
    with pytest.raises(CapabilityMissing, match=SAM_ENV):
        renderer.render("segment", {"source": "s"}, None, {"source": scene()})
    monkeypatch.setenv(SAM_ENV, "/nowhere/sam")
    assert "does not exist" in (Segment.unavailable_reason() or "")


def test_segment_returns_one_mask_per_point(renderer: Renderer, with_sam: Path) -> None:
    assert "segment" not in default_registry().unavailable()
    params = {"source": "s", "points": [{"x": 12, "y": 12}, {"x": 36, "y": 27}, {"x": 2, "y": 38}], "max_overlap": 1.0}
    result = renderer.render("segment", params, None, {"source": scene()})
    assert 1 < len(result.images) <= 3  # empty masks and exact duplicates are dropped
    for mask in result.images:
        assert mask.mode == "L" and mask.size == (48, 40)
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    again = renderer.render("segment", params, None, {"source": scene()})
    assert [m.tobytes() for m in again.images] == [m.tobytes() for m in result.images]  # deterministic
    fingerprint = result.fingerprint
    assert fingerprint["engine"] == "opendream-edit" and fingerprint["sam_model"] == str(with_sam)
    assert fingerprint["sam_hash"].startswith("sha256:") and not renderer.models.get().loaded


def test_segment_grid(renderer: Renderer, with_sam: Path) -> None:
    assert len(grid_points((48, 40), 2)) == 4
    result = renderer.render("segment", {"source": "s", "grid": 2, "max_overlap": 1.0}, None, {"source": scene()})
    assert 1 <= len(result.images) <= 4


def test_segment_points_outside_the_source(renderer: Renderer, with_sam: Path) -> None:
    with pytest.raises(InvalidParams, match="outside") as caught:
        renderer.render(
            "segment", {"source": "s", "points": [{"x": 1, "y": 1}, {"x": 48, "y": 1}]}, None, {"source": scene()}
        )
    assert caught.value.field == "points.1.x"
