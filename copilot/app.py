"""The desktop application: wiring settings, theme, task runner, window and single instance.

``copilot`` with no subcommand calls `main`. Start-up order is chosen so the window paints first:

1. ask a running co-pilot for the same data directory to raise (or toggle) itself, and exit 0
   if one answered;
2. read the settings, apply the theme, build and show the window (no torch, no onnxruntime, no
   faiss imported so far: ``tests/unit/test_app.py`` checks it);
3. after the window's first paint, build the panel (`copilot.ui.panel`: importing the pipeline
   costs ~0.4 s, so it waits) and load the embedding model on the bulk lane, with its state in
   the status bar ("Loading language model…" -> "Model ready (0.4 s)", or the failure);
4. once the model is ready, load the content pack and open (or build) the knowledge index on
   the bulk lane (`copilot.qt.conversations_vm.load_backend`); the panel says "Loading…" until
   then and enables its input after. A demo replay (``copilot demo``) starts at that point.

Set ``COPILOT_EXIT_AFTER_FIRST_PAINT=1`` to print one JSON line (seconds to first paint, heavy
modules already imported) and exit right after the first paint: the start-up test and the
first-paint benchmark use it.

Set ``COPILOT_BENCH_STARTUP=1`` (``copilot bench startup`` does) to print one JSON line per
start-up milestone (``first_paint``, ``model_ready``, ``backend_ready``, ``replay_finished``)
with seconds since start, the longest GUI-thread stall (a 10 ms heartbeat timer's largest late
tick) and the resident memory; demo replays then run at a brisk fixed pace, and the app quits once
the backend is ready (or, with a replay, once the replay is analysed).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

from copilot.qt.settings_vm import SettingsViewModel
from copilot.qt.single_instance import (
    RAISE,
    TOGGLE,
    SendResult,
    SingleInstanceServer,
    send_to_running_instance,
    server_name,
)
from copilot.qt.tasks import BULK, DB, TaskRunner
from copilot.qt.theme import ThemeManager
from copilot.services import paths
from copilot.services.secrets import SecretStore
from copilot.services.settings import load_settings
from copilot.ui.main_window import APP_ID, APP_TITLE, MainWindow, app_icon

_log = logging.getLogger(__name__)

#: Modules that must not be imported before the window has painted.
HEAVY_MODULES: tuple[str, ...] = (
    "torch",
    "sentence_transformers",
    "transformers",
    "onnxruntime",
    "faiss",
    "sklearn",
)
EXIT_AFTER_FIRST_PAINT_ENV = "COPILOT_EXIT_AFTER_FIRST_PAINT"
BENCH_STARTUP_ENV = "COPILOT_BENCH_STARTUP"
#: Heartbeat period of the GUI-stall probe: a tick later than this by N ms is an N ms stall.
HEARTBEAT_MS = 10
# Replay pace under the start-up benchmark: long enough for each turn to be analysed before the
# next arrives (as with a real caller), short enough to keep the benchmark quick.
_BENCH_REPLAY_GAP_S = 0.4
# If no paint event arrives (a platform that never exposes the window), load the model anyway.
_FIRST_PAINT_FALLBACK_MS = 1500

ModelLoader = Callable[[str, Path], Any]
#: (content dir, data dir, embedder) -> `copilot.qt.conversations_vm.PanelBackend`; blocking.
BackendLoader = Callable[[Path, Path, Any], Any]


def _default_model_loader(backend: str, data_dir: Path) -> Any:
    from copilot.services.embedders import load_embedder

    return load_embedder(backend, data_dir)


#: Imported on the bulk lane before the panel is built (`CopilotApp._after_first_paint`). Only
#: classes are defined at import time (no QObject or widget is created), so a worker thread may
#: import them.
_PANEL_MODULES: tuple[str, ...] = (
    "numpy",
    "copilot.services.feedback_store",
    "copilot.core.pipeline",
    "copilot.qt.conversations_vm",
    "copilot.qt.snapshot_vm",
    "copilot.ui.panel",
    "copilot.qt.ingest_bridge",
)


def _preimport(names: Sequence[str]) -> None:
    for name in names:
        importlib.import_module(name)


def _hashing_loader(_backend: str, _data_dir: Path) -> Any:
    from copilot.services.embedders import HashingEmbedder

    return HashingEmbedder()


def _onnx_cache_problem(data_dir: Path) -> str | None:
    """Why the ONNX model must be exported before use (None when it is ready); fast."""
    from copilot.services import embedders

    if embedders.bundled_onnx_dir() is not None:
        return None  # a frozen build ships its model ready to load
    model_dir = embedders.onnx_model_dir(data_dir)
    return embedders.check_onnx_cache(
        model_dir, [embedders.DEFAULT_ONNX_VARIANT], verify_hashes=False
    )


def _default_backend_loader(content: Path, data: Path, embedder: Any, prior: Any = None) -> Any:
    from copilot.qt.conversations_vm import load_backend

    return load_backend(content, data, embedder, prior=prior)


def _timed(loader: BackendLoader, content: Path, data: Path, embedder: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    backend = loader(content, data, embedder)
    return backend, time.perf_counter() - started


def rss_mb() -> float:
    """Resident memory of this process in MiB (``VmRSS``; peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kB on Linux, bytes on macOS.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class StartupProbe(QObject):
    """Benchmark instrumentation: a GUI-thread heartbeat and JSON milestone lines on stdout.

    The heartbeat is a precise `QTimer` firing every `HEARTBEAT_MS`; whenever the GUI thread is
    busy the next tick comes late, and the lateness is the stall the agent would feel (a frozen
    window). `take_stall_ms` returns the worst one since the previous call.
    """

    def __init__(self, started: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._started = started
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self._worst_s = 0.0

    def start(self) -> None:
        """Start the heartbeat (the first gap is measured from now)."""
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self._worst_s = max(self._worst_s, now - self._last - HEARTBEAT_MS / 1000)
        self._last = now

    def take_stall_ms(self) -> float:
        """The longest stall (ms) since the last call, counting the current one; then reset."""
        self._tick()
        worst, self._worst_s = self._worst_s, 0.0
        return round(max(0.0, worst) * 1000, 1)

    def report(self, event: str, **fields: Any) -> None:
        """Print one JSON line: the event, seconds since start, RSS, and ``fields``."""
        line = {
            "event": event,
            "t_s": round(time.perf_counter() - self._started, 4),
            "rss_mb": round(rss_mb(), 1),
            **fields,
        }
        print(json.dumps(line), flush=True)


def _load_and_warm(loader: ModelLoader, backend: str, data_dir: Path) -> tuple[Any, float]:
    """Load the embedder and run it once (the first call allocates); returns it and seconds."""
    started = time.perf_counter()
    embedder = loader(backend, data_dir)
    embedder.embed(["warm-up"])
    return embedder, time.perf_counter() - started


class CopilotApp(QObject):
    """Owns the application's long-lived objects and connects them.

    Attributes:
        runner: the one `TaskRunner`.
        settings_vm: the `SettingsViewModel`.
        window: the `MainWindow`.
        embedder: the loaded embedder, or None until `sig_embedder_ready`.
        panel: the `copilot.ui.panel.CopilotPanel`, built right after the first paint.
        backend: the `PanelBackend` (assistant, index), or None until `sig_backend_ready`.
        feedback_sink: where the panel's feedback goes (in memory until the store exists).

    Signals:
        sig_embedder_ready(object): the embedding model is loaded (an `Embedder`).
        sig_backend_ready(object): the content pack and index are loaded (a `PanelBackend`).
        sig_backend_reloaded(object): a new index generation went live and the backend was
            loaded again (a `PanelBackend`); open conversations are being analysed again.
        sig_first_paint(float): seconds from `main` to the window's first paint.
    """

    sig_embedder_ready = Signal(object)
    sig_backend_ready = Signal(object)
    sig_backend_reloaded = Signal(object)
    sig_first_paint = Signal(float)

    def __init__(
        self,
        qapp: QApplication,
        data_dir: Path,
        *,
        model_loader: ModelLoader | None = None,
        use_tray: bool | None = None,
        exit_after_first_paint: bool = False,
        started: float | None = None,
        backend_loader: BackendLoader | None = None,
        feedback_sink: Any = None,
        content_dir: Path | None = None,
        replay: Sequence[Any] = (),
        quit_after_replay: bool = False,
        bench: bool = False,
    ) -> None:
        """See the class docstring.

        Args:
            backend_loader: loads the content pack (tests pass a fake).
            feedback_sink: a `FeedbackSink`; a `MemoryFeedbackSink` when None.
            content_dir: the content pack to use instead of the one in the settings.
            replay: turns to replay at a realistic pace once the panel is ready (the demo).
            quit_after_replay: quit once the replay is done and its last turn analysed.
            bench: print start-up milestones as JSON lines and quit when done (`StartupProbe`).
        """
        super().__init__()
        self._qapp = qapp
        self._data_dir = data_dir
        self._started = started if started is not None else time.perf_counter()
        self._model_loader = model_loader or _default_model_loader
        self._backend_loader = backend_loader or _default_backend_loader
        self._content_dir = content_dir
        self._replay_turns = tuple(replay)
        self._quit_after_replay = quit_after_replay
        self._quit_when_idle = False
        self.replayer: Any = None
        self.ingest: Any = None  # `copilot.qt.ingest_bridge.IngestApiController`, with the panel
        self.feedback_sink = feedback_sink
        self.panel: Any = None
        self.generative: Any = None
        self.backend: Any = None
        self.index_watcher: Any = None
        self._reload_state = ""  # "", "running", or "again" (a newer generation meanwhile)
        self._exit_after_first_paint = exit_after_first_paint
        self._painted = False
        self._shut_down = False
        self.embedder: Any = None
        self.first_paint_s: float | None = None
        self.probe = StartupProbe(self._started, self) if bench else None
        if bench:
            self._quit_after_replay = True

        loaded = load_settings(data_dir)
        self.secrets = SecretStore()
        self.settings_vm = SettingsViewModel(data_dir, self.secrets, loaded=loaded, parent=self)
        self.theme = ThemeManager(qapp, parent=self)
        self.theme.apply(loaded.settings.theme)
        self.runner = TaskRunner(self)
        self.window = MainWindow(
            always_on_top=loaded.settings.always_on_top,
            snap_edge=loaded.settings.snap_edge,
            use_tray=use_tray,
        )
        self.instance = SingleInstanceServer(server_name(data_dir), self)
        self._settings_dialog: Any = None
        self.window.set_placeholder_text("Starting the co-pilot…")
        for warning in loaded.warnings:
            self.window.show_message(warning, kind="warning")
        self._connect()
        self._fallback = QTimer(self)
        self._fallback.setSingleShot(True)
        self._fallback.timeout.connect(self._after_first_paint)

    def _connect(self) -> None:
        window, vm = self.window, self.settings_vm
        self.runner.sig_task_failed.connect(window.show_message)
        vm.sig_theme_changed.connect(self.theme.apply)
        vm.sig_always_on_top_changed.connect(window.set_always_on_top)
        vm.sig_snap_edge_changed.connect(window.set_snap_edge)
        window.sig_always_on_top_toggled.connect(
            lambda on: self._show_problems(vm.set_always_on_top(on))
        )
        window.sig_snap_edge_requested.connect(
            lambda edge: self._show_problems(vm.set_snap_edge(edge))
        )
        window.sig_settings_requested.connect(self.open_settings)
        self._add_review_menu()
        window.sig_quit_requested.connect(self._qapp.quit)
        self.instance.sig_raise_requested.connect(window.bring_to_front)
        self.instance.sig_toggle_requested.connect(window.toggle_visibility)
        self._qapp.aboutToQuit.connect(self.shutdown)

    def _show_problems(self, problems: list[str]) -> None:
        for problem in problems:
            self.window.show_message(problem)

    # --- start-up -----------------------------------------------------------------------------

    def start(self) -> bool:
        """Listen for other instances and show the window; the model loads after it paints.

        Returns:
            False when another live instance took the socket in the meantime.
        """
        if not self.instance.listen():
            return False
        self.window.installEventFilter(self)
        self.window.show()
        self._fallback.start(_FIRST_PAINT_FALLBACK_MS)
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Paint and not self._painted:
            self._painted = True
            self.window.removeEventFilter(self)
            # Run once this paint is done and flushed, not inside it.
            QTimer.singleShot(0, self, self._after_first_paint)
        return False

    def _after_first_paint(self) -> None:
        if self.first_paint_s is not None or self._shut_down:
            return
        self._fallback.stop()
        self.first_paint_s = time.perf_counter() - self._started
        self.sig_first_paint.emit(self.first_paint_s)
        if self._exit_after_first_paint:
            report = {
                "first_paint_s": round(self.first_paint_s, 4),
                "heavy_modules": sorted(m for m in HEAVY_MODULES if m in sys.modules),
                "numpy_imported": "numpy" in sys.modules,
                "modules": len(sys.modules),
            }
            print(json.dumps(report), flush=True)
            self._qapp.quit()
            return
        if self.probe is not None:
            self.probe.report("first_paint", first_paint_s=round(self.first_paint_s, 4))
            self.probe.start()
        self.window.set_model_loading()
        # The panel's modules take ~0.5 s to import (sqlite_utils, numpy, the pipeline): done on
        # the GUI thread, that would freeze the window the agent has just seen appear.
        self.runner.run(
            BULK,
            _preimport,
            _PANEL_MODULES,
            on_success=lambda _result: self._build_panel_and_load_model(),
            on_failure=lambda _error: self._build_panel_and_load_model(),
            description="Loading the co-pilot",
        )

    def _build_panel_and_load_model(self) -> None:
        if self._shut_down:
            return
        built = time.perf_counter()
        self.build_panel()
        self.start_ingest_api()
        if self.probe is not None:
            self.probe.report("panel_built", panel_build_s=round(time.perf_counter() - built, 4))
        self.load_model()

    def build_panel(self) -> None:
        """Create the panel (view-models, sections, input, shortcuts) on the window."""
        if self.panel is not None:
            return
        from copilot.services.feedback_store import LazyStoreSink, feedback_db_path
        from copilot.ui.panel import build_panel

        if self.feedback_sink is None:
            # The SQLite store is opened by the db lane's thread, the only one that touches it;
            # every later write is queued behind this on the same lane.
            sink = LazyStoreSink(feedback_db_path(self._data_dir))
            self.feedback_sink = sink
            self.runner.run(
                "db",
                sink.open,
                self.settings_vm.settings.retention_days,
                description="Opening the feedback store",
            )
        self.panel = build_panel(
            self.window,
            self.runner,
            self.feedback_sink,
            agent_id=self.settings_vm.settings.agent_id or None,
            queue=self.settings_vm.settings.queue or None,
        )
        self._start_generative()

    def _start_generative(self) -> None:
        """The optional language model: asks after each offline snapshot when it is turned on."""
        from copilot.qt.generative_vm import GenerativeViewModel

        self.generative = GenerativeViewModel(
            self.panel.conversations,
            self.runner,
            settings=self.settings_vm.settings.llm,
            parent=self,
        )
        self.settings_vm.sig_settings_changed.connect(
            lambda settings: self.generative.set_settings(settings.llm)
        )

    def start_ingest_api(self) -> None:
        """Serve the local ingest API into the panel while the settings enable it."""
        if self.ingest is not None or self.panel is None:
            return
        from copilot.qt.ingest_bridge import IngestApiController, IngestBridge

        bridge = IngestBridge(
            self.panel.conversations, self.runner, self.feedback_sink, parent=self
        )
        self.ingest = IngestApiController(bridge, self.runner, self.secrets, parent=self)
        self.ingest.sig_status_changed.connect(self.window.set_sources)
        self.settings_vm.sig_settings_changed.connect(
            lambda settings: self.ingest.apply(settings.sources.ingest_api)
        )
        self.ingest.apply(self.settings_vm.settings.sources.ingest_api)

    def load_model(self) -> None:
        """Load the embedder named in the settings on the bulk lane, showing progress."""
        backend = self.settings_vm.settings.embedding_backend
        self.window.set_model_loading()
        if backend != "onnx":
            self._run_model_load(backend)
            return
        self.runner.run(
            BULK,
            _onnx_cache_problem,
            self._data_dir,
            on_success=lambda problem: self._run_model_load(backend, first_use=bool(problem)),
            on_failure=lambda _exc: self._run_model_load(backend, first_use=True),
            description="Checking the language model",
        )

    def _run_model_load(self, backend: str, *, first_use: bool = False) -> None:
        if first_use:
            self.window.set_model_loading(
                "Preparing the language model for first use (one-off, up to a minute)…"
            )
        self.runner.run(
            BULK,
            _load_and_warm,
            self._model_loader,
            backend,
            self._data_dir,
            on_success=self._model_loaded,
            on_failure=self._model_failed,
            description="Loading the language model",
        )

    def _model_loaded(self, result: tuple[Any, float]) -> None:
        embedder, seconds = result
        self.embedder = embedder
        if self.probe is not None:
            self.probe.report(
                "model_ready", model_load_s=round(seconds, 4), model=getattr(embedder, "name", "")
            )
        self.window.set_model_ready(seconds, getattr(embedder, "name", ""))
        # Choosing a keyring backend probes D-Bus (~0.3 s): do it now, off the GUI thread, so the
        # settings dialog opens at once later.
        self.runner.run(BULK, self.secrets.available, description="Checking the keyring")
        self.sig_embedder_ready.emit(embedder)
        self.load_backend(embedder)

    def content_dir(self) -> Path:
        """The content pack: the demo's, else the one in the settings, else the default."""
        if self._content_dir is not None:
            return self._content_dir
        chosen = self.settings_vm.settings.content_dir
        return paths.content_dir(chosen)

    def _loader(self) -> BackendLoader:
        loader = self._backend_loader
        if loader is _default_backend_loader and hasattr(self.feedback_sink, "prior"):
            # Suggestions are ranked with what agents accepted before.
            loader = functools.partial(_default_backend_loader, prior=self.feedback_sink)
        return loader

    def load_backend(self, embedder: Any) -> None:
        """Load the content pack and open the index on the bulk lane; then enable the panel."""
        self.runner.run(
            BULK,
            _timed,
            self._loader(),
            self.content_dir(),
            self._data_dir,
            embedder,
            on_success=self._backend_loaded,
            on_failure=self._backend_failed,
            description="Loading the knowledge pack",
        )

    def _backend_loaded(self, result: tuple[Any, float]) -> None:
        backend, seconds = result
        self.backend = backend
        _log.info("knowledge pack loaded in %.2f s", seconds)
        # Problems in the pack are for a knowledge manager (`copilot index` reports them), not
        # for the agent on a call: logged, not bannered.
        for warning in getattr(backend, "warnings", ()):
            _log.warning("content pack: %s", warning)
        if self.panel is not None:
            self.panel.conversations.set_backend(backend)
        self.sig_backend_ready.emit(backend)
        self._watch_index(backend)
        if self.probe is not None:
            self.probe.report(
                "backend_ready",
                backend_load_s=round(seconds, 4),
                load_stall_ms=self.probe.take_stall_ms(),
            )
            if not self._replay_turns:
                QTimer.singleShot(0, self, self._qapp.quit)
        if self._replay_turns and self.panel is not None:
            from copilot.qt.replay import TurnReplayer

            pace: dict[str, float] = {}
            if self.probe is not None:
                pace = {"max_gap_s": _BENCH_REPLAY_GAP_S, "min_gap_s": _BENCH_REPLAY_GAP_S}
            self.replayer = TurnReplayer(
                self.panel.conversations, self._replay_turns, parent=self, **pace
            )
            self.replayer.sig_finished.connect(self._replay_finished)
            self.replayer.start()

    def _replay_finished(self) -> None:
        if not self._quit_after_replay or self.panel is None:
            return
        self._quit_when_idle = True
        self.panel.conversations.sig_busy_changed.connect(self._quit_if_idle)
        self._quit_if_idle()

    def _quit_if_idle(self, *_: object) -> None:
        if not self._quit_when_idle or self.panel is None:
            return
        if self.panel.conversations.is_idle():
            self._quit_when_idle = False
            # A moment for the last update to paint, then quit.
            QTimer.singleShot(300, self, self._quit_after_last_paint)

    def _quit_after_last_paint(self) -> None:
        if self.probe is not None:
            # Reported now, so the stall of showing the last snapshot counts too.
            self.probe.report(
                "replay_finished",
                turns=len(self._replay_turns),
                replay_stall_ms=self.probe.take_stall_ms(),
            )
        self._qapp.quit()

    # --- a new index generation goes live -------------------------------------------------------

    def _watch_index(self, backend: Any) -> None:
        """Reload the backend whenever another index generation goes live: the knowledge
        window's "Swap in", or ``copilot index`` run in another process."""
        if self.index_watcher is not None or self.probe is not None:
            return
        from copilot.qt.conversations_vm import IndexWatcher, live_generation

        index_dir = paths.index_dir(self._data_dir)
        generation = getattr(
            getattr(getattr(backend, "index", None), "generation", None), "name", None
        )
        self.index_watcher = IndexWatcher(
            index_dir, generation or live_generation(index_dir), parent=self
        )
        self.index_watcher.sig_generation_changed.connect(self._index_changed)

    def _index_changed(self, generation: str) -> None:
        if self._shut_down or self.embedder is None:
            return
        if self._reload_state:
            self._reload_state = "again"  # load once more when this one is done
            return
        _log.info("index generation %s went live: reloading the knowledge pack", generation)
        self._reload_state = "running"
        self.window.set_model_state("loading", "Loading the updated knowledge…")
        self.runner.run(
            BULK,
            _timed,
            self._loader(),
            self.content_dir(),
            self._data_dir,
            self.embedder,
            on_success=self._backend_reloaded,
            on_failure=self._reload_failed,
            description="Loading the updated knowledge",
        )

    def _reload_done(self) -> None:
        again = self._reload_state == "again"
        self._reload_state = ""
        if again and self.index_watcher is not None:
            self._index_changed(self.index_watcher.generation or "")

    def _backend_reloaded(self, result: tuple[Any, float]) -> None:
        backend, seconds = result
        self.backend = backend
        _log.info("knowledge pack reloaded in %.2f s", seconds)
        if self.panel is not None:
            # Every open conversation is analysed again with the new index.
            self.panel.conversations.set_backend(backend)
        index = getattr(backend, "index", None)
        count = getattr(index, "article_count", None)
        self.window.set_model_state(
            "ready",
            f"Knowledge updated ({count} articles)" if count is not None else "Knowledge updated",
        )
        self.sig_backend_reloaded.emit(backend)
        self._reload_done()

    def _reload_failed(self, error: BaseException) -> None:
        detail = str(error).strip() or type(error).__name__
        self.window.set_model_state("ready", "Knowledge update failed; using the previous one")
        self.window.show_message(
            f"The updated knowledge index could not be loaded ({detail}); the co-pilot keeps"
            " using the previous one.",
            kind="warning",
        )
        self._reload_done()

    def _backend_failed(self, error: BaseException) -> None:
        detail = str(error).strip() or type(error).__name__
        if self.panel is not None:
            self.panel.set_unavailable(f"The knowledge pack could not be loaded: {detail}")
        self.window.show_message(
            f"The knowledge pack could not be loaded ({detail}). Fix the content pack named in "
            "the settings, then restart the co-pilot."
        )
        self._quit_with_error_if_unattended(f"the knowledge pack could not be loaded: {detail}")

    def _quit_with_error_if_unattended(self, problem: str) -> None:
        """A demo told to quit when done must not wait forever for a replay that cannot run."""
        if self._quit_after_replay and self._replay_turns:
            print(f"copilot: error: {problem}", file=sys.stderr)
            QTimer.singleShot(0, self, lambda: self._qapp.exit(1))

    def _model_failed(self, error: BaseException) -> None:
        detail = str(error).strip() or type(error).__name__
        self.window.set_model_failed(f"Language model failed to load: {detail}")
        self.window.show_message(
            f"The language model could not be loaded ({detail}). Suggestions and knowledge "
            "articles stay empty until it loads; `copilot model export` rebuilds it."
        )
        self._quit_with_error_if_unattended(f"the language model could not be loaded: {detail}")

    # --- actions ------------------------------------------------------------------------------

    def open_settings(self) -> None:
        """Show the settings dialog (one at a time)."""
        from copilot.ui.settings_dialog import SettingsDialog

        if self._settings_dialog is not None:
            self._settings_dialog.raise_()
            self._settings_dialog.activateWindow()
            return
        dialog = SettingsDialog(self.settings_vm, self.window)
        self._settings_dialog = dialog
        dialog.finished.connect(self._settings_closed)
        dialog.open()

    def _settings_closed(self, _result: int) -> None:
        if self._settings_dialog is not None:
            self._settings_dialog.deleteLater()
        self._settings_dialog = None

    def _add_review_menu(self) -> None:
        """A "Tools" menu opening the team-lead review and knowledge-manager windows."""
        from PySide6.QtGui import QAction

        self._tool_windows: dict[str, Any] = {}
        menu = self.window.menuBar().addMenu("&Tools")
        for label, opener in (("&Review…", self.open_review), ("&Knowledge…", self.open_knowledge)):
            action = QAction(label, self.window)
            action.triggered.connect(opener)
            menu.addAction(action)

    def _show_tool_window(self, key: str, build: Callable[[], Any]) -> Any:
        """Build (once) and show a tool window; it owns its view-model (see its __init__)."""
        window = self._tool_windows.get(key)
        if window is None:
            window = self._tool_windows[key] = build()
        window.vm.refresh()
        window.show()
        window.raise_()
        window.activateWindow()
        return window

    def open_review(self) -> Any:
        """Show the team-lead review window (one, reused; reloaded each time it is opened)."""
        from copilot.qt.review_vm import ReviewViewModel
        from copilot.services.feedback_store import feedback_db_path
        from copilot.ui.review_window import ReviewWindow

        def build() -> Any:
            vm = ReviewViewModel(
                self.runner,
                feedback_db_path(self._data_dir),
                show_per_agent=self.settings_vm.settings.show_per_agent_figures,
            )
            self.settings_vm.sig_settings_changed.connect(
                lambda settings: vm.set_show_per_agent(settings.show_per_agent_figures)
            )
            return ReviewWindow(vm, self.window)

        return self._show_tool_window("review", build)

    def open_knowledge(self) -> Any:
        """Show the knowledge-manager window (one, reused; rescanned each time it is opened)."""
        from copilot.qt.knowledge_vm import KnowledgeSources, KnowledgeViewModel
        from copilot.services.feedback_store import feedback_db_path
        from copilot.ui.knowledge_window import KnowledgeWindow

        def build() -> Any:
            sources = KnowledgeSources(
                content_dir=self.content_dir(),
                index_dir=paths.index_dir(self._data_dir),
                db_path=feedback_db_path(self._data_dir),
            )
            vm = KnowledgeViewModel(self.runner, sources, lambda: self.embedder)
            return KnowledgeWindow(vm, self.window)

        return self._show_tool_window("knowledge", build)

    def set_last_update(self, latency_ms: float) -> None:
        """Convenience for the panel: the pipeline just delivered a snapshot."""
        self.window.set_last_update(datetime.now(), latency_ms)

    def shutdown(self) -> None:
        """Stop timers and workers (joins them), stop listening; idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self._fallback.stop()
        if self.index_watcher is not None:
            self.index_watcher.stop()
        if self.probe is not None:
            self.probe.stop()
        if self.replayer is not None:
            self.replayer.stop()
        if self.ingest is not None:
            self.ingest.stop()  # before the panel: requests waiting on it are answered at once
        if self.generative is not None:
            self.generative.shutdown()
        if self.panel is not None:
            self.panel.shutdown()
            # Feedback queued on the db lane would be dropped by the runner's shutdown: let it
            # finish first (it takes milliseconds; the wait is bounded).
            drained = threading.Event()
            self.runner.run(DB, drained.set, description="Saving feedback")
            drained.wait(2.0)
        # Hide first: joining a worker in the middle of a model export can take seconds.
        self.window.hide()
        self.runner.shutdown(wait=True)
        self.instance.close()


def main(
    args: argparse.Namespace,
    *,
    content_dir: Path | None = None,
    replay: Sequence[Any] = (),
    quit_after_replay: bool = False,
    model_loader: ModelLoader | None = None,
) -> int:
    """Run the desktop app (``copilot`` with no subcommand); returns the exit status.

    Args:
        args: the parsed command line (``--data-dir``, ``--toggle``).
        content_dir: use this content pack instead of the settings' (``copilot demo``).
        replay: turns to replay once the panel is ready (``copilot demo``).
        quit_after_replay: quit once the replay is done and analysed (tests, CI).
        model_loader: loads the embedder (tests pass a fast fake).
    """
    started = time.perf_counter()
    data_dir = paths.data_dir(getattr(args, "data_dir", None))
    name = server_name(data_dir)
    command = TOGGLE if getattr(args, "toggle", False) else RAISE
    # Before creating a QApplication: a second start must exit fast.
    sent = send_to_running_instance(name, command)
    if sent is SendResult.DELIVERED:
        if replay:
            print(
                f"{APP_TITLE} is already running for {data_dir}: it was raised. Quit it to run "
                "the demo.",
                file=sys.stderr,
            )
        return 0
    if sent is SendResult.NOT_RESPONDING:
        print(
            f"copilot: error: {APP_TITLE} is already running for {data_dir} but does not respond",
            file=sys.stderr,
        )
        return 1

    bench = os.environ.get(BENCH_STARTUP_ENV) == "1"
    if bench and model_loader is None and os.environ.get("COPILOT_BENCH_BACKEND") == "hashing":
        # `copilot bench startup --backend hashing`: its own tests, without the real model.
        model_loader = _hashing_loader
    existing = QApplication.instance()
    qapp = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    qapp.setApplicationName(APP_TITLE)
    qapp.setOrganizationName("agent-copilot")
    # Wayland matches windows to their .desktop file (and its icon) by this id.
    qapp.setDesktopFileName(APP_ID)
    qapp.setWindowIcon(app_icon())
    app = CopilotApp(
        qapp,
        data_dir,
        exit_after_first_paint=os.environ.get(EXIT_AFTER_FIRST_PAINT_ENV) == "1",
        bench=bench,
        started=started,
        content_dir=content_dir,
        replay=replay,
        quit_after_replay=quit_after_replay,
        model_loader=model_loader,
    )
    if not app.start():
        # Lost a race with another instance starting at the same moment: hand over to it.
        app.shutdown()
        return 0 if send_to_running_instance(name, command) is SendResult.DELIVERED else 1
    try:
        status = qapp.exec()
    finally:
        app.shutdown()
    return int(status)
