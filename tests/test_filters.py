"""`curator find` and `curator coverage` on a small library with known predictions (exact rows)."""

from __future__ import annotations

import csv
import io

import pytest

from conftest import as_json, error
from curator import filters


def names(lib, result) -> list[str]:
    back = {v: k for k, v in lib.by_name.items()}
    return [back[r["image_id"]] for r in result["rows"]]


@pytest.mark.parametrize("query, expected", [
    (dict(predicted="kangaroo", max_confidence=0.6), ["k1.png", "p2.png"]),  # look-alikes, least sure first
    (dict(predicted="kangaroo", max_confidence=0.6, label="unlabelled"), ["p2.png"]),
    (dict(low_count=True, min_count=5), ["p5.png", "p4.png", "p3.png"]),  # wombat needs 3, antelope 2
    (dict(synthetic_dependent=True), ["p4.png", "p3.png"]),  # antelope: 3 of 3 staged
    (dict(synthetic_dependent=True, max_staged_share=0.2, min_confidence=0.9), ["p4.png", "p1.png"]),  # kangaroo 2 of 6
    (dict(unknown=True), ["u1.png", "u2.png"]),  # grouped by predicted class
    (dict(lowest=2), ["p5.png", "p3.png"]),
    (dict(max_confidence=0.45), ["p5.png", "p3.png"]),
    (dict(min_confidence=0.9), ["p4.png", "p1.png"]),
    (dict(staged=True), ["k5.png"]),
    (dict(label="kangaroo"), ["k5.png", "k1.png"]),
    (dict(label="unknown", predicted="wombat"), ["u2.png"]),
    (dict(limit=3), ["p4.png", "p3.png", "p1.png"]),
])
def test_each_filter_gives_exact_rows(known, query, expected):
    assert names(known, filters.find(known, filters.Query(run="r", **query))) == expected


def test_low_count_says_what_each_class_needs(known):
    result = filters.find(known, filters.Query(run="r", low_count=True, min_count=5))
    assert result["classes"] == {
        "wombat": {"labelled": 2, "needs": 3, "staged_share": 0.0, "found": 1},
        "antelope": {"labelled": 3, "needs": 2, "staged_share": 1.0, "found": 2},
    }
    assert result["total"] == 3 and result["run"] == "r"


def test_coverage(known):
    rows = filters.coverage(known, "r", min_count=5, high_confidence=0.8)
    assert [(r["class"], r["labelled"], r["needs"], r["predicted"], r["confident"], r["reachable"]) for r in rows] == [
        ("wombat", 2, 3, 1, 0, False),
        ("antelope", 3, 2, 2, 1, False),
        ("kangaroo", 6, 0, 2, 1, True),
    ]


@pytest.mark.parametrize("query, message", [
    (dict(max_confidence=1.5), "--max-confidence 1.5 is not between 0 and 1"),
    (dict(unknown=True, label="kangaroo"), "--unknown looks at images labelled unknown, not kangaroo: drop one of them"),
    (dict(subclass="joey"), "--subclass needs --label CLASS"),
    (dict(run="ghost"), "no run named 'ghost': see `curator runs`"),
])
def test_bad_queries_are_one_line_errors(known, cli, query, message):
    from curator.errors import CuratorError

    with pytest.raises(CuratorError) as e:
        filters.find(known, filters.Query(**{"run": "r", **query}))
    assert str(e.value) == message


@pytest.mark.parametrize("args, message", [
    (["--class", "zebra"], "Error: no class 'zebra' (known: antelope, emu, kangaroo, wombat)"),
    (["--class", "emu"], "Error: run r cannot predict 'emu': it was trained without it"
                         " (`curator runs show r --json` lists its classes)"),
    (["--label", "zebra"], "Error: no class 'zebra' (known: antelope, emu, kangaroo, wombat)"),
    (["--label", "kangaroo", "--subclass", "joey"], "Error: class 'kangaroo' has no sub-class 'joey' (known: none)"),
    (["--tagged", "nosuchtag"], "Error: no image is tagged 'nosuchtag' (tags: none yet):"
                                " `curator find ... --tag TAG` tags what it shows"),
    (["--split", "nosuch"], "Error: --split nosuch: use one of train, val, test, benchmark"),
])
def test_unknown_names_are_errors_not_empty_results(known, cli, args, message):
    assert cli("classes", "add", "emu").exit_code == 0  # in the library, not in run r's head
    assert error(cli("find", "--run", "r", *args)) == message
    assert error(cli("find", *args)) == message  # the run picked by default: r too


