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
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


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
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals: list[float] = []
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
                snapshot = assistant.analyse(conversation)
                totals.append((time.perf_counter() - started) * 1000)
                errors += len(snapshot.errors)
                for timing in snapshot.timings:
                    per_stage[timing.stage].append(timing.ms)
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
        "single_embedding": {
            "p50_ms": round(percentile(embed_alone, 50), 3),
            "p95_ms": round(percentile(embed_alone, 95), 3),
        },
    }
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
    single = results["single_embedding"]
    print(
        f"one query embedding: p50 {single['p50_ms']:.2f} ms, p95 {single['p95_ms']:.2f} ms; "
        f"total p50 = {results['total_p50_over_embedding_p50']}x the embedding"
    )
    if errors:
        print(f"WARNING: {errors} stage errors during the run")
    return 0
