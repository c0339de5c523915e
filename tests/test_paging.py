"""`find` answers in the database with the rows and order the Python algorithm gave, and pages.

``oracle`` is the algorithm ``filters.find`` used before it moved into SQL (every prediction
read into Python, sorted there, then cut): kept here, unchanged, as the reference. The library
has ties (equal confidences in one class and across classes), images without a prediction or
with an unreadable one, a rejected image, sub-classes, staged and synthetic images, unknown
images, a tag, and a predicted class the library lacks whose name sorts before the others only
by code point ("Okapi" < "antelope").
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import aliased

from curator import filters, labels
from curator.classes import class_table
from curator.library.models import (
    ACTIVE,
    LABELLED,
    UNKNOWN,
    UNLABELLED,
    Image,
    ImageTag,
    LabelClass,
    Prediction,
    Run,
    SplitMember,
    Subclass,
)

# name -> (predicted, confidence) over the `known` library's; None: an unreadable file.
MORE = {
    "p2.png": ("Okapi", 0.55), "w1.png": ("wombat", 0.55), "k2.png": ("kangaroo", 0.8),
    "a1.png": ("antelope", 0.3), "a2.png": ("kangaroo", 0.8), "w2.png": ("Okapi", 0.4),
    "k6.png": ("kangaroo", 0.99), "k3.png": None,
}  # k4.png has no prediction; k6.png is rejected below


@pytest.fixture
def varied(known):
    by_name = known.by_name
    with known.session() as s:
        run = s.scalar(select(Run).where(Run.name == "r"))
        run.classes = json.dumps(["Okapi", "antelope", "kangaroo", "wombat"])
        for name, answer in MORE.items():
            pred = s.get(Prediction, (run.id, by_name[name])) or Prediction(run_id=run.id, image_id=by_name[name])
            pred.predicted, pred.confidence = answer or (None, None)
            pred.top_k, pred.error = json.dumps([list(answer)] if answer else []), None if answer else "unreadable"
            s.add(pred)
        images = lambda *names: [s.get(Image, by_name[n]) for n in names]  # noqa: E731
        labels.relabel(s, images("k1.png", "k2.png"), "kangaroo/joey", create=True)
        labels.set_flags(s, images("w1.png"), synthetic=True)
        labels.reject(s, images("k6.png"), "blurred")
        labels.tag(s, images("p1.png", "p3.png", "u1.png"), "check")
    return known


QUERIES = [
    dict(),
    dict(predicted="kangaroo"),
    dict(predicted="kangaroo", max_confidence=0.8),
    dict(predicted="Okapi"),
    dict(min_confidence=0.55),
    dict(max_confidence=0.55),
    dict(min_confidence=0.4, max_confidence=0.8),
    dict(label="unlabelled"),
    dict(label="unknown"),
    dict(label="kangaroo"),
    dict(label="kangaroo", subclass="joey"),
    dict(label="wombat", predicted="Okapi"),
    dict(split="train"),
    dict(split="val"),
    dict(staged=True),
    dict(staged=False),
    dict(synthetic=True),
    dict(synthetic=False, min_confidence=0.5),
    dict(low_count=True),
    dict(low_count=True, min_count=3),
    dict(low_count=True, min_count=5),
    dict(low_count=True, min_count=5, label="kangaroo"),
    dict(low_count=True, min_count=7, max_confidence=0.6),
    dict(synthetic_dependent=True),
    dict(synthetic_dependent=True, max_staged_share=0.2),
    dict(synthetic_dependent=True, max_staged_share=0.0, label="kangaroo"),
    dict(synthetic_dependent=True, low_count=True, min_count=5, max_staged_share=0.1),
    dict(unknown=True),
    dict(unknown=True, predicted="wombat"),
    dict(lowest=3),
    dict(lowest=4, label="kangaroo"),
    dict(lowest=50),
    dict(tag="check"),
    dict(tag="check", max_confidence=0.5),
    dict(limit=4),
    dict(limit=4, lowest=2),
    dict(low_count=True, min_count=5, limit=2),
    dict(low_count=True, min_count=5, lowest=2),  # the first order that applies wins
    dict(synthetic_dependent=True, max_confidence=0.9),
    dict(unknown=True, low_count=True, min_count=7),
    dict(unknown=True, synthetic_dependent=True, max_staged_share=0.0),
]


def oracle(lib, q: filters.Query) -> dict:
    """The old ``filters.find`` after its checks: every prediction into Python, sorted, then cut."""
    with lib.session() as s:
        run = s.scalar(select(Run).where(Run.name == q.run))
        rows = _old_rows(s, q, run)
    stats = {} if not (q.low_count or q.synthetic_dependent) else {
        row["class"]: row for row in class_table(lib, q.min_count)}
    classes = {}
    for r in rows:
        c = stats.get(r["predicted"], {"labelled": 0, "real": 0, "needs": q.min_count})
        r["needs"] = max(0, q.min_count - c["labelled"])
        r["staged_share"] = (c["labelled"] - c["real"]) / c["labelled"] if c["labelled"] else 0.0
    if q.low_count:
        rows = [r for r in rows if r["needs"] > 0]
    if q.synthetic_dependent:
        rows = [r for r in rows if r["staged_share"] > q.max_staged_share]
    for r in rows:
        if stats:
            classes.setdefault(r["predicted"], {"labelled": stats.get(r["predicted"], {}).get("labelled", 0),
                                                "needs": r["needs"], "staged_share": round(r["staged_share"], 3),
                                                "found": 0})["found"] += 1
    key = next((k for name, k in OLD_SORTS if getattr(q, name) not in (None, False)), OLD_DEFAULT_SORT)
    rows.sort(key=key)
    cap = min(x for x in (q.lowest, q.limit, len(rows)) if x is not None)
    return {"total": len(rows), "rows": rows[:cap], "classes": classes}


OLD_SORTS = (
    ("lowest", lambda r: (r["confidence"], r["image_id"])),
    ("unknown", lambda r: (r["predicted"], -r["confidence"], r["image_id"])),
    ("low_count", lambda r: (-r["needs"], r["predicted"], -r["confidence"], r["image_id"])),
    ("synthetic_dependent", lambda r: (-r["staged_share"], r["predicted"], -r["confidence"], r["image_id"])),
    ("max_confidence", lambda r: (r["confidence"], r["image_id"])),
)
OLD_DEFAULT_SORT = lambda r: (r["predicted"], -r["confidence"], r["image_id"])  # noqa: E731


def _old_rows(s, q, run) -> list[dict]:
    member = aliased(SplitMember)
    stmt = (
        select(Image.id, Image.path, Image.label_state, LabelClass.name, Subclass.name, Prediction.predicted,
               Prediction.confidence, Prediction.top_k, member.split, Image.staged, Image.synthetic)
        .join(Prediction, (Prediction.image_id == Image.id) & (Prediction.run_id == run.id))
        .outerjoin(LabelClass, LabelClass.id == Image.class_id)
        .outerjoin(Subclass, Subclass.id == Image.subclass_id)
        .outerjoin(member, (member.image_id == Image.id) & (member.build_id == run.build_id))
        .where(Image.status == ACTIVE, Prediction.error.is_(None))
    )
    conditions = {
        "predicted": lambda v: Prediction.predicted == v,
        "min_confidence": lambda v: Prediction.confidence >= v,
        "max_confidence": lambda v: Prediction.confidence <= v,
        "split": lambda v: member.split == v,
        "staged": lambda v: Image.staged.is_(v),
        "synthetic": lambda v: Image.synthetic.is_(v),
        "subclass": lambda v: Subclass.name == v,
        "label": lambda v: (Image.label_state == v) if v in (UNLABELLED, UNKNOWN) else (LabelClass.name == v),
    }
    for name, condition in conditions.items():
        value = getattr(q, name)
        if value is not None:
            stmt = stmt.where(condition(value))
    if q.tag is not None:
        stmt = stmt.where(Image.id.in_(select(ImageTag.image_id).where(ImageTag.tag == q.tag)))
    if q.unknown:
        stmt = stmt.where(Image.label_state == UNKNOWN)
    elif (q.low_count or q.synthetic_dependent) and q.label is None:
        stmt = stmt.where(Image.label_state == UNLABELLED)
    return [{
        "image_id": r[0], "path": r[1],
        "label": r[2] if r[2] != LABELLED else (f"{r[3]}/{r[4]}" if r[4] else r[3]),
        "predicted": r[5], "confidence": r[6], "top_k": json.loads(r[7]), "split": r[8],
        "staged": r[9], "synthetic": r[10],
    } for r in s.execute(stmt).all()]


def _query(query: dict) -> filters.Query:
    return filters.Query(run="r", **query)


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()) or "all")
def test_sql_gives_the_old_rows_in_the_old_order(varied, query):
    q = _query(query)
    new, old = filters.find(varied, q), oracle(varied, q)
    assert new["rows"] == old["rows"]
    assert new["total"] == old["total"]
    assert new["classes"] == old["classes"]
    assert new["query"] == asdict(q)


def test_the_library_has_what_the_oracle_must_cover(varied):
    everything = filters.find(varied, filters.Query(run="r"))["rows"]
    confidences = [r["confidence"] for r in everything]
    assert len(confidences) > len(set(confidences))  # ties
    assert {"Okapi", "antelope"} <= {r["predicted"] for r in everything}
    assert varied.by_name["k6.png"] not in {r["image_id"] for r in everything}  # rejected
    assert not {varied.by_name[n] for n in ("k3.png", "k4.png")} & {r["image_id"] for r in everything}


@pytest.mark.parametrize("query", [q for q in QUERIES if "limit" not in q],
                         ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()) or "all")
def test_pages_concatenate_to_the_whole_list(varied, query):
    whole = filters.find(varied, _query(query))
    pages, offset = [], 0
    while True:
        page = filters.find(varied, replace(_query(query), limit=3, offset=offset))
        assert page["total"] == whole["total"] and page["classes"] == whole["classes"]
        if not page["rows"]:
            break
        pages += page["rows"]
        offset += 3
    assert pages == whole["rows"]


def test_offset_past_the_end_is_empty_not_an_error(varied):
    found = filters.find(varied, filters.Query(run="r", offset=1000))
    assert found["rows"] == [] and found["total"] > 0


@pytest.mark.parametrize("query, message", [
    (dict(offset=-1), "--offset -1: give 0 or more"),
    (dict(limit=0), "--limit 0: give 1 or more"),
    (dict(lowest=0), "--lowest 0: give 1 or more"),
])
def test_bad_paging_is_an_error(varied, query, message):
    from curator.errors import InvalidInput

    with pytest.raises(InvalidInput) as e:
        filters.find(varied, filters.Query(run="r", **query))
    assert str(e.value) == message


def test_cli_offset_pages(varied, cli):
    whole = cli("find", "--run", "r", "--paths").stdout.split()
    page = cli("find", "--run", "r", "--limit", "3", "--offset", "3", "--paths").stdout.split()
    assert page == whole[3:6]
    table = cli("find", "--run", "r", "--limit", "3", "--offset", "3")
    assert f"3 of {len(whole)} images, from number 4 (predictions of r)." in table.stdout
    assert "--offset" in cli("find", "--help").stdout
    assert cli("find", "--run", "r", "--offset", "-1").exit_code == 2  # Typer refuses it


def test_actions_work_in_chunks(varied, monkeypatch):
    monkeypatch.setattr(filters, "ACT_CHUNK", 2)
    found = filters.find(varied, filters.Query(run="r"))
    done_after = []
    result = filters.act(varied, found, "tag", "many", on_progress=done_after.append)
    n = len(found["rows"])
    assert done_after == [*range(2, n, 2), n]
    assert sorted(result["changed"]) == sorted(r["image_id"] for r in found["rows"]) and result["unchanged"] == 0
    pool = filters.find(varied, filters.Query(run="r", label="unlabelled"))
    accepted = filters.act(varied, pool, "accept")
    assert sorted(accepted["changed"]) == sorted(r["image_id"] for r in pool["rows"])  # in chunks of 2
