"""vCon (IETF draft-ietf-vcon-vcon-core) import and redacted export of conversations.

A vCon is a JSON container for one conversation: ``parties`` (who took part), ``dialog`` (what was
said: recordings, text messages, transfers), ``analysis`` (what tools derived from it) and
``attachments``. Only the unsigned form is read; a signed (JWS) or encrypted (JWE) vCon must be
verified or decrypted by the tool that holds the keys first.

Import (`parse_vcon`, `import_vcon`): every ``text`` dialog becomes a turn, in order of its
``start`` time. Recordings, transfers, incomplete calls and externally referenced (``url``) text
are reported as skipped, never fetched: the co-pilot is offline. The conversation id is the vCon's
``uuid``; a turn id is the dialog's ``message_id`` when it has a unique one, else ``d<index>``.
Turns are redacted on arrival like any other source (`Conversation.apply`).

Each party gets a role, the first rule that decides winning:

1. its ``role`` field, or ``meta.role``, or the core draft's participant ``type`` (``agent``,
   ``customer``, and synonyms such as ``caller``, ``representative``, ``ivr``, ``bot``);
2. a name that says so ("Support", "Agent", "IVR", "Bot", "Assistant");
3. its first text message greets like an agent ("thanks for calling", "how can I help", "you're
   speaking to ...");
4. with exactly one customer or one agent known among two parties, the other is the other role;
5. otherwise party 0 is the customer (vCon producers list the caller or chat initiator first) and
   every other party an agent.

`ImportedVcon.parties` says which rule decided each role, so a wrong guess can be seen and fixed
at the source (by adding ``role`` to the parties).

Export (`export_vcon`): a conversation (its turns are already redacted) and its latest snapshot
become a new, unsigned vCon with one text dialog per final turn and the co-pilot's summary, flags,
sentiment, intent and policy findings as ``analysis`` entries of vendor ``agent-copilot``
(``encoding: json``). Every string written is passed through `outgoing_text` once more, so even a
secret typed in a way the arrival redaction missed is not exported in clear. Party names,
addresses and numbers are never exported: the parties carry roles only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html
import json
import re
import secrets
import uuid as uuid_module
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from copilot import __version__
from copilot.core.conversation import (
    Conversation,
    Role,
    Turn,
    TurnEventError,
    parse_turn_event,
)
from copilot.core.feedback import outgoing_text
from copilot.core.pipeline import Snapshot

__all__ = [
    "MAX_VCON_BYTES",
    "VCON_VERSION",
    "VENDOR",
    "ImportedVcon",
    "PartyRole",
    "SkippedDialog",
    "VconError",
    "dumps",
    "export_vcon",
    "import_vcon",
    "iter_texts",
    "load_vcon",
    "looks_like_vcon",
    "new_vcon_uuid",
    "parse_vcon",
]

#: The ``vcon`` syntax version written (deprecated in later drafts, still read by tools).
VCON_VERSION = "0.4.0"
#: The ``vendor`` of every analysis entry this co-pilot writes.
VENDOR = "agent-copilot"
#: A larger file is refused unread: inline recordings do not belong in a text co-pilot's input.
MAX_VCON_BYTES = 64 * 1024 * 1024


class VconError(ValueError):
    """A vCon that cannot be imported; ``str()`` reads "path: reason" (``dialog[3].start: ...``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SkippedDialog:
    """A dialog entry that is not imported, and why (a recording, an external URL, ...)."""

    index: int
    reason: str

    @property
    def path(self) -> str:
        return f"dialog[{self.index}]"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PartyRole:
    """The role given to ``parties[index]`` and the rule that decided it."""

    index: int
    role: Role
    decided_by: str  # "role field", "name", "greeting", "the other party", "position"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "role": self.role.value, "decided_by": self.decided_by}


@dataclass(frozen=True, slots=True)
class ImportedVcon:
    """What `parse_vcon` read: the turns (NOT yet redacted) and what was left out.

    Attributes:
        uuid: the vCon's uuid, used as the conversation id.
        subject: the vCon's subject, "" when absent.
        events: one turn per imported text dialog, in ``start`` order. Their text is as
            received: apply them to a `Conversation` (which redacts) before keeping anything.
        parties: the role of every party and how it was decided.
        skipped: dialogs not imported, with the reason.
    """

    uuid: str
    subject: str
    events: tuple[Turn, ...]
    parties: tuple[PartyRole, ...]
    skipped: tuple[SkippedDialog, ...]

    def conversation(self) -> Conversation:
        """The imported turns applied in order: a redacted `Conversation`."""
        conversation = Conversation()
        for event in self.events:
            conversation = conversation.apply(event)
        return conversation

    def report(self) -> dict[str, Any]:
        """A JSON-ready account of the import (no message text)."""
        return {
            "uuid": self.uuid,
            "turns": len(self.events),
            "parties": [p.to_dict() for p in self.parties],
            "skipped": [s.to_dict() for s in self.skipped],
        }


# --- reading ------------------------------------------------------------------------------------


def load_vcon(path: Path) -> Any:
    """Read and decode a vCon file (any JSON value; `parse_vcon` checks the shape).

    Raises:
        VconError: the file is too large, not UTF-8 or not JSON (with line and column).
        OSError: the file cannot be read.
    """
    size = path.stat().st_size
    if size > MAX_VCON_BYTES:
        raise VconError("$", f"the file is {size} bytes; at most {MAX_VCON_BYTES} are read")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VconError("$", f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise VconError(
            "$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise VconError("$", f"not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def looks_like_vcon(obj: Any) -> bool:
    """True for a JSON object shaped like a vCon (rather than a turn event)."""
    return isinstance(obj, Mapping) and (
        "vcon" in obj or "dialog" in obj or ("uuid" in obj and "parties" in obj)
    )


def import_vcon(obj: Any) -> tuple[Conversation, ImportedVcon]:
    """Import a decoded vCon as a redacted `Conversation`.

    Returns:
        ``(conversation, imported)``: the conversation holds only redacted text; `imported`
        reports the party roles and the skipped dialogs.

    Raises:
        VconError: the vCon is malformed, naming the JSON path of the first problem.
    """
    imported = parse_vcon(obj)
    return imported.conversation(), imported


def parse_vcon(obj: Any) -> ImportedVcon:
    """Validate a decoded vCon and return its text dialogs as turns (not yet redacted).

    Raises:
        VconError: the vCon is malformed, naming the JSON path of the first problem, e.g.
            ``dialog[2].parties: party 5 does not exist (2 parties)``.
    """
    if not isinstance(obj, Mapping):
        raise VconError("$", "a vCon must be a JSON object")
    if "ciphertext" in obj:
        raise VconError("$", "an encrypted vCon: decrypt it to the unsigned form first")
    if "payload" in obj and "signatures" in obj:
        raise VconError("$", "a signed vCon: verify it and extract the unsigned form first")
    version = obj.get("vcon")
    if version is not None and not isinstance(version, str):
        raise VconError("vcon", "must be a version string")
    vcon_uuid = obj.get("uuid")
    if not isinstance(vcon_uuid, str) or not vcon_uuid.strip():
        raise VconError("uuid", "is required (a string)")
    subject = obj.get("subject", "")
    if not isinstance(subject, str):
        raise VconError("subject", "must be a string")
    parties = _list(obj, "parties")
    for i, party in enumerate(parties):
        if not isinstance(party, Mapping):
            raise VconError(f"parties[{i}]", "must be an object")
    dialogs = _list(obj, "dialog")

    texts: list[_TextDialog] = []
    skipped: list[SkippedDialog] = []
    for i, dialog in enumerate(dialogs):
        parsed = _dialog(i, dialog, len(parties))
        if isinstance(parsed, SkippedDialog):
            skipped.append(parsed)
        else:
            texts.append(parsed)
    if not parties and texts:
        raise VconError("parties", "a vCon with text dialogs must list its parties")
    roles = _assign_roles(parties, texts)
    texts.sort(key=lambda t: (t.start, t.index))  # stable: same-second messages keep their order

    message_ids = [t.message_id for t in texts if t.message_id]
    unique_ids = {m for m in message_ids if message_ids.count(m) == 1}
    events: list[Turn] = []
    for t in texts:
        turn_id = t.message_id if t.message_id in unique_ids else f"d{t.index}"
        try:
            events.append(
                parse_turn_event(
                    {
                        "conversation_id": vcon_uuid.strip(),
                        "turn_id": turn_id,
                        "role": roles[t.sender].role.value,
                        "text": t.text,
                        "ts": t.start.isoformat(),
                    }
                )
            )
        except TurnEventError as exc:
            if exc.field == "conversation_id":
                raise VconError("uuid", exc.reason) from None
            field = {"text": "body", "turn_id": "message_id"}.get(exc.field, exc.field)
            raise VconError(f"dialog[{t.index}].{field}", exc.reason) from None
    return ImportedVcon(
        uuid=vcon_uuid.strip(),
        subject=subject,
        events=tuple(events),
        parties=tuple(roles),
        skipped=tuple(skipped),
    )


def _list(obj: Mapping[str, Any], name: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise VconError(name, "must be an array")
    return value


@dataclass(frozen=True, slots=True)
class _TextDialog:
    index: int
    start: dt.datetime
    sender: int
    text: str
    message_id: str | None


_TEXT_MEDIA = re.compile(r"^text/(plain|markdown|html)$")
_HTML_TAG = re.compile(r"<[^<>]{0,500}>")


def _dialog(index: int, dialog: Any, n_parties: int) -> _TextDialog | SkippedDialog:
    path = f"dialog[{index}]"
    if not isinstance(dialog, Mapping):
        raise VconError(path, "must be an object")
    kind = dialog.get("type")
    if not isinstance(kind, str) or not kind:
        raise VconError(f"{path}.type", "is required (text, recording, transfer, incomplete)")
    start = _start(path, dialog.get("start"))
    if kind != "text":
        return SkippedDialog(index, f"a {kind} dialog; only text dialogs are imported")
    media = dialog.get("mediatype", dialog.get("mimetype"))  # "mimetype" in drafts before core
    if media is not None and not isinstance(media, str):
        raise VconError(f"{path}.mediatype", "must be a string")
    media_type = (media or "text/plain").split(";")[0].strip().lower()
    if not _TEXT_MEDIA.match(media_type):
        return SkippedDialog(index, f"media type {media_type} is not text")
    body = dialog.get("body")
    if body is None:
        if dialog.get("url") is not None:
            return SkippedDialog(index, "its content is at an external URL, which is not fetched")
        raise VconError(f"{path}.body", "is required for a text dialog")
    text = _decode_body(path, body, dialog.get("encoding"))
    if media_type == "text/html":
        text = html.unescape(_HTML_TAG.sub(" ", text))
    if not text.strip():
        return SkippedDialog(index, "empty text")
    sender = _sender(path, dialog, n_parties)
    message_id = dialog.get("message_id")
    if message_id is not None and (not isinstance(message_id, str) or not message_id.strip()):
        message_id = None
    return _TextDialog(index, start, sender, text.strip(), message_id and message_id.strip())


def _start(path: str, value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise VconError(f"{path}.start", "is required (an RFC 3339 date-time string)")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise VconError(f"{path}.start", f"{value[:40]!r} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _decode_body(path: str, body: Any, encoding: Any) -> str:
    if encoding is None or encoding == "none":
        if not isinstance(body, str):
            raise VconError(f"{path}.body", "must be a string (encoding none)")
        return body
    if encoding == "base64url":
        if not isinstance(body, str):
            raise VconError(f"{path}.body", "must be a base64url string")
        try:
            padded = body.strip() + "=" * (-len(body.strip()) % 4)
            raw = base64.b64decode(padded, altchars=b"-_", validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise VconError(f"{path}.body", "is not base64url-encoded UTF-8 text") from None
    if encoding == "json":
        if isinstance(body, str):
            return body
        raise VconError(f"{path}.body", "a text dialog's JSON body must be a string")
    raise VconError(f"{path}.encoding", "must be none, base64url or json")


def _sender(path: str, dialog: Mapping[str, Any], n_parties: int) -> int:
    originator = dialog.get("originator")
    if originator is not None:
        if not _is_index(originator):
            raise VconError(f"{path}.originator", "must be a party index")
        where, sender = f"{path}.originator", int(originator)
    else:
        parties = dialog.get("parties")
        if _is_index(parties):
            where, sender = f"{path}.parties", int(parties)
        elif isinstance(parties, list):
            # The first party listed sent the message; entries may be lists or null (legs).
            first = next((p for p in parties if _is_index(p)), None)
            if first is None:
                raise VconError(f"{path}.parties", "names no party index")
            where, sender = f"{path}.parties", int(first)
        else:
            raise VconError(f"{path}.parties", "is required: the index of the sender")
    if sender >= n_parties:
        raise VconError(where, f"party {sender} does not exist ({n_parties} parties)")
    return sender


def _is_index(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- party roles --------------------------------------------------------------------------------

_ROLE_WORDS: Mapping[str, Role] = {
    **dict.fromkeys(
        ("customer", "caller", "client", "consumer", "contact", "end-user", "enduser", "user"),
        Role.CUSTOMER,
    ),
    **dict.fromkeys(
        (
            "agent",
            "representative",
            "rep",
            "advisor",
            "adviser",
            "operator",
            "employee",
            "staff",
            "supervisor",
            "team-leader",
            "sme",
            "expert",
            "callee",
        ),
        Role.AGENT,
    ),
    **dict.fromkeys(
        ("system", "bot", "ivr", "virtual-agent", "assistant", "automated", "notification"),
        Role.SYSTEM,
    ),
}
_NAME_HINTS = (
    (re.compile(r"\b(ivr|bot|virtual assistant|automated|system)\b", re.I), Role.SYSTEM),
    (
        re.compile(r"\b(agent|support|advis[eo]r|customer service|helpdesk|team)\b", re.I),
        Role.AGENT,
    ),
)
_AGENT_GREETING = re.compile(
    r"\b(thanks? (you )?for (calling|contacting|getting in touch|waiting)"
    r"|how (can|may) i help|what can i do for you|you'?re (speaking|talking|chatting) (to|with)"
    r"|my name is \w+,? (and )?i'?m|welcome to)\b",
    re.I,
)


def _role_word(value: Any) -> Role | None:
    if not isinstance(value, str):
        return None
    return _ROLE_WORDS.get(value.strip().lower().replace("_", "-").replace(" ", "-"))


def _assign_roles(
    parties: Sequence[Mapping[str, Any]], texts: Sequence[_TextDialog]
) -> list[PartyRole]:
    decided: dict[int, PartyRole] = {}
    for i, party in enumerate(parties):
        meta = party.get("meta")
        for value in (
            party.get("role"),
            meta.get("role") if isinstance(meta, Mapping) else None,
            party.get("type"),
        ):
            role = _role_word(value)
            if role is not None:
                decided[i] = PartyRole(i, role, "role field")
                break
    for i, party in enumerate(parties):
        if i in decided:
            continue
        name = party.get("name")
        if isinstance(name, str):
            for pattern, role in _NAME_HINTS:
                if pattern.search(name):
                    decided[i] = PartyRole(i, role, "name")
                    break
    first_text: dict[int, str] = {}
    for t in sorted(texts, key=lambda t: (t.start, t.index)):
        first_text.setdefault(t.sender, t.text)
    for i in range(len(parties)):
        if i not in decided and _AGENT_GREETING.search(first_text.get(i, "")[:300]):
            decided[i] = PartyRole(i, Role.AGENT, "greeting")
    undecided = [i for i in range(len(parties)) if i not in decided]
    if len(parties) == 2 and len(undecided) == 1:
        other = decided[1 - undecided[0]].role
        complement = {Role.AGENT: Role.CUSTOMER, Role.CUSTOMER: Role.AGENT}.get(other)
        if complement is not None:
            decided[undecided[0]] = PartyRole(undecided[0], complement, "the other party")
            undecided = []
    has_customer = any(p.role is Role.CUSTOMER for p in decided.values())
    for i in undecided:
        role = Role.AGENT if has_customer or i != undecided[0] else Role.CUSTOMER
        has_customer = has_customer or role is Role.CUSTOMER
        decided[i] = PartyRole(i, role, "position")
    return [decided[i] for i in range(len(parties))]


# --- writing ------------------------------------------------------------------------------------


def new_vcon_uuid() -> str:
    """A version 8 UUID (as the draft recommends): 48 bits of Unix milliseconds, then random."""
    millis = int(dt.datetime.now(dt.UTC).timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    value &= ~(0xF << 76)
    value |= 0x8 << 76  # version 8
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuid_module.UUID(int=value))


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(value: Any) -> Any:
    """Every string in a JSON-ready value redacted once more (placeholders kept)."""
    if isinstance(value, str):
        return outgoing_text(value) if value.strip() else value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


_PARTY_ORDER = (Role.CUSTOMER, Role.AGENT, Role.SYSTEM)


def export_vcon(
    conversation: Conversation,
    snapshot: Snapshot | None,
    *,
    vcon_uuid: str | None = None,
    created_at: dt.datetime | None = None,
    redacted_from: str | None = None,
) -> dict[str, Any]:
    """A redacted vCon of `conversation` with `snapshot`'s analysis (a JSON-ready dict).

    Args:
        conversation: the conversation (its turns are redacted on arrival).
        snapshot: its latest snapshot; None exports the dialog without analysis.
        vcon_uuid: the new vCon's uuid (default: a fresh version 8 UUID).
        created_at: the creation time written (default: now).
        redacted_from: the uuid of the vCon this one was imported from, recorded in
            ``redacted`` so that a reader knows this is its redacted instance.

    Returns:
        The vCon object; ``json.dumps`` it. Only final turns are exported.
    """
    roles_present = {t.role for t in conversation.turns}
    # Customer and agent are always listed, so that every dialog can name its counterpart.
    roles = [r for r in _PARTY_ORDER if r is not Role.SYSTEM or r in roles_present]
    party_index = {role: i for i, role in enumerate(roles)}
    parties = [{"role": role.value} for role in roles]
    dialogs: list[dict[str, Any]] = []
    for turn in conversation.turns:
        sender = party_index[turn.role]
        others = [party_index[r] for r in roles if r is not turn.role and r is not Role.SYSTEM]
        dialogs.append(
            {
                "type": "text",
                "start": _iso(turn.ts),
                "parties": [sender, *others],
                "originator": sender,
                "mediatype": "text/plain",
                "encoding": "none",
                "body": _clean(turn.text),
                "message_id": turn.turn_id,
            }
        )
    vcon: dict[str, Any] = {
        "vcon": VCON_VERSION,
        "uuid": vcon_uuid or new_vcon_uuid(),
        "created_at": _iso(created_at or dt.datetime.now(dt.UTC)),
    }
    summary = snapshot.summary if snapshot is not None else None
    if summary is not None and summary.issue:
        vcon["subject"] = _clean(summary.issue[:200])
    if redacted_from:
        vcon["redacted"] = {"uuid": redacted_from, "type": "pii"}
    vcon["parties"] = parties
    vcon["dialog"] = dialogs
    vcon["analysis"] = _analysis(conversation, snapshot, len(dialogs)) if snapshot else []
    vcon["attachments"] = []
    return vcon


def _analysis(conversation: Conversation, snapshot: Snapshot, n_dialogs: int) -> list[Any]:
    indices = list(range(n_dialogs))
    data = snapshot.to_dict()
    entries: list[tuple[str, Any]] = []
    if snapshot.summary is not None:
        entries.append(("summary", {"text": snapshot.summary.as_text(), **data["summary"]}))
    entries.append(("flags", {"flags": data["flags"]}))
    if data["sentiment"] is not None:
        entries.append(("sentiment", data["sentiment"]))
    if data["routing"] is not None:
        entries.append(("intent", data["routing"]))
    if data["policy"] is not None:
        entries.append(("policy", data["policy"]))
    meta = {
        "conversation_id": conversation.conversation_id,
        "turn_count": snapshot.turn_count,
        "last_turn_id": snapshot.last_turn_id,
        "analysed_at": snapshot.created.isoformat(),
    }
    return [
        {
            "type": kind,
            "dialog": indices,
            "vendor": VENDOR,
            "product": f"Agent Co-pilot {__version__}",
            "schema": f"{VENDOR}/{kind}/1",
            "mediatype": "application/json",
            "encoding": "json",
            "body": _clean({**body, "source": meta} if isinstance(body, Mapping) else body),
        }
        for kind, body in entries
    ]


def dumps(vcon: Mapping[str, Any]) -> str:
    """The vCon as indented UTF-8 JSON text, ending with a newline."""
    return json.dumps(vcon, ensure_ascii=False, indent=2) + "\n"


def iter_texts(vcon: Mapping[str, Any]) -> Iterable[str]:
    """Every string anywhere in a vCon (for checks that nothing secret is in it)."""
    stack: list[Any] = [vcon]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
