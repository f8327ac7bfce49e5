"""``copilot bench turn``: per-stage and total latency of the per-turn pipeline on the demos."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "turn",
        help="per-turn pipeline latency p50/p95 per stage, on the demo conversations",
        description=__doc__,
    )
    _common.add_content_option(parser)
    _common.add_backend_option(parser)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the demos (default 3)")
    parser.add_argument(
        "--passages",
        type=int,
        default=0,
        help="also pad the index with synthetic passages to this size (e.g. 10000)",
    )
    parser.add_argument(
        "--llm-endpoint",
        metavar="URL",
        help="also run the optional LLM backend as the app does (each turn's request in flight on"
        " its own thread while the next turns are analysed; answers screened on the pipeline's"
        " thread), e.g. a local fake server: python tests/fixtures/fake_chat_server.py",
    )
    parser.add_argument("--llm-model", default="fake-model", help="model name for --llm-endpoint")
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=0.0,
        help="pause between turns (live turns are seconds apart; with --llm-endpoint, a pause"
        " longer than the model's answer lets every answer arrive and be screened)",
    )
    parser.add_argument("--llm-timeout", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


class _LlmProbe:
    """The generative backend beside the pipeline, as in the app: requests on a worker thread
    (the llm lane), newest wins, answers screened on the pipeline's thread between turns."""

    def __init__(self, endpoint: str, model: str, timeout_s: float, spec: Any) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        from copilot.services.llm import ChatClient

        self._threading = threading
        self._client = ChatClient(endpoint, model, timeout_s=timeout_s)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bench-llm")
        self._spec = spec
        self._cancel: Any = None
        self._pending: list[tuple[Any, Any, Any, Any]] = []
        self._queued: tuple[Any, Any] | None = None
        self._window: float | None = None
        self.prompt_ms: list[float] = []
        self.screen_ms: list[float] = []
        self.round_trip_ms: list[float] = []
        self.counts = {"requests": 0, "applied": 0, "superseded": 0, "failed": 0, "dropped": 0}

    def after_turn(self, conversation: Any, snapshot: Any) -> None:
        self.drain(wait=False)
        if not snapshot.query:
            return
        # The app's debouncer: the first snapshot opens a window, later ones replace the
        # queued request, and the newest is asked for when the window closes.
        self._queued = (conversation.turns, snapshot)
        if self._window is None:
            self._window = time.perf_counter()
        self._fire(force=False)

    def _fire(self, *, force: bool) -> None:
        from copilot.core.generative import ASK_DEBOUNCE_MS

        if self._queued is None or self._window is None:
            return
        if not force and time.perf_counter() - self._window < ASK_DEBOUNCE_MS / 1000:
            return
        turns, snapshot = self._queued
        self._queued = self._window = None
        if self._cancel is not None:
            self._cancel.set()
        self._cancel = cancel = self._threading.Event()
        future = self._pool.submit(self._ask, turns, snapshot.hits, cancel)
        self._pending.append((future, None, snapshot, turns))
        self.counts["requests"] += 1

    def _ask(self, turns: Any, hits: Any, cancel: Any) -> Any:
        """On the worker thread, as the app's llm lane: build the prompt, then send it."""
        from copilot.core.generative import ANSWER_SCHEMA, build_request
        from copilot.services.llm import LlmError, LlmErrorKind

        if cancel.is_set():  # superseded while queued: the app's task runner skips it too
            raise LlmError(LlmErrorKind.CANCELLED, "superseded")
        started = time.perf_counter()
        request = build_request(turns, hits)
        self.prompt_ms.append((time.perf_counter() - started) * 1000)
        reply = self._client.complete(
            request.messages(), schema=ANSWER_SCHEMA, cancelled=cancel.is_set
        )
        return request, reply

    def drain(self, *, wait: bool) -> None:
        from copilot.core.generative import (
            AnswerError,
            apply_answer,
            bind_draft_check,
            screen_answer,
        )
        from copilot.services.llm import LlmError

        self._fire(force=wait)
        keep = []
        for item in self._pending:
            future, _request, snapshot, turns = item
            if not (wait or future.done()):
                keep.append(item)
                continue
            try:
                request, reply = future.result()
            except LlmError as exc:
                self.counts["superseded" if exc.kind.value == "cancelled" else "failed"] += 1
                continue
            self.round_trip_ms.append(reply.elapsed_ms)
            started = time.perf_counter()
            check = bind_draft_check(self._spec, turns=turns, flags=tuple(snapshot.flags))
            try:
                answer = screen_answer(
                    reply.content, request, draft_check=check, base_summary=snapshot.summary
                )
                apply_answer(snapshot, answer)
            except AnswerError:
                answer = None
            self.screen_ms.append((time.perf_counter() - started) * 1000)
            self.counts["applied" if answer is not None and answer.usable else "dropped"] += 1
        self._pending = keep

    def close(self) -> dict[str, Any]:
        from copilot.core.metrics import percentile

        self.drain(wait=True)
        self._pool.shutdown(wait=True)
        self._client.close()

        def stats(values: list[float]) -> dict[str, float] | None:
            if not values:
                return None
            return {
                "p50_ms": round(percentile(values, 50), 3),
                "p95_ms": round(percentile(values, 95), 3),
            }

        return {
            **self.counts,
            "prompt": stats(self.prompt_ms),
            "screen": stats(self.screen_ms),
            "round_trip": stats(self.round_trip_ms),
        }


def _demo_conversations(content: Path) -> list[list[Any]]:
    from copilot.services.transcripts import BadLine, read_events

    files = sorted((content / "demos").glob("*.jsonl"))
    conversations = []
    for path in files:
        events = [e for e in read_events(path) if not isinstance(e, BadLine)]
        if events:
            conversations.append(events)
    return conversations


