"""``copilot serve``: the headless engine behind the local ingest API; ``copilot token``: its key.

``serve`` loads the content pack, starts the engine (one analysis worker) and serves the API on
127.0.0.1 until Ctrl+C (or SIGTERM). Other tools push turns to ``POST /v1/turns`` and read
``GET /v1/conversations/{id}/snapshot``; every request but ``GET /v1/health`` carries
``Authorization: Bearer <token>``, where the token is shown by ``copilot token``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the headless engine and the local ingest API (127.0.0.1)",
        description=__doc__,
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="TCP port on 127.0.0.1 (default: the settings' sources.ingest_api.port, 8765);"
        " 0 picks a free one",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an exact browser Origin allowed to call the API (repeatable); requests without"
        " an Origin are always allowed",
    )
    parser.add_argument(
        "--tail",
        type=Path,
        metavar="FILE",
        help="also follow a JSON Lines transcript as it grows (default: the settings'"
        " sources.jsonl_tail_path, if set)",
    )
    parser.add_argument(
        "--no-feedback",
        action="store_true",
        help="do not open the feedback store (POST /v1/feedback is then refused)",
    )
    _common.add_content_option(parser)
    _common.add_backend_option(parser)
    parser.set_defaults(func=run)

    token = subparsers.add_parser(
        "token",
        help="show (or rotate) the ingest API token kept in the system keyring",
        description="Print the bearer token clients of the local ingest API send. --rotate"
        " replaces it: clients holding the old one get 401 until they use the new one.",
    )
    token.add_argument("--rotate", action="store_true", help="replace the token with a new one")
    token.add_argument("--json", action="store_true", help="print one JSON object")
    token.set_defaults(func=run_token)


def run_token(args: argparse.Namespace) -> int:
    from copilot.services.ingest_server import ensure_token, rotate_token
    from copilot.services.secrets import SecretStore

    store = SecretStore()
    token, saved = rotate_token(store) if args.rotate else ensure_token(store)
    _, message = store.available()
    if args.json:
        _common.print_json({"token": token, "saved": saved, "rotated": bool(args.rotate)})
    else:
        print(token)
        if not saved:
            print(
                f"{message} A running `copilot serve` keeps its own token; this one is new.",
                file=sys.stderr,
            )
    return 0


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        return serve(args, stop)
    except KeyboardInterrupt:
        return 0  # serve() already shut down cleanly in its finally blocks
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    args: argparse.Namespace,
    stop: threading.Event,
    *,
    ready: Callable[[Any], None] | None = None,
    embedder: Any = None,
) -> int:
    """Run until `stop` is set (or Ctrl+C); `ready(server)` is called once it listens.

    Args:
        args: the parsed ``serve`` arguments.
        stop: set it to shut down.
        ready: called with the `IngestServer` once it accepts connections (tests).
        embedder: an embedder to use instead of the ``--backend`` one (tests).
    """
    from copilot.cli import UserError
    from copilot.services.assistant import build_assistant, learned_intent_examples
    from copilot.services.engine import HeadlessEngine
    from copilot.services.feedback_store import LazyStoreSink, feedback_db_path
    from copilot.services.ingest_server import IngestServer, ensure_token
    from copilot.services.secrets import SecretStore
    from copilot.services.settings import load_settings
    from copilot.services.tail_source import JsonlTail

    data = _common.data_dir(args)
    loaded = load_settings(data)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    port = args.port if args.port is not None else loaded.settings.sources.ingest_api.port
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, not {port}")
    token, saved = ensure_token(SecretStore())

    print("loading the content pack and the model...", file=sys.stderr)
    sink = None if args.no_feedback else LazyStoreSink(feedback_db_path(data))
    content = _common.content_dir(args)
    assistant, index, report = build_assistant(
        content,
        data,
        embedder if embedder is not None else _common.embedder(args),
        prior=sink,
        # Agents' intent corrections are learnt examples, as in the panel.
        extra_intent_examples=learned_intent_examples(content, feedback_db_path(data)),
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    engine = HeadlessEngine(assistant, feedback=sink)
    engine.start()
    try:
        if sink is not None:
            # The SQLite store belongs to the thread that opens it: the engine's worker.
            retention = loaded.settings.retention_days
            engine.call(lambda: sink.open(retention)).result(60)
        origins = (*loaded.settings.sources.ingest_api.allowed_origins, *args.allow_origin)
        server = IngestServer(engine, token, port=port, allowed_origins=origins)
        try:
            server.start()
        except OSError as exc:
            raise UserError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
        try:
            print(f"Agent Co-pilot ingest API listening on {server.url}", flush=True)
            if saved:
                print("Clients send 'Authorization: Bearer <token>'; `copilot token` prints it.")
            else:
                # No keyring: the token exists in this process only, so it is shown here.
                print(f"No system keyring: this session's token is {token}")
            print("Press Ctrl+C to stop.", flush=True)
            tail_path = args.tail or loaded.settings.sources.jsonl_tail_path
            tail = None
            if tail_path is not None:
                tail = JsonlTail(
                    Path(tail_path),
                    engine.submit,
                    lambda bad: print(f"skipped {bad}", file=sys.stderr),
                )
                tail.start()
                print(f"Following {tail_path}", flush=True)
            try:
                if ready is not None:
                    ready(server)
                while not stop.wait(0.5):
                    pass
            finally:
                if tail is not None:
                    tail.stop()
        finally:
            server.stop()
    finally:
        if sink is not None:
            try:
                engine.call(sink.close).result(10)
            except Exception as exc:  # shutting down: report, do not mask the first error
                print(f"warning: closing the feedback store failed: {exc}", file=sys.stderr)
        engine.stop()
        index.close()
    print("stopped", file=sys.stderr)
    return 0
