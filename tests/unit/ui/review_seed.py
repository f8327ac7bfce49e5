"""A small feedback store for the review and knowledge windows' tests (and their screenshots)."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.services.feedback_store import FeedbackStore

# Recent days: the app purges conversations older than its retention period on start.
FIRST_DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=8)
DAYS = 5
BILLING = "billing_double_charge"
DELIVERY = "delivery_where"
#: Conversations 0-2 of each day come from the billing queue, 3-5 from the general one.
QUEUES = ("billing", "general")
#: The article suggestion (conversation 3 of each day) was written by the language model.
GENERATED_ITEM = "KB-BIL-001#2"
HTML_REPLY = "Sorry <b>Sam</b>, <img src=x onerror=alert(1)> we refunded it & more."
HARVEST_EDITS = (
    "So sorry about the double charge Sarah, I've asked billing to refund the extra payment.",
    "So sorry about the double charge Sarah, I've asked billing to refund the extra payment now.",
    "Really sorry about the double charge, Sarah. I've asked billing to refund the extra payment.",
)
SHOWN = "Let me look into those payments for you and check what happened."


def _at(day: int, seconds: int) -> dt.datetime:
    start = dt.datetime.combine(FIRST_DAY, dt.time(9, 0), tzinfo=dt.UTC)
    return start + dt.timedelta(days=day, seconds=seconds)


def seed_feedback(path: Path) -> Path:
    """Fill a feedback store at `path` with five days of actions; returns `path`.

    Billing suggestions are mostly accepted; delivery ones mostly discarded, so filtering by
    intent changes the figures. Day 0 also has an edit whose text contains HTML. The billing
    queue has only offline billing templates; the general queue has an AI-generated article
    suggestion (always accepted) and the delivery templates (always discarded).
    """
    counter = itertools.count()
    actions: list[FeedbackAction] = []
    with FeedbackStore(path) as store:
        for day in range(DAYS):
            for n in range(6):
                intent = BILLING if n < 4 else DELIVERY
                item = "billing.double_charge_check" if intent == BILLING else "delivery.where"
                if n == 3:
                    item = "KB-BIL-001#2"
                conversation = f"d{day}-c{n}"
                store.start_conversation(
                    conversation,
                    started=_at(day, n * 600).timestamp(),
                    agent_id=f"agent{n % 3}",
                    customer_name="Sam Lee",
                    queue=QUEUES[n // 3],
                )
                common: dict[str, Any] = {
                    "conversation_id": conversation,
                    "turn_id": "t1",
                    "item_id": item,
                    "suggestion_id": f"{conversation}-s",
                    "suggestion_kind": "article" if "#" in item else "template",
                    "intent": intent,
                    "agent_id": f"agent{n % 3}",
                }
                if "#" in item:
                    common["article_id"] = "KB-BIL-001"
                    common["generated"] = item == GENERATED_ITEM
                actions.append(
                    FeedbackAction(
                        kind=FeedbackKind.SUGGESTION_SHOWN,
                        ts=_at(day, n * 600),
                        latency_ms=8.0 + n + day,
                        action_id=f"a{next(counter)}",
                        **common,
                    )
                )
                when = _at(day, n * 600 + 30)
                if intent == DELIVERY:
                    actions.append(
                        FeedbackAction(
                            kind=FeedbackKind.DISCARD,
                            ts=when,
                            reason="outdated" if n == 4 else "wrong_topic",
                            shown_text="Your parcel left our depot today.",
                            action_id=f"a{next(counter)}",
                            **common,
                        )
                    )
                elif n == 2 and day == 0:
                    actions.append(
                        FeedbackAction(
                            kind=FeedbackKind.EDIT,
                            ts=when,
                            shown_text=SHOWN,
                            sent_text=HTML_REPLY,
                            action_id=f"a{next(counter)}",
                            **common,
                        )
                    )
                else:
                    actions.append(
                        FeedbackAction(
                            kind=FeedbackKind.ACCEPT,
                            ts=when,
                            shown_text=SHOWN,
                            sent_text=SHOWN,
                            action_id=f"a{next(counter)}",
                            **common,
                        )
                    )
                actions.append(
                    FeedbackAction(
                        kind=FeedbackKind.FLAG_SHOWN,
                        conversation_id=conversation,
                        flag_kind="legal_threat",
                        ts=when,
                        action_id=f"a{next(counter)}",
                    )
                )
                if n == 5:
                    actions.append(
                        FeedbackAction(
                            kind=FeedbackKind.FLAG_WRONG,
                            conversation_id=conversation,
                            flag_kind="legal_threat",
                            ts=when,
                            action_id=f"a{next(counter)}",
                        )
                    )
                    actions.append(
                        FeedbackAction(
                            kind=FeedbackKind.RETRIEVAL_MISS,
                            conversation_id=conversation,
                            query="Can I get my parcel delivered to a locker instead?",
                            ts=when,
                            action_id=f"a{next(counter)}",
                        )
                    )
        for n, text in enumerate(HARVEST_EDITS):
            conversation = f"h{n}"
            store.start_conversation(
                conversation,
                customer_name="Sarah Jones",
                agent_id=f"agent{n}",
                started=_at(4, n).timestamp(),
            )
            actions.append(
                FeedbackAction(
                    kind=FeedbackKind.EDIT,
                    conversation_id=conversation,
                    turn_id="t1",
                    item_id="billing.double_charge_card_refund",
                    suggestion_id=f"{conversation}-s",
                    suggestion_kind="template",
                    intent=BILLING,
                    shown_text="Let me look into those payments for you.",
                    sent_text=text,
                    agent_id=f"agent{n}",
                    ts=_at(4, 3600 + n * 60),
                    action_id=f"h{n}",
                )
            )
        store.record_many(actions)
    return path
