"""Hostile images and blob names: decompression bombs, truncated and non-image files, huge dimensions,
text-chunk bombs, and path traversal through blob names (the blob route, the static files, workflow imports).

Everything is refused with a reason, nothing outside the blob store is ever read or written, and the server
stays up.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import time
import zlib
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from server.image_checks import ImageLimits, InvalidImage, configure_pillow, inspect_image
from tests.reliability.relsupport import health, new_canvas, record_figures, rss_kb, share, start_server

LIMITS = ImageLimits()
IMAGE_FUZZ_EXAMPLES = int(os.environ.get("OPENDREAM_FUZZ_IMAGE_EXAMPLES", "1500"))


# --- building hostile files by hand ------------------------------------------------------------------------


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, *, rows: int | None = None, grey: bool = True, before_idat: bytes = b"") -> bytes:
    """A PNG whose header says width x height; only `rows` rows of (zero) pixel data follow when given."""
    channels = 1 if grey else 3
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if grey else 2, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + channels * width)
    body = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + before_idat + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))  # fmt: skip


def saved(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(saved(Image.new("RGB", (16, 16), "red"), "JPEG"))
    at = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) header claiming width x height, with nothing behind it."""
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 32
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


ZTXT_BOMB = chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"a" * (64 << 20), 9))  # 64 MiB of text in ~64 KiB