def run(args: argparse.Namespace) -> int:
    import platform

    from copilot.cli import UserError
    from copilot.core.conversation import Conversation
    from copilot.core.metrics import percentile
    from copilot.core.pipeline import STAGES
    from copilot.services.assistant import build_assistant

    content = _common.content_dir(args)
    demos = _demo_conversations(content)
    if not demos:
        raise UserError(f"no demo conversations in {content / 'demos'}")
    embedder = _common.embedder(args)
    assistant, index, _ = build_assistant(content, _common.data_dir(args), embedder)
    if args.passages:
        import tempfile

        from copilot.commands.bench_search import _synthetic_index
        from copilot.services.knowledge_index import query_terms

        vocabulary = sorted({t for p in index._passages.values() for t in query_terms(p.text)})
        tmp = tempfile.TemporaryDirectory(prefix="copilot-bench-")
        assistant.index = _synthetic_index(Path(tmp.name), args.passages, embedder, vocabulary)
    llm = (
        _LlmProbe(args.llm_endpoint, args.llm_model, args.llm_timeout, assistant.policy)
        if args.llm_endpoint
        else None
    )
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals: list[float] = []
    cpu_totals: list[float] = []
    errors = 0
    for _ in range(args.repeat):
        assistant._vectors.clear()  # measure the embedding every turn, as live
        assistant._turn_signals.clear()
        for events in demos:
            conversation = Conversation()
            for event in events:
                conversation = conversation.apply(event)
                if not event.is_final:
                    continue
                started = time.perf_counter()
                cpu_started = time.thread_time()
                snapshot = assistant.analyse(conversation)
                totals.append((time.perf_counter() - started) * 1000)
                # CPU time of this thread: what the turn costs, without waiting for a core
                # another process (or the LLM thread) holds; steadier on a shared machine.
                cpu_totals.append((time.thread_time() - cpu_started) * 1000)
                errors += len(snapshot.errors)
                for timing in snapshot.timings:
                    per_stage[timing.stage].append(timing.ms)
                if llm is not None:
                    llm.after_turn(conversation, snapshot)
                if args.pause_ms:
                    time.sleep(args.pause_ms / 1000)
                    if llm is not None:
                        llm.drain(wait=False)  # answers that came in meanwhile, as the app does
    # One query embedding alone, measured in the same run, is the floor of a turn's cost.
    sample = "I've been charged twice for my broadband bill this month and I want it refunded"
    embed_alone = []
    for _ in range(200):
        started = time.perf_counter()
        embedder.embed([sample])
        embed_alone.append((time.perf_counter() - started) * 1000)
    results: dict[str, Any] = {
        "backend": embedder.name,
        "machine": f"{platform.machine()} {platform.system()} python {platform.python_version()}",
        "conversations": len(demos),
        "turns": len(totals),
        "passages": getattr(assistant.index, "passage_count", None),
        "stage_errors": errors,
        "stages": {
            stage: {
                "p50_ms": round(percentile(values, 50), 3),
                "p95_ms": round(percentile(values, 95), 3),
            }
            for stage, values in per_stage.items()
            if values
        },
        "total": {
            "p50_ms": round(percentile(totals, 50), 3),
            "p95_ms": round(percentile(totals, 95), 3),
            "max_ms": round(max(totals), 3),
        },
        "total_thread_cpu": {
            "p50_ms": round(percentile(cpu_totals, 50), 3),
            "p95_ms": round(percentile(cpu_totals, 95), 3),
        },
        "single_embedding": {
            "p50_ms": round(percentile(embed_alone, 50), 3),
            "p95_ms": round(percentile(embed_alone, 95), 3),
        },
    }
    if llm is not None:
        results["llm"] = {"endpoint": args.llm_endpoint, **llm.close()}
    results["total_p50_over_embedding_p50"] = round(
        results["total"]["p50_ms"] / max(results["single_embedding"]["p50_ms"], 1e-6), 2
    )
    index.close()
    if args.json:
        _common.print_json(results)
        return 0
    print(
        f"{results['turns']} turns of {results['conversations']} demo conversations, "
        f"{results['passages']} passages, backend {results['backend']}"
    )
    print(f"{'stage':<10}{'p50 ms':>9}{'p95 ms':>9}")
    for stage, row in results["stages"].items():
        print(f"{stage:<10}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}")
    total = results["total"]
    print(
        f"{'TOTAL':<10}{total['p50_ms']:>9.2f}{total['p95_ms']:>9.2f}   max {total['max_ms']:.2f}"
    )
    cpu = results["total_thread_cpu"]
    print(f"{'(CPU)':<10}{cpu['p50_ms']:>9.2f}{cpu['p95_ms']:>9.2f}   this thread's CPU time")
    single = results["single_embedding"]
    print(
        f"one query embedding: p50 {single['p50_ms']:.2f} ms, p95 {single['p95_ms']:.2f} ms; "
        f"total p50 = {results['total_p50_over_embedding_p50']}x the embedding"
    )
    if llm is not None:
        info = results["llm"]
        print(
            f"LLM backend on ({info['endpoint']}): {info['requests']} requests, "
            f"{info['applied']} answers applied, {info['superseded']} superseded by a newer "
            f"turn, {info['failed']} failed, {info['dropped']} dropped by the guards"
        )
        for name in ("prompt", "screen", "round_trip"):
            row = info[name]
            if row:
                print(f"  {name}: p50 {row['p50_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms")
    if errors:
        print(f"WARNING: {errors} stage errors during the run")
    return 0
