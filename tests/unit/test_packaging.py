"""Desktop integration files and the icon set: what a Linux desktop and a software centre read.

The bundle itself is built and run by ``make package-smoke`` (minutes), not here; these checks are
cheap. The official validators run when installed (``apt-get install desktop-file-utils
appstream``); the pure-Python checks always do.
"""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from copilot.ui.main_window import APP_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
LINUX = REPO_ROOT / "packaging" / "linux"
DESKTOP_FILE = LINUX / f"{APP_ID}.desktop"
METAINFO_FILE = LINUX / f"{APP_ID}.metainfo.xml"
HICOLOR = REPO_ROOT / "resources" / "icons" / "hicolor"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
# The freedesktop menu specification's main categories: a launcher needs at least one.
MAIN_CATEGORIES = {
    "AudioVideo",
    "Audio",
    "Video",
    "Development",
    "Education",
    "Game",
    "Graphics",
    "Network",
    "Office",
    "Science",
    "Settings",
    "System",
    "Utility",
}


def _load_script(name: str) -> ModuleType:
    path = REPO_ROOT / "packaging" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"packaging_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(DESKTOP_FILE, encoding="utf-8")
    return parser["Desktop Entry"]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


# --- icons -------------------------------------------------------------------------------------


def test_icon_set_has_every_hicolor_size_as_a_square_png() -> None:
    for size in PNG_SIZES:
        path = HICOLOR / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert path.is_file(), f"missing {path.relative_to(REPO_ROOT)}"
        assert _png_size(path) == (size, size)


def test_scalable_icon_is_a_square_svg() -> None:
    root = ET.parse(HICOLOR / "scalable" / "apps" / f"{APP_ID}.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    _x, _y, width, height = (float(v) for v in root.attrib["viewBox"].split())
    assert width == height > 0


@pytest.mark.gui
def test_icon_renderer_writes_the_hicolor_layout(tmp_path: Path, qapp: object) -> None:
    # qapp: the renderer reuses the test session's QApplication instead of creating its own.
    render_icons = _load_script("render_icons")
    scalable = tmp_path / "scalable" / "apps"
    scalable.mkdir(parents=True)
    shutil.copyfile(render_icons.svg_path(), scalable / f"{APP_ID}.svg")

    written = render_icons.render(tmp_path)

    assert len(written) == len(PNG_SIZES)
    assert _png_size(tmp_path / "48x48" / "apps" / f"{APP_ID}.png") == (48, 48)
    assert render_icons.render(tmp_path, check=True) == []  # fresh PNGs are not stale


# --- .desktop ----------------------------------------------------------------------------------


def test_desktop_entry_launches_the_bundle_with_the_app_icon() -> None:
    entry = _desktop_entry()
    smoke_test = _load_script("smoke_test")
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Agent Co-pilot"
    assert entry["Exec"].split()[0] == smoke_test.EXE_NAME
    assert entry["Icon"] == APP_ID
    assert entry["Terminal"] == "false"
    categories = entry["Categories"]
    assert categories.endswith(";")
    assert MAIN_CATEGORIES & set(categories.rstrip(";").split(";"))


def test_every_desktop_action_has_its_own_group() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DESKTOP_FILE, encoding="utf-8")
    actions = [a for a in parser["Desktop Entry"].get("Actions", "").split(";") if a]
    assert actions, "the toggle action is missing"
    for action in actions:
        group = parser[f"Desktop Action {action}"]
        assert group["Name"] and group["Exec"].startswith("agent-copilot")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils")
def test_desktop_entry_passes_desktop_file_validate() -> None:
    result = subprocess.run(
        ["desktop-file-validate", str(DESKTOP_FILE)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


# --- AppStream ---------------------------------------------------------------------------------


def test_metainfo_names_the_same_app_launcher_and_binary() -> None:
    root = ET.parse(METAINFO_FILE).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable[@type='desktop-id']") == DESKTOP_FILE.name
    assert root.findtext("provides/binary") == _desktop_entry()["Exec"].split()[0]
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert (root.findtext("name") or "") == "Agent Co-pilot"
    assert len(root.findtext("summary") or "") < 80  # software centres cut longer summaries
    assert root.find("description/p") is not None
    assert root.find("releases/release[@version]") is not None


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream not installed")
def test_metainfo_passes_appstreamcli_validate() -> None:
    result = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(METAINFO_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the smoke test's own checks ---------------------------------------------------------------


def _fake_bundle(root: Path, names: tuple[str, ...]) -> Path:
    internal = root / "agent-copilot" / "_internal"
    for name in names:
        path = internal / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (root / "agent-copilot" / "agent-copilot").write_bytes(b"")
    return root / "agent-copilot"


def test_smoke_test_refuses_a_bundle_with_torch_or_without_the_model(tmp_path: Path) -> None:
    smoke_test = _load_script("smoke_test")
    required = smoke_test.REQUIRED + (
        smoke_test.REQUIRED_LINUX if sys.platform.startswith("linux") else ()
    )
    good = _fake_bundle(tmp_path / "good", required)
    smoke_test.check_contents(smoke_test.bundle_paths(good)[1])

    with_torch = _fake_bundle(tmp_path / "torch", (*required, "torch/__init__.py"))
    with pytest.raises(smoke_test.SmokeError, match="torch"):
        smoke_test.check_contents(smoke_test.bundle_paths(with_torch)[1])

    no_model = _fake_bundle(tmp_path / "no-model", required[1:])
    with pytest.raises(smoke_test.SmokeError, match=r"model-int8\.onnx"):
        smoke_test.check_contents(smoke_test.bundle_paths(no_model)[1])

    with pytest.raises(smoke_test.SmokeError, match="make package"):
        smoke_test.bundle_paths(tmp_path / "nothing-built")
