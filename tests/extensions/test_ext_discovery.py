"""Discovery: the example package through its entry point, a directory of extension files, broken extensions."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from engine.discovery import EXTENSIONS_DIR_ENV, load_registry
from engine.models.loader import ModelManager, ModelOptions
from engine.ops.crop import Crop
from engine.render import Renderer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "opendream-example-extension"


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example extension pip-installed (a real wheel build) into a folder of its own, not into the venv.

    Built from a copy: setuptools writes build/ and *.egg-info next to the sources. Offline and without build
    isolation, so it needs nothing but the setuptools already in the environment.
    """
    pytest.importorskip("setuptools")
    work = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, work / "source", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = work / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "--target", str(site), str(source)], check=True, timeout=120)
    return site


@pytest.fixture
def example_on_path(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(example_site))
    yield example_site
    for name in [name for name in sys.modules if name.split(".")[0] == "opendream_example"]:
        del sys.modules[name]


def edit_renderer(registry, tmp_path: Path) -> Renderer:  # type: ignore[no-untyped-def]
    return Renderer(ModelManager(str(tmp_path / "no-model"), ModelOptions(device="cpu")), registry)


def test_example_is_found_through_its_entry_points(example_on_path: Path, tmp_path: Path) -> None:
    registry = load_registry()
    assert {"posterize", "pixelate"} <= set(registry.names())
    assert registry.unavailable().keys() <= {"segment"}
    posterize = registry.get("posterize")
    assert posterize is not None
    # loaded from the installed copy, not from the source tree
    assert Path(sys.modules[posterize.__module__].__file__ or "").is_relative_to(example_on_path)
    description = posterize.describe()
    assert description["inputs"] == {"source": "image"}
    assert description["params_schema"]["properties"]["bits"]["maximum"] == 8

    renderer = edit_renderer(registry, tmp_path)
    source = Image.new("RGB", (4, 4), (200, 100, 30))
    out = renderer.render("posterize", {"source": "s", "bits": 1}, None, {"source": source}).images[0]
    assert set(out.getpixel((x, y)) for x in range(4) for y in range(4)) == {(128, 0, 0)}
    checker = Image.new("RGB", (4, 2), (0, 0, 0))
    checker.paste((200, 200, 200), (0, 0, 1, 2))
    out = renderer.render("pixelate", {"source": "s", "block": 2}, None, {"source": checker}).images[0]
    assert out.getpixel((1, 1)) == (100, 100, 100) and out.getpixel((2, 0)) == (0, 0, 0)


def test_entry_points_can_be_switched_off(example_on_path: Path) -> None:
    assert "posterize" not in load_registry(entry_points=False)


def test_a_broken_entry_point_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "ghost_extension-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ghost-extension\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[opendream.operations]\nghost = no_such_module_here:Ghost\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert "ModuleNotFoundError" in registry.unavailable()["ghost"]
    assert "crop" in registry and "ghost" not in registry


GOOD = """
    from __future__ import annotations

    from PIL import ImageOps
    from pydantic import Field

    from engine.operation import LayerInput, Operation, Params


    class InvertParams(Params):
        source: str = LayerInput("The picture to invert.")
        amount: float = Field(1.0, ge=0, le=1)


    class Invert(Operation):
        name = "invert"
        title = "Invert"
        category = "edit"
        Params = InvertParams

        def run(self, ctx, inputs, params):
            return ImageOps.invert(inputs["source"].convert("RGB"))
"""

LISTED = """
    from engine.operation import Operation, Params


    class Base(Operation):  # a shared base, not an operation: ignored because the module lists its operations
        category = "edit"


    class Flip(Base):
        name = "flip"
        title = "Flip"

        class Params(Params):
            pass

        def run(self, ctx, inputs, params):
            raise NotImplementedError


    operations = [Flip]
"""

BAD_CLASSES = """
    from engine.operation import Operation, Params


    class NoParams(Operation):
        name = "no_params"
        title = "No params"

        def run(self, ctx, inputs, params):
            return None


    class NoName(Operation):
        title = "No name"

        class Params(Params):
            pass

        def run(self, ctx, inputs, params):
            return None


    class NoRun(Operation):
        name = "no_run"
        title = "No run"

        class Params(Params):
            pass


    operations = [NoParams, NoName, NoRun, 42]
"""

DUPLICATE = """
    from engine.operation import Operation, Params


    class MyCrop(Operation):
        name = "crop"
        title = "My crop"

        class Params(Params):
            pass

        def run(self, ctx, inputs, params):
            return None
"""

FILES = {
    "good.py": GOOD,
    "listed.py": LISTED,
    "bad_classes.py": BAD_CLASSES,
    "duplicate.py": DUPLICATE,
    "broken_syntax.py": "def oops(:\n    pass\n",
    "raising.py": "raise RuntimeError('boom at import')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "nothing.py": "VALUE = 1\n",
    "_helpers.py": "raise RuntimeError('never imported: private files are skipped')\n",
    "notes.txt": "not python\n",
}


@pytest.fixture
def extensions(tmp_path: Path) -> Path:
    folder = tmp_path / "extensions"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_directory_extensions_load_and_broken_ones_are_reported(extensions: Path, tmp_path: Path) -> None:
    registry = load_registry(extensions, entry_points=False)
    assert {"invert", "flip"} <= set(registry.names())
    unavailable = registry.unavailable()
    unavailable.pop("segment", None)
    syntax = unavailable.pop("broken_syntax.py")
    assert "SyntaxError" in syntax and "broken_syntax.py, line 1" in syntax
    assert "RuntimeError: boom at import" in unavailable.pop("raising.py")
    assert "SystemExit: 3" in unavailable.pop("exits.py")
    assert "defines no operations" in unavailable.pop("nothing.py")
    assert "`Params` must be a subclass" in unavailable.pop("no_params")
    assert "`name` must be a lowercase identifier" in unavailable.pop("bad_classes.py:NoName")
    assert "42 is not a subclass of engine.operation.Operation" in unavailable.pop("bad_classes.py:[3]")
    assert "does not implement run" in unavailable.pop("no_run")
    duplicate = unavailable.pop(f"crop (extension file {extensions / 'duplicate.py'})")
    assert "already registered" in duplicate and "engine.ops.crop.Crop" in duplicate
    assert unavailable == {}, unavailable
    assert registry.get("crop") is Crop and "crop" not in registry.unavailable()

    renderer = edit_renderer(registry, tmp_path)
    out = renderer.render("invert", {"source": "s"}, None, {"source": Image.new("RGB", (1, 1), (10, 20, 30))})
    assert out.images[0].getpixel((0, 0)) == (245, 235, 225)


def test_extensions_dir_from_the_environment(extensions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXTENSIONS_DIR_ENV, str(extensions))
    assert "invert" in load_registry(entry_points=False)
    monkeypatch.setenv(EXTENSIONS_DIR_ENV, str(extensions / "missing"))
    registry = load_registry(entry_points=False)
    assert "does not exist" in registry.unavailable()[str(extensions / "missing")]
    monkeypatch.delenv(EXTENSIONS_DIR_ENV)
    assert "invert" not in load_registry(entry_points=False)


def test_loading_twice_gives_fresh_registries(extensions: Path) -> None:
    first = load_registry(extensions, entry_points=False)
    second = load_registry(extensions, entry_points=False)
    assert first.names() == second.names() and first.unavailable() == second.unavailable()