def test_cli_outputs(known, cli):
    table = cli("find", "--run", "r", "--class", "kangaroo", "--max-confidence", "0.6")
    assert table.exit_code == 0 and "2 images (predictions of r)." in table.stdout
    paths = cli("find", "--run", "r", "--lowest", "2", "--paths").stdout.split()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["p5.png", "p3.png"]
    rows = list(csv.DictReader(io.StringIO(cli("find", "--run", "r", "--unknown", "--csv").stdout)))
    assert [(r["label"], r["predicted"], r["confidence"]) for r in rows] == [("unknown", "kangaroo", "0.7"), ("unknown", "wombat", "0.6")]
    data = as_json(cli("find", "--run", "r", "--low-count", "--min-count", "5", "--json"))
    assert data["total"] == 3 and set(data["classes"]) == {"wombat", "antelope"}
    limited = cli("find", "--run", "r", "--limit", "2")
    assert "2 of 9 images (predictions of r)." in limited.stdout
    cov = as_json(cli("coverage", "--run", "r", "--min-count", "5", "--json"))
    assert [r["class"] for r in cov] == ["wombat", "antelope", "kangaroo"]
    assert "Reachable" in cli("coverage", "--run", "r", "--min-count", "5").stdout
    assert error(cli("find", "--run", "r", "--max-confidence", "2")) == "Error: --max-confidence 2.0 is not between 0 and 1"


def _label_of(lib, name):
    from curator.library.models import Image

    with lib.session() as s:
        return s.get(Image, lib.by_name[name]).label


def test_accept_takes_the_predictions_with_history(known):
    from sqlalchemy import select

    from curator.library.models import LabelEvent

    result = filters.find(known, filters.Query(run="r", label="unlabelled", min_confidence=0.9))
    done = filters.act(known, result, "accept")
    assert sorted(done["changed"]) == sorted(known.by_name[n] for n in ("p1.png", "p4.png"))
    assert _label_of(known, "p1.png") == "kangaroo" and _label_of(known, "p4.png") == "antelope"
    with known.session() as s:
        event = s.scalars(select(LabelEvent).where(LabelEvent.image_id == known.by_name["p4.png"],
                                                   LabelEvent.action == "accept")).one()
        assert (event.old_value, event.new_value, event.source) == ("unlabelled", "antelope", "model")
        assert event.detail == "curator find, run r, confidence 0.900"
    again = filters.act(known, result, "accept")
    assert again["changed"] == [] and again["unchanged"] == 2


@pytest.mark.parametrize("args, name, label", [
    (["--set-label", "antelope/gazelle", "--create"], "p3.png", "antelope/gazelle"),
    (["--mark-unknown"], "p3.png", "unknown"),
])
def test_cli_label_actions(known, cli, args, name, label):
    r = cli("find", "--run", "r", "--class", "antelope", "--max-confidence", "0.5", *args)
    assert r.exit_code == 0, r.output
    assert r.stdout.rstrip().endswith("1 images changed, 0 already so (see `curator history IMAGE`).")
    assert _label_of(known, name) == label


def test_cli_reject_and_tag_then_filter_by_tag(known, cli):
    from curator.library.models import Image

    r = cli("find", "--run", "r", "--lowest", "1", "--reject", "blurred")
    assert r.exit_code == 0, r.output
    with known.session() as s:
        p5 = s.get(Image, known.by_name["p5.png"])
        assert (p5.status, p5.reject_reason) == ("rejected", "blurred")
    assert cli("find", "--run", "r", "--unknown", "--tag", "wallabies?").exit_code == 0
    again = cli("find", "--run", "r", "--unknown", "--tag", "wallabies?")
    assert "0 images changed, 2 already so" in again.stdout
    tagged = cli("find", "--run", "r", "--tagged", "wallabies?", "--paths").stdout.split()
    assert sorted(p.rsplit("/", 1)[1] for p in tagged) == ["u1.png", "u2.png"]
    both = cli("find", "--run", "r", "--accept", "--mark-unknown")
    assert both.exit_code == 2 and "give at most one action" in both.stderr
    unknown_class = cli("find", "--run", "r", "--lowest", "1", "--set-label", "okapi")
    assert error(unknown_class).startswith("Error: ") and "pass --create" in error(unknown_class)
