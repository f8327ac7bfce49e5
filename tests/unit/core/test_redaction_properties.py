"""Property tests: a card number in any form, anywhere in a sentence, never survives redaction.

Cards are 13-19 digits, Luhn-valid or not, rendered typed with random groupings and separators,
spoken (with "oh", "double", "triple"), mixed, or split over two customer turns. The property:
no 4 consecutive digits of the card's first 12 remain visible outside placeholders (the last
four are shown on purpose).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot.core.conversation import Conversation, parse_turn_event
from copilot.core.redaction import luhn_valid, redact

WORDS_FOR_DIGITS = {
    "0": ("zero", "oh", "o", "nought"),
    "1": ("one",),
    "2": ("two",),
    "3": ("three",),
    "4": ("four",),
    "5": ("five",),
    "6": ("six",),
    "7": ("seven",),
    "8": ("eight",),
    "9": ("nine",),
}
DIGIT_OF_WORD = {w: d for d, words in WORDS_FOR_DIGITS.items() for w in words}
# Ordinary words around the number, including ones that touch the detectors ("card", "oh").
VOCABULARY = re.findall(
    r"\S+",
    "please my the card number is it's thanks and um so here you go ok right that was yes oh "
    "well sorry again long visa on front hang let me see got it",
)
# Other numbers that may sit right next to the card.
NUMBERS = ("", "on 12/05/2024", "for £38", "at 10:30", "ref CMP-123456", "2 weeks", "since 2015.")
SEPARATORS = (" ", "-", ".", " - ", "  ")
CONTEXTS = ("my card number is", "the long number on my visa is", "card:")

PLACEHOLDER = re.compile(r"\[[A-Z ]+(?: •••• \d{4})?\]")
TOKEN = re.compile(r"(?:double|triple)[ -]?\w+|\w+|\|", re.IGNORECASE)


def luhn_check_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return d
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, bool]:
    """(digits, luhn_valid): first digit 1-9 (no card starts with 0), 13-19 digits."""
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("123456789"))
    body = first + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    valid = draw(st.booleans())
    check = luhn_check_digit(body)
    if not valid:
        check = str((int(check) + draw(st.integers(1, 9))) % 10)
    return body + check, valid


sentences = st.lists(st.sampled_from(VOCABULARY), max_size=7, unique=True).map(" ".join)
# After the number, "oh" would read as one more zero of it (redacted or not, that is fine), and
# the check below could not tell that zero from the card's own: it only goes before.
# Before the first half of a split number, "the", "my", "that", "right" would make a lone "one"
# the pronoun of "the new one?", which is rightly kept; the rest of the vocabulary stays.
sentences_before_split = sentences.filter(
    lambda s: not s or s.split()[-1] not in {"the", "my", "that", "right"}
)
sentences_after = st.lists(
    st.sampled_from([w for w in VOCABULARY if w != "oh"]), max_size=7, unique=True
).map(" ".join)


def visible_runs(text: str) -> list[str]:
    """Digit strings still readable outside placeholders, typed or spoken, one per run."""
    runs: list[str] = []
    current = ""
    for token in TOKEN.findall(PLACEHOLDER.sub(" | ", text)):
        low = token.lower()
        m = re.fullmatch(r"(double|triple)[ -]?(\w+)", low)
        if m and (m.group(2) in DIGIT_OF_WORD or m.group(2).isdigit()):
            inner = DIGIT_OF_WORD.get(m.group(2), m.group(2))
            current += inner * (2 if m.group(1) == "double" else 3)
        elif low.isdigit():
            current += low
        elif low in DIGIT_OF_WORD:
            current += DIGIT_OF_WORD[low]
        else:
            if current:
                runs.append(current)
            current = ""
    if current:
        runs.append(current)
    return runs


def assert_first_twelve_hidden(card: str, *outputs: str, numbers: str = "") -> None:
    # Every 4 consecutive digits of the first 12. Digits after the 12th may stay visible, so a
    # 4-digit string that also occurs there proves nothing and is not checked.
    windows = {card[i : i + 4] for i in range(9)} - {
        card[i : i + 4] for i in range(9, len(card) - 3)
    }
    own = set(visible_runs(numbers))  # the other numbers' digits, when left intact, are theirs
    for output in outputs:
        for run in visible_runs(output):
            if run in own:
                continue
            leaked = [w for w in windows if w in run]
            assert not leaked, f"{leaked} of {card} visible in {output!r}"


# -- renderings ---------------------------------------------------------------------------------


@st.composite
def typed_groups(draw: st.DrawFn, digits: str, *, fours: bool) -> list[str]:
    groups: list[str] = []
    i = 0
    while i < len(digits):
        size = 4 if fours else draw(st.integers(1, 6))
        groups.append(digits[i : i + size])
        i += size
    return groups


@st.composite
def spoken_groups(draw: st.DrawFn, digits: str) -> list[str]:
    """One group per spoken digit, or per "double X" / "triple X"."""
    groups: list[str] = []
    i = 0
    while i < len(digits):
        d = digits[i]
        same = 1
        while i + same < len(digits) and digits[i + same] == d and same < 3:
            same += 1
        word = draw(st.sampled_from(WORDS_FOR_DIGITS[d]))
        if same >= 2 and draw(st.booleans()):
            take = draw(st.integers(2, same))
            groups.append(f"{'double' if take == 2 else 'triple'} {word}")
            i += take
        else:
            groups.append(word)
            i += 1
    return groups


@st.composite
def mixed_groups(draw: st.DrawFn, digits: str) -> list[str]:
    groups: list[str] = []
    for i in range(0, len(digits), 4):
        chunk = digits[i : i + 4]
        if draw(st.booleans()):
            groups.append(chunk)
        else:
            groups.extend(draw(spoken_groups(chunk)))
    return groups


def join(draw: st.DrawFn, groups: list[str], *, spoken: bool) -> str:
    out = groups[0]
    for group in groups[1:]:
        sep = draw(st.sampled_from((" ", ", ", " - ") if spoken else SEPARATORS))
        out += sep + group
    return out


@st.composite
def rendered(draw: st.DrawFn, digits: str, valid: bool) -> tuple[str, bool]:
    """A rendering and whether it needs card words nearby to count as a card.

    A Luhn-failing number only counts as a card when it looks like one (blocks of four, one
    block, spoken) or card words are near; a valid one counts in any grouping.
    """
    form = draw(st.sampled_from(("fours", "block", "random", "spoken", "mixed")))
    if form == "fours":
        return join(draw, draw(typed_groups(digits, fours=True)), spoken=False), False
    if form == "block":
        return digits, False
    if form == "random":
        return join(draw, draw(typed_groups(digits, fours=False)), spoken=False), not valid
    if form == "spoken":
        return join(draw, draw(spoken_groups(digits)), spoken=True), False
    return join(draw, draw(mixed_groups(digits)), spoken=True), False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), card=card_numbers(), before=sentences, after=sentences_after)
def test_a_card_in_one_turn_never_survives(
    data: st.DataObject, card: tuple[str, bool], before: str, after: str
) -> None:
    digits, valid = card
    text, needs_context = data.draw(rendered(digits, valid))
    numbers = data.draw(st.sampled_from(NUMBERS))
    if data.draw(st.booleans()):
        before = f"{before} {numbers}"
    else:
        after = f"{numbers} {after}"
    if needs_context:
        before = f"{before} {data.draw(st.sampled_from(CONTEXTS))}"
    turn = f"{before} {text}{data.draw(st.sampled_from(('', '.', ',', '?')))} {after}".strip()
    result = redact(turn)
    assert_first_twelve_hidden(digits, result.text, numbers=numbers)
    assert "CARD" in {s.type.value for s in result.spans}


def _event(turn_id: str, text: str) -> object:
    return parse_turn_event(
        {"conversation_id": "c", "turn_id": turn_id, "role": "customer", "text": text}
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), card=card_numbers(), before=sentences_before_split, after=sentences_after)
def test_a_card_split_over_two_customer_turns_never_survives(
    data: st.DataObject, card: tuple[str, bool], before: str, after: str
) -> None:
    digits, valid = card
    form = data.draw(st.sampled_from(("fours", "random", "spoken", "mixed")))
    if form in ("fours", "random"):
        groups = data.draw(typed_groups(digits, fours=form == "fours"))
    elif form == "spoken":
        groups = data.draw(spoken_groups(digits))
    else:
        groups = data.draw(mixed_groups(digits))
    if len(groups) < 2:
        groups = [digits[:4], digits[4:]]
    cut = data.draw(st.integers(1, len(groups) - 1))
    spoken = form in ("spoken", "mixed")
    first_part = join(data.draw, groups[:cut], spoken=spoken)
    second_part = join(data.draw, groups[cut:], spoken=spoken)
    numbers = data.draw(st.sampled_from(NUMBERS))
    before = f"{numbers} {before}"
    after = f"{after} {numbers}"
    if form == "random" and not valid:
        before = f"{before} {data.draw(st.sampled_from(CONTEXTS))}"
    conversation = Conversation()
    conversation = conversation.apply(_event("t1", f"{before} {first_part}".strip()))  # type: ignore[arg-type]
    conversation = conversation.apply(_event("t2", f"{second_part} {after}".strip()))  # type: ignore[arg-type]
    assert_first_twelve_hidden(digits, *(t.text for t in conversation.turns), numbers=numbers)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_redaction_of_any_text_is_consistent(text: str) -> None:
    result = redact(text)
    # spans are ordered, disjoint, inside the text, and rebuild the output exactly
    rebuilt, pos = "", 0
    for span in result.spans:
        assert pos <= span.start < span.end <= len(text)
        rebuilt += text[pos : span.start] + span.placeholder
        pos = span.end
    assert rebuilt + text[pos:] == result.text
    assert redact(result.text).text == result.text
