"""``copilot bench feedback``: feedback store insert rates, and the report over a million actions.

Measures, each in a fresh database in a temporary directory:

* one action per commit, as the panel records them (each COMMIT fsynced: WAL, synchronous=FULL);
* batches of 1,000 actions per commit (`FeedbackStore.record_many`);
* a bulk load of ``--actions`` synthetic actions (`FeedbackStore.import_actions`);
* `FeedbackStore.report` over them: all time, the last 30 days, one intent, one kind, one
  queue, one source (target: at most 1 s at 1,000,000 actions), plus opening the store
  (loading the priors), `gaps` and `harvest`.

The synthetic log imitates a contact centre: conversations over 180 days, each with a few turns,
three suggestions shown per turn from templates and article passages of its intent, answered by
accept / edit / discard (with reasons) or nothing, flags shown and sometimes marked wrong,
articles rated, intents corrected, retrieval misses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from copilot.commands import _common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "feedback",
        help="feedback store: insert rate and report time over 1,000,000 actions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--actions",
        type=int,
        default=1_000_000,
        help="synthetic actions bulk-loaded for the report timing (default 1,000,000)",
    )
    parser.add_argument(
        "--single",
        type=int,
        default=300,
        help="actions recorded one commit each (default 300)",
    )
    parser.add_argument(
        "--batched",
        type=int,
        default=20_000,
        help="actions recorded in batches of 1,000 (default 20,000)",
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="where the benchmark databases go (default: a temporary directory, removed after)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


_REPLIES = (
    "I'm sorry to hear you've been charged twice. Let me look into the payments for you.",
    "Thanks for waiting. One of those payments is a pending hold and will drop off in a few days.",
    "I've raised a refund for the duplicate payment; it should reach your account in 3 to 5 days.",
    "Your bill is issued on the 1st of each month and collected on the 7th.",
    "I can see your router is online. Could you restart it by holding the reset button?",
    "Your parcel is with the courier and should arrive tomorrow before 6pm.",
    "You can return the device within 30 days of delivery for a full refund.",
    "I'm very sorry for your loss. I can take care of closing the account for you today.",
    "Before I look at your account, could you confirm your full name and postcode?",
    "There's a known outage in your area; engineers expect it to be fixed by this evening.",
)
_EDITS = (
    "Sorry about that! I've checked and one of the two payments is only a pending hold, it will"
    " disappear from your statement within a week.",
    "So sorry for the double charge. I've asked our billing team to refund the extra payment and"
    " you should see it within 5 working days.",
    "Thanks for your patience. Engineers are working on the outage near you and expect service"
    " back by tonight.",
    "No problem at all, you can send the device back within 30 days and we'll refund you in full.",
)
_MISSES = (
    "do you sell pet insurance",
    "can I pay my bill with bitcoin",
    "is there a discount for nurses",
    "can I move my broadband to my holiday home for a month",
    "what happens to my number if I move abroad",
)
_REASONS = ("wrong_topic", "wrong_tone", "outdated", "policy", "other")
_FLAGS = ("frustration", "churn_risk", "legal_threat", "distress", "human_request")
_RULES = ("POL-IDV-001", "POL-CARD-001", "POL-PROMISE-002")


def synthetic_actions(
    n: int, *, seed: int = 7, days: int = 180, end: dt.datetime | None = None
) -> Iterator[Any]:
    """Yield about `n` plausible `FeedbackAction`s (see the module docstring), oldest first."""
    from copilot.core.feedback import FeedbackAction, FeedbackKind

    rng = random.Random(seed)
    end = end or dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=days)
    span = (end - start).total_seconds()
    intents = [f"intent_{i:02d}" for i in range(40)]
    templates = {
        intent: [f"area{i}.template_{j}" for j in range(4)] for i, intent in enumerate(intents)
    }
    passages = {
        intent: [f"KB-T{i:02d}-{j:03d}#{p}" for j in range(3) for p in range(3)]
        for i, intent in enumerate(intents)
    }
    agents = [f"agent{a:02d}" for a in range(60)]
    queues = ("billing", "technical", "sales", "retention", "general")
    channels = ("chat", "voice", "email")
    produced = 0
    conversation = 0
    step = span / max(1, n // 12)
    clock = start.timestamp()
    while produced < n:
        conversation += 1
        cid = f"conv-{seed}-{conversation:07d}"
        intent = rng.choice(intents)
        agent = rng.choice(agents)
        queue = rng.choice(queues)
        channel = rng.choice(channels)
        clock += rng.uniform(0.2, 1.8) * step
        ts = min(clock, end.timestamp())
        common = {"conversation_id": cid, "agent_id": agent, "queue": queue, "channel": channel}

        def at(offset: float, _ts: float = ts) -> dt.datetime:
            return dt.datetime.fromtimestamp(_ts + offset, dt.UTC)

        out: list[FeedbackAction] = []
        for turn in range(rng.randint(1, 4)):
            tid = f"t{turn}"
            shown = [*rng.sample(templates[intent], 2), rng.choice(passages[intent])]
            latency = rng.lognormvariate(1.6, 0.5)
            for rank, item in enumerate(shown, start=1):
                article = item.split("#")[0] if "#" in item else None
                out.append(
                    FeedbackAction(
                        kind=FeedbackKind.SUGGESTION_SHOWN,
                        turn_id=tid,
                        item_id=item,
                        suggestion_id=item,
                        suggestion_kind="article" if article else "template",
                        rank=rank,
                        score=round(rng.uniform(0.2, 0.9), 3),
                        intent=intent,
                        ts=at(turn * 40),
                        latency_ms=round(latency, 2),
                        item_version="2025-01-01",
                        article_id=article,
                        **common,
                    )
                )
            roll = rng.random()
            pick = shown[0] if rng.random() < 0.6 else rng.choice(shown)
            kind = "article" if "#" in pick else "template"
            reply = rng.choice(_REPLIES)
            answer: dict[str, Any] = {
                "turn_id": tid,
                "item_id": pick,
                "suggestion_id": pick,
                "suggestion_kind": kind,
                "intent": intent,
                "shown_text": reply,
                "ts": at(turn * 40 + 12),
                "latency_ms": round(rng.uniform(2000, 20000), 1),
                **common,
            }
            if roll < 0.40:
                out.append(FeedbackAction(kind=FeedbackKind.ACCEPT, sent_text=reply, **answer))
            elif roll < 0.55:
                edited = rng.choice(_EDITS)
                out.append(FeedbackAction(kind=FeedbackKind.EDIT, sent_text=edited, **answer))
            elif roll < 0.70:
                out.append(
                    FeedbackAction(kind=FeedbackKind.DISCARD, reason=rng.choice(_REASONS), **answer)
                )
        if rng.random() < 0.3:
            flag = rng.choice(_FLAGS) if rng.random() < 0.7 else None
            rule = None if flag else rng.choice(_RULES)
            out.append(
                FeedbackAction(
                    kind=FeedbackKind.FLAG_SHOWN, flag_kind=flag, flag_rule=rule, ts=at(5), **common
                )
            )
            if rng.random() < 0.15:
                out.append(
                    FeedbackAction(
                        kind=FeedbackKind.FLAG_WRONG,
                        flag_kind=flag,
                        flag_rule=rule,
                        ts=at(9),
                        **common,
                    )
                )
        if rng.random() < 0.1:
            passage = rng.choice(passages[intent])
            helpful = rng.random() < 0.7
            out.append(
                FeedbackAction(
                    kind=FeedbackKind.ARTICLE_HELPFUL
                    if helpful
                    else FeedbackKind.ARTICLE_NOT_HELPFUL,
                    item_id=passage,
                    article_id=passage.split("#")[0],
                    intent=intent,
                    ts=at(30),
                    **common,
                )
            )
        if rng.random() < 0.03:
            out.append(
                FeedbackAction(
                    kind=FeedbackKind.INTENT_CORRECTED,
                    intent=intent,
                    corrected_intent=rng.choice(intents),
                    ts=at(20),
                    **common,
                )
            )
        if rng.random() < 0.05:
            out.append(
                FeedbackAction(
                    kind=FeedbackKind.RETRIEVAL_MISS,
                    query=rng.choice(_MISSES),
                    ts=at(3),
                    **common,
                )
            )
        yield from out[: n - produced]
        produced += min(len(out), n - produced)


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def _bench(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from copilot.services.feedback_store import FeedbackStore

    results: dict[str, Any] = {}
    end = dt.datetime.now(dt.UTC)

    with FeedbackStore(root / "single.sqlite3") as store:
        singles = list(synthetic_actions(args.single, seed=args.seed + 1, end=end))
        started = time.perf_counter()
        for action in singles:
            store.record(action)
        elapsed = time.perf_counter() - started
        results["single_commit"] = {
            "actions": len(singles),
            "actions_per_s": round(len(singles) / elapsed, 1),
            "ms_per_action": round(elapsed / len(singles) * 1000, 3),
        }

    with FeedbackStore(root / "batched.sqlite3") as store:
        batched = list(synthetic_actions(args.batched, seed=args.seed + 2, end=end))
        started = time.perf_counter()
        for i in range(0, len(batched), 1000):
            store.record_many(batched[i : i + 1000])
        elapsed = time.perf_counter() - started
        results["batched_1000"] = {
            "actions": len(batched),
            "actions_per_s": round(len(batched) / elapsed, 1),
        }

    path = root / "million.sqlite3"
    with FeedbackStore(path) as store:
        generate, actions = _timed(
            lambda: list(synthetic_actions(args.actions, seed=args.seed, end=end))
        )
        elapsed, added = _timed(store.import_actions, actions)
        del actions
        results["bulk_load"] = {
            "actions": added,
            "seconds": round(elapsed, 2),
            "actions_per_s": round(added / elapsed, 1),
            "generate_seconds": round(generate, 2),
        }

    opened, store = _timed(FeedbackStore, path)
    with store:
        counts = store.counts()
        summary_rows = store.db.conn.execute("SELECT COUNT(*) FROM counts_daily").fetchone()[0]
        report_times = []
        report: dict[str, Any] = {}
        for _ in range(5):
            elapsed, report = _timed(store.report)
            report_times.append(elapsed)
        since = (end - dt.timedelta(days=30)).date().isoformat()
        intent = report["by_intent"][0]["intent"] if report["by_intent"] else None
        variants = {
            "last_30_days": {"since": since},
            # Every day through the daily counts (the slowest form: a period covering it all).
            "last_365_days": {"since": (end - dt.timedelta(days=365)).date().isoformat()},
            "one_intent": {"intent": intent},
            "templates_only": {"kind": "template"},
            "one_intent_last_30_days": {"since": since, "intent": intent},
            # A queue's report reads its own range of the per-queue daily counts.
            "one_queue": {"queue": "billing"},
            "one_queue_last_30_days": {"since": since, "queue": "billing"},
            "one_queue_last_365_days": {
                "since": (end - dt.timedelta(days=365)).date().isoformat(),
                "queue": "billing",
            },
            "offline_only": {"source": "offline"},
            "one_queue_offline_one_intent": {
                "queue": "billing",
                "source": "offline",
                "intent": intent,
            },
        }
        variant_times = {}
        for name, kwargs in variants.items():
            times = [_timed(store.report, **kwargs)[0] for _ in range(3)]
            variant_times[name] = round(statistics.median(times) * 1000, 1)
        gaps_s, gaps = _timed(store.gaps)
        harvest_s, harvest = _timed(store.harvest)
        prior_s, _ = _timed(
            lambda: [store.prior(f"area{i}.template_0", "intent_00") for i in range(10000)]
        )
    size = sum(p.stat().st_size for p in root.glob("million.sqlite3*"))
    results["report"] = {
        "stored_actions": counts["actions"],
        "conversations": counts["conversations"],
        "daily_summary_rows": summary_rows,
        "database_mb": round(size / 1e6, 1),
        "open_store_ms": round(opened * 1000, 1),
        "report_all_time_ms": {
            "median": round(statistics.median(report_times) * 1000, 1),
            "max": round(max(report_times) * 1000, 1),
        },
        "report_variants_median_ms": variant_times,
        "gaps_ms": round(gaps_s * 1000, 1),
        "gap_groups": len(gaps),
        "harvest_ms": round(harvest_s * 1000, 1),
        "harvest_groups": len(harvest),
        "prior_lookup_us": round(prior_s / 10000 * 1e6, 2),
        "acceptance_rate": report["totals"]["acceptance_rate"],
        "suggestion_latency_ms": report["suggestion_latency_ms"],
    }
    worst = max(results["report"]["report_all_time_ms"]["max"], *variant_times.values())
    results["report_within_1s"] = worst <= 1000.0
    return results


def run(args: argparse.Namespace) -> int:
    import platform

    from copilot.cli import UserError

    if args.actions < 1 or args.single < 1 or args.batched < 1:
        raise UserError("--actions, --single and --batched must be at least 1")
    if args.dir:
        root = Path(args.dir)
        root.mkdir(parents=True, exist_ok=True)
        for old in root.glob("*.sqlite3*"):
            old.unlink()
        results = _bench(root, args)
    else:
        with tempfile.TemporaryDirectory(prefix="copilot-bench-feedback-") as tmp:
            results = _bench(Path(tmp), args)
    results["machine"] = (
        f"{platform.machine()} {platform.system()} python {platform.python_version()}"
    )
    if args.json:
        _common.print_json(results)
        return 0
    single, batched, bulk, rep = (
        results["single_commit"],
        results["batched_1000"],
        results["bulk_load"],
        results["report"],
    )
    print(f"machine: {results['machine']}")
    print(
        f"one commit per action: {single['actions_per_s']:.0f} actions/s"
        f" ({single['ms_per_action']} ms each, fsynced)"
    )
    print(f"batches of 1,000:      {batched['actions_per_s']:.0f} actions/s")
    print(
        f"bulk load:             {bulk['actions_per_s']:.0f} actions/s"
        f" ({bulk['actions']:,} in {bulk['seconds']} s)"
    )
    print(
        f"report over {rep['stored_actions']:,} actions ({rep['database_mb']} MB):"
        f" median {rep['report_all_time_ms']['median']} ms,"
        f" max {rep['report_all_time_ms']['max']} ms"
    )
    for name, ms in rep["report_variants_median_ms"].items():
        print(f"  {name}: {ms} ms")
    print(
        f"open store (priors) {rep['open_store_ms']} ms; gaps {rep['gaps_ms']} ms;"
        f" harvest {rep['harvest_ms']} ms; prior lookup {rep['prior_lookup_us']} µs"
    )
    print(f"report within 1 s: {'yes' if results['report_within_1s'] else 'NO'}")
    return 0
