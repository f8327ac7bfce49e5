"""Render the application icon's PNG sizes from its SVG, in the freedesktop hicolor layout.

Run after editing the SVG (the PNGs are committed, so neither the app nor a build needs this)::

    .venv/bin/python packaging/render_icons.py

Qt's own SVG renderer is used (no other tool needed); ``--check`` only reports whether the PNGs
on disk are missing or stale, without writing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

APP_ID = "io.github.agentcopilot.AgentCopilot"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
HICOLOR = Path(__file__).resolve().parents[1] / "resources" / "icons" / "hicolor"


def svg_path(root: Path = HICOLOR) -> Path:
    """The scalable source icon."""
    return root / "scalable" / "apps" / f"{APP_ID}.svg"


def png_path(size: int, root: Path = HICOLOR) -> Path:
    """Where the PNG of one size lives (``hicolor/48x48/apps/<id>.png``)."""
    return root / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


def render(root: Path = HICOLOR, *, check: bool = False) -> list[Path]:
    """Render every size; returns the PNGs written (or, with ``check``, those out of date)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg_path(root)))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {svg_path(root)}")
    changed = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        out = png_path(size, root)
        if check:
            if not out.is_file() or QImage(str(out)).convertToFormat(image.format()) != image:
                changed.append(out)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out)):  # PNG, from the suffix
            raise SystemExit(f"cannot write {out}")
        changed.append(out)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale PNGs, write nothing")
    args = parser.parse_args()
    paths = render(check=args.check)
    for path in paths:
        print(("stale: " if args.check else "wrote ") + str(path.relative_to(HICOLOR.parent)))
    return 1 if args.check and paths else 0


if __name__ == "__main__":
    raise SystemExit(main())