# (name, bytes, words the refusal must contain)
REFUSED = [
    ("empty", b"", "empty"),
    ("text", b"hello, I am not an image", "not an image"),
    ("html", b"<html><script>alert(1)</script></html>", "not an image"),
    ("pdf", b"%PDF-1.7\n" + b"\x00" * 100, "not an image"),
    ("gif", saved(Image.new("P", (8, 8)), "GIF"), "not an image in an accepted format"),
    ("bmp", saved(Image.new("RGB", (8, 8)), "BMP"), "not an image in an accepted format"),
    ("tiff", saved(Image.new("RGB", (8, 8)), "TIFF"), "not an image in an accepted format"),
    ("truncated png", saved(Image.effect_noise((256, 256), 50).convert("RGB"), "PNG")[:5000], "truncated"),
    ("truncated jpeg", saved(Image.effect_noise((256, 256), 50).convert("RGB"), "JPEG")[:3000], "truncated"),
    ("png signature only", b"\x89PNG\r\n\x1a\n", ""),
    ("png with a broken chunk length", b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIHDR" + b"\x00" * 20, "damaged"),
    ("png bomb 100000 x 100000", png(100_000, 100_000, rows=1), "too many pixels"),
    ("png bomb 65535 x 65535 rgb", png(65_535, 65_535, rows=1, grey=False), "too many pixels"),
    ("png 20 Mpx (between the limit and twice it)", png(5000, 4000, rows=1), "pixels"),
    ("png side too long", png(LIMITS.max_side + 1, 8), "largest side"),
    ("png with no pixels", png(0, 8, rows=0), ""),
    ("jpeg bomb", jpeg_claiming(60_000, 60_000), "pixels"),
    ("jpeg side too long", jpeg_claiming(LIMITS.max_side + 8, 16), ""),
    ("webp bomb", webp_claiming(16_383, 16_383), "pixels"),
]  # fmt: skip


# --- in process: Pillow's limits, and inspect_image under mutation -----------------------------------------


def test_pillow_limits_are_set_explicitly():
    Image.MAX_IMAGE_PIXELS = None  # as a careless library might leave them
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    configure_pillow(LIMITS)
    assert LIMITS.max_pixels == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert LIMITS.max_pixels <= 4096 * 4096 and LIMITS.max_side <= 8192 and LIMITS.max_bytes <= 20 << 20


@pytest.mark.parametrize(("name", "data", "reason"), REFUSED, ids=[case[0] for case in REFUSED])
def test_inspect_image_refuses_with_a_reason(name, data, reason):
    with pytest.raises(InvalidImage) as refused:
        inspect_image(data, LIMITS)
    assert reason in str(refused.value)


def test_a_text_chunk_bomb_is_never_decompressed():
    data = png(4, 4, before_idat=ZTXT_BOMB)
    started = time.perf_counter()
    info = inspect_image(data, LIMITS)  # the picture is fine; its text is not the picture
    assert (info.width, info.height) == (4, 4)
    assert time.perf_counter() - started < 1.0


SEEDS = [
    saved(Image.effect_noise((24, 16), 40).convert("RGB"), "PNG"),
    saved(Image.new("RGBA", (8, 8), (1, 2, 3, 4)), "PNG"),
    saved(Image.effect_noise((24, 16), 40).convert("RGB"), "JPEG", quality=80),
    saved(Image.new("RGB", (16, 16), "blue"), "WEBP"),
    saved(Image.new("RGB", (16, 16), "green"), "WEBP", lossless=True),
    png(64, 64, before_idat=chunk(b"tEXt", b"k\x00v")),
]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "splice", "grow"]))
        at = draw(st.integers(0, len(data) - 1))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at:]
            if not data:
                data.append(0)
        elif action == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:  # a header field made huge: dimensions, lengths
            data[at : at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00"]))
    return bytes(data)


@settings(max_examples=IMAGE_FUZZ_EXAMPLES, deadline=None, database=None,
          derandomize=os.environ.get("OPENDREAM_FUZZ_RANDOM") != "1",
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(mutated_images())
def test_damaged_images_are_refused_or_within_limits(data):
    """Only InvalidImage ever comes out of inspect_image, and what it accepts is within the limits."""
    try:
        info = inspect_image(data, LIMITS)
    except InvalidImage as refused:
        assert str(refused)
        return
    assert info.width * info.height <= LIMITS.max_pixels and max(info.width, info.height) <= LIMITS.max_side


# --- against the server ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("images") / "data", "--no-render")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def editor(server):
    canvas_id, owner = new_canvas(server, "Images")
    return canvas_id, share(server, canvas_id, owner, "editor")["token"]


@pytest.mark.slow
def test_hostile_uploads_are_refused_with_a_reason(server, editor):
    _, token = editor
    peak = rss_kb(server.process.pid)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=60) as client:
        for name, data, reason in REFUSED:
            response = client.post("/api/blobs", content=data)
            assert response.status_code == 422, (name, response.status_code, response.text[:200])
            error = response.json()["error"]
            assert error["code"] == "invalid_image" and reason in error["message"], (name, error)
            peak = max(peak, rss_kb(server.process.pid))
        # Over the byte limit: refused before it is read.
        huge = client.post("/api/blobs", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * (LIMITS.max_bytes + 1))
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        # A text-chunk bomb around a fine picture is stored as the picture it is, without inflating the text.
        started = time.perf_counter()
        stored = client.post("/api/blobs", content=png(4, 4, before_idat=ZTXT_BOMB))
        assert stored.status_code == 201 and (stored.json()["width"], stored.json()["height"]) == (4, 4)
        assert time.perf_counter() - started < 5
        # The largest picture allowed (a real 16 Mpx image, 16 MiB of pixels in a 16 KiB file) is accepted.
        biggest = png(LIMITS.max_pixels // 2048, 2048)
        accepted = client.post("/api/blobs", content=biggest)
        assert accepted.status_code == 201, accepted.text
        peak = max(peak, rss_kb(server.process.pid))
        one_more_row = client.post("/api/blobs", content=png(LIMITS.max_pixels // 2048, 2049, rows=1))
        assert one_more_row.status_code == 422
    assert health(server)
    record_figures("images", {"refused_kinds": len(REFUSED) + 2, "server_rss_peak_mb": round(peak / 1024, 1)})


TRAVERSALS = [
    "..", "...", "../admin-token", "..%2fadmin-token", "..%2Fadmin-token", "%2e%2e%2fadmin-token",
    "%2e%2e", "..%5cadmin-token", "....//....//admin-token", "%252e%252e%252fadmin-token", "admin-token",
    "opendream.db", "%00", "a" * 64 + "%00.png", "A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 64 + "/..",
    "..%2f..%2f..%2f..%2fetc%2fpasswd", "%2fetc%2fpasswd", "\u0661" * 64, "~", "$HOME",
]  # fmt: skip
STATIC_TRAVERSALS = [
    "/../data/admin-token", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "/js/../../server/auth.py",
    "/%2e%2e%2fserver%2fauth.py", "/..;/server/auth.py", "//etc/passwd", "/api/blobs/../../admin-token",
    "/api/blobs/..%2f..%2fadmin-token", "/api/blobs/%2e%2e/%2e%2e/admin-token",
]  # fmt: skip


@pytest.mark.slow
def test_blob_names_never_become_paths(server, editor):
    secrets_on_disk = [server.admin_token, "root:x:0:0", "def hash_token", "SQLite format"]
    data_files_before = sorted(str(p) for p in server.data_dir.rglob("*") if "blobs" not in p.parts)
    answered: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name in TRAVERSALS:
            response = client.get(f"/api/blobs/{name}")
            assert response.status_code in (400, 404), (name, response.status_code, response.text[:200])
            assert response.json()["error"]["code"] in ("bad_blob_name", "not_found", "blob_not_found")
            answered[response.status_code] = answered.get(response.status_code, 0) + 1
        for path in STATIC_TRAVERSALS:
            response = client.get(path)
            assert response.status_code in (400, 404), (path, response.status_code, response.text[:200])
            for secret in secrets_on_disk:
                assert secret not in response.text, (path, secret)
        # A real blob is served, by its name only.
        _, token = editor
        picture = saved(Image.new("RGB", (4, 4), "red"), "PNG")
        sha = client.post("/api/blobs", content=picture, headers={"authorization": f"Bearer {token}"}).json()["sha256"]
        served = client.get(f"/api/blobs/{sha}", headers={"authorization": f"Bearer {server.admin_token}"})  # admin
        assert served.status_code == 200 and served.content == picture
        assert served.headers["content-type"] == "image/png"
    data_files_after = sorted(str(p) for p in server.data_dir.rglob("*") if "blobs" not in p.parts)
    assert set(data_files_after) - set(data_files_before) <= {
        f for f in data_files_after if f.endswith(("-wal", "-shm"))
    }
    record_figures("blob_names", {"names_tried": len(TRAVERSALS) + len(STATIC_TRAVERSALS), "answers": answered})


def workflow(blobs: dict[str, str], extra_events: list[dict[str, Any]] | None = None) -> bytes:
    import orjson

    events = [{"seq": 1, "type": "canvas.created", "schema_version": 1, "payload": {"name": "Imported", "origin": None},
               "actor": "ada", "command_id": None, "timestamp": 0.0}, *(extra_events or [])]  # fmt: skip
    return orjson.dumps({"format": "opendream.workflow", "version": 1, "events": events, "blobs": blobs})


@pytest.mark.slow
def test_workflow_imports_check_blob_names_and_images(server):
    picture = saved(Image.new("RGB", (4, 4), "red"), "PNG")
    good = base64.b64encode(picture).decode()
    sha = hashlib.sha256(picture).hexdigest()
    bomb = png(100_000, 100_000, rows=1)
    bad_cases = {
        "a path as a blob name": workflow({"../../admin-token": good}),
        "an absolute path": workflow({"/etc/passwd": good}),
        "a name with a separator": workflow({sha[:32] + "/" + sha[33:]: good}),
        "upper-case hex": workflow({sha.upper(): good}),
        "a name that is not the data's hash": workflow({"0" * 64: good}),
        "not base64": workflow({sha: "not base64!"}),
        "a decompression bomb": workflow({hashlib.sha256(bomb).hexdigest(): base64.b64encode(bomb).decode()}),
        "non-image data": workflow({hashlib.sha256(b"hello").hexdigest(): base64.b64encode(b"hello").decode()}),
        "an upload naming a path": workflow(
            {},
            [
                {
                    "seq": 2,
                    "type": "layer.added",
                    "schema_version": 1,
                    "actor": "ada",
                    "command_id": None,
                    "timestamp": 0.0,
                    "payload": {
                        "layer_id": "L",
                        "operation": "upload",
                        "params": {"blob": "../../../etc/passwd"},
                        "seed": None,
                        "parents": [],
                        "name": "x",
                    },
                }
            ],
        ),
        "an upload naming a blob nobody has": workflow(
            {},
            [
                {
                    "seq": 2,
                    "type": "layer.added",
                    "schema_version": 1,
                    "actor": "ada",
                    "command_id": None,
                    "timestamp": 0.0,
                    "payload": {
                        "layer_id": "L",
                        "operation": "upload",
                        "params": {"blob": "1" * 64},
                        "seed": None,
                        "parents": [],
                        "name": "x",
                    },
                }
            ],
        ),
    }
    blob_dir = server.data_dir / "blobs"
    before = sorted(p.name for p in blob_dir.rglob("*") if p.is_file())
    admin = {"authorization": f"Bearer {server.admin_token}"}  # importing needs a token
    with httpx.Client(base_url=server.url, headers=admin, timeout=60) as client:
        for what, body in bad_cases.items():
            response = client.post("/api/workflows", content=body)
            assert response.status_code == 422, (what, response.status_code, response.text[:300])
            assert response.json()["error"]["code"] == "invalid_workflow", what
        assert sorted(p.name for p in blob_dir.rglob("*") if p.is_file()) == before, "a refused import stored a blob"
        # The same file with its blob named properly is imported, and the blob lands in the store by its hash.
        ok = client.post("/api/workflows", content=workflow({sha: good}, [
            {"seq": 2, "type": "layer.added", "schema_version": 1, "actor": "ada", "command_id": None, "timestamp": 0.0,
             "payload": {"layer_id": "L", "operation": "upload", "params": {"blob": sha}, "seed": None, "parents": [],
                         "name": "x"}}]))  # fmt: skip
        assert ok.status_code == 201, ok.text
        assert (blob_dir / sha[:2] / sha).read_bytes() == picture
    assert health(server)


@pytest.mark.slow
def test_a_picture_carrying_a_large_workflow_imports(server):
    """The server's own composite PNG of a long canvas (its workflow text far over Pillow's 1 MB text-chunk limit)
    is imported again: the text is the workflow, not a bomb."""
    canvas_id, owner = new_canvas(server, "Long")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {owner}"}, timeout=60) as client:
        picture = saved(Image.new("RGB", (8, 8), "teal"), "PNG")
        sha = client.post(f"/api/blobs?canvas={canvas_id}", content=picture).json()["sha256"]
        long_prompt = {"prompt": "p" * 2000, "negative_prompt": "n" * 2000, "width": 64, "height": 64}
        commands = [{"type": "add_layer", "layer_id": "pic", "operation": "upload", "params": {"blob": sha}}]
        commands += [{"type": "add_layer", "layer_id": f"t{n}", "operation": "txt2img", "params": long_prompt}
                     for n in range(300)]  # fmt: skip
        for n, command in enumerate(commands):
            assert client.post(f"/api/canvases/{canvas_id}/commands",
                               json={"command_id": f"c{n}", "command": command}).status_code == 200  # fmt: skip
        document = client.get(f"/api/canvases/{canvas_id}/workflow", params={"renders": "0"})
        assert len(document.content) > 1_100_000  # over Pillow's 1 MB MAX_TEXT_CHUNK once in the PNG
        # --no-render, so no composite.png: the same embedding composite.png uses, done here.
        from server.workflow import embed_in_png

        carrying = embed_in_png(picture, document.json())
        assert b"opendream-workflow" in carrying
        imported = client.post("/api/workflows", content=carrying, timeout=60)
        assert imported.status_code == 201, imported.text[:300]
        assert imported.json()["version"] == len(commands) + 1
