"""Comparing what two index generations show, turn by turn, for a demo conversation."""

from __future__ import annotations

from copilot.core.index_diff import IndexPreview, ShownItem, TurnOutput, diff_outputs


def article(key: str, passage: str = "Intro", text: str = "text") -> ShownItem:
    return ShownItem(key=key, label=f"{key} title", detail=f"{key} › {passage}", fingerprint=text)


def reply(key: str, cites: tuple[str, ...] = (), text: str = "reply") -> ShownItem:
    return ShownItem(key=key, label=key, detail=text, cites=cites, fingerprint=text)


def turn(
    turn_id: str,
    articles: tuple[ShownItem, ...] = (),
    suggestions: tuple[ShownItem, ...] = (),
) -> TurnOutput:
    return TurnOutput(
        turn_id=turn_id,
        position=int(turn_id[1:]),
        role="customer",
        text=f"words of {turn_id}",
        suggestions=suggestions,
        articles=articles,
    )


def test_identical_runs_have_no_changes() -> None:
    run = [turn("t1", (article("A"), article("B")), (reply("tpl.a", ("A › Intro",)),))]
    assert diff_outputs("demo", run, run) == []


def test_added_removed_and_reordered_articles_are_reported_with_their_turn() -> None:
    before = [turn("t1", (article("A"), article("B"), article("C")))]
    after = [turn("t1", (article("C"), article("A"), article("D")))]
    changes = {(c.key, c.change): c for c in diff_outputs("02-double-charge", before, after)}
    assert set(changes) == {("B", "removed"), ("D", "added"), ("C", "moved"), ("A", "moved")}
    removed = changes[("B", "removed")]
    assert (removed.demo, removed.turn_id, removed.position) == ("02-double-charge", "t1", 1)
    assert (removed.before_rank, removed.after_rank) == (2, None)
    assert removed.turn_text == "words of t1"
    assert (changes[("D", "added")].before_rank, changes[("D", "added")].after_rank) == (None, 3)
    assert changes[("C", "moved")].detail.startswith("rank 3 → 1")


def test_an_item_that_only_shifts_because_another_left_is_not_moved() -> None:
    before = [turn("t1", (article("A"), article("B"), article("C")))]
    after = [turn("t1", (article("B"), article("C")))]
    changes = diff_outputs("demo", before, after)
    assert [(c.key, c.change) for c in changes] == [("A", "removed")]


def test_a_new_matched_passage_or_passage_text_is_a_change() -> None:
    before = [turn("t1", (article("A", "Refunds"), article("B", text="old")))]
    after = [turn("t1", (article("A", "Fees"), article("B", text="new")))]
    changes = diff_outputs("demo", before, after)
    assert [(c.key, c.change) for c in changes] == [("A", "changed"), ("B", "changed")]
    assert "A › Refunds → A › Fees" in changes[0].detail
    assert "text of B › Intro changed" in changes[1].detail


def test_suggestion_citations_and_wording_changes_are_reported() -> None:
    before = [turn("t1", suggestions=(reply("tpl.a", ("A › Intro",)), reply("tpl.b")))]
    after = [turn("t1", suggestions=(reply("tpl.a", ("A › Fees",)), reply("tpl.b", text="new")))]
    changes = diff_outputs("demo", before, after)
    assert [(c.section, c.key, c.change) for c in changes] == [
        ("suggestion", "tpl.a", "changed"),
        ("suggestion", "tpl.b", "changed"),
    ]
    assert changes[0].detail == "cites A › Intro → A › Fees"
    assert changes[1].detail == "reply text changed"


def test_a_change_lasting_several_turns_is_reported_once_with_its_span() -> None:
    before = [turn(f"t{i}", (article("A"), article("B"))) for i in (1, 2, 3, 4)]
    after = [turn(f"t{i}", (article("A"),)) for i in (1, 2, 3)] + [
        turn("t4", (article("A"), article("B")))
    ]
    changes = diff_outputs("demo", before, after)
    assert len(changes) == 1
    assert changes[0].turns == "t1–t3"
    assert changes[0].to_dict()["through_turn_id"] == "t3"


def test_the_preview_summarises_its_changes() -> None:
    before = [turn("t1", (article("A"),))]
    after = [turn("t1", (article("B"),))]
    changes = tuple(diff_outputs("01-x", before, after))
    preview = IndexPreview("gen-000001", "gen-000002", ("01-x", "02-y"), 2, changes)
    assert preview.changed_demos == ("01-x",)
    assert preview.counts() == {"added": 1, "removed": 1, "moved": 0, "changed": 0}
    assert preview.headline().startswith("2 changes (1 added, 1 removed) in 1 of 2 demo")
    unchanged = IndexPreview("gen-000001", "gen-000002", ("01-x",), 1)
    assert unchanged.headline().startswith("No suggestion or article changes")
    assert preview.to_dict()["changes"][0]["demo"] == "01-x"
