"""Two labelling sessions at once, on the test's backend (SQLite, or PostgreSQL with
CURATOR_TEST_BACKEND=postgresql): no update is lost, and every history row's old value is the
one it replaced. `labels.lock` makes a second session wait for the first to commit."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from curator import catalog, classes, labels
from curator.errors import ClassNotFound
from curator.ingest import import_paths
from curator.library.models import Image, ImageTag, LabelEvent


LABELS = ("emu", "kangaroo", "kangaroo/joey", "wombat", "unknown")
ROUNDS = 30


def _one_change(s, images, rng) -> tuple[str, labels.Change]:
    """A random labelling call on ``images``: (the history field it writes, what it did)."""
    kind = rng.choice(("relabel", "relabel", "reject", "restore", "tag"))
    if kind == "relabel":
        return "label", labels.relabel(s, images, rng.choice(LABELS))
    if kind == "reject":
        return "status", labels.reject(s, images, f"reason {rng.randrange(2)}")
    if kind == "restore":
        return "status", labels.restore(s, images)
    return "tag", labels.tag(s, images, f"t{rng.randrange(3)}")


def _labelling_session(lib, ids: list[int], seed: int, barrier: threading.Barrier) -> Counter:
    """ROUNDS transactions, each reading some images, waiting until the other session has read
    them too, then changing them. Returns the changes made per (image id, field)."""
    rng = random.Random(seed)
    made = Counter()
    try:
        for _ in range(ROUNDS):
            chosen = rng.sample(ids, rng.randrange(2, len(ids) + 1))
            with lib.session() as s:
                images = catalog.select_images(s, [str(i) for i in chosen])
                barrier.wait()  # both have read: both hold values the other is about to change
                field, change = _one_change(s, images, rng)
            made.update((i, field) for i in change.changed)
    except BaseException:
        barrier.abort()  # the other session stops too, rather than wait for this one
        raise
    return made


def _status(image: Image) -> str:
    return f"rejected: {image.reject_reason}" if image.status == "rejected" else image.status


def test_two_sessions_labelling_the_same_images_lose_no_update(library, make_tree):
    root = make_tree({f"im{i}.png": i for i in range(6)})
    import_paths(library, [root])
    for name in ("emu", "kangaroo/joey", "wombat"):
        classes.add(library, name)
    with library.session() as s:
        ids = sorted(s.scalars(select(Image.id)))
    barrier = threading.Barrier(2, timeout=60)
    with ThreadPoolExecutor(2) as pool:
        sessions = [pool.submit(_labelling_session, library, ids, seed, barrier) for seed in (1, 2)]
    failed = [f.exception() for f in sessions if f.exception() is not None]
    if failed:  # the first cause, not the other session's BrokenBarrierError
        raise next((e for e in failed if not isinstance(e, threading.BrokenBarrierError)), failed[0])
    made = sessions[0].result() + sessions[1].result()
    assert sum(made.values()) > ROUNDS  # the sessions did change things, many times over

    with library.session() as s:
        for image in s.scalars(select(Image)):
            rows = s.scalars(select(LabelEvent).where(LabelEvent.image_id == image.id)
                             .order_by(LabelEvent.id)).all()
            label_rows = [(e.old_value, e.new_value) for e in rows if e.field == "label"]
            assert label_rows[0] == (None, "unlabelled")  # the import
            for field, start, now in (("label", "unlabelled", image.label), ("status", "active", _status(image))):
                chain = [(e.old_value, e.new_value) for e in rows if e.field == field and e.action != "import"]
                assert len(chain) == made[image.id, field], (image.id, field)  # no change went missing
                values = [start, *(new for _, new in chain)]
                assert [old for old, _ in chain] == values[:-1], (image.id, field, chain)  # nor was overwritten
                assert values[-1] == now  # and the last change is what the image says now
            tags = [e.new_value for e in rows if e.field == "tag"]
            assert len(tags) == made[image.id, "tag"] == len(set(tags))
            assert set(tags) == set(s.scalars(select(ImageTag.tag).where(ImageTag.image_id == image.id)))


def test_a_second_session_waits_for_the_first_and_sees_its_change(library, make_tree):
    import_paths(library, [make_tree({"a.png": 1})])
    first = Session(library.engine)
    ref = [str(first.scalar(select(Image.id)))]
    labels.relabel(first, catalog.select_images(first, ref), "emu", create=True)

    def second():
        with library.session() as s:
            labels.relabel(s, catalog.select_images(s, ref), "wombat", create=True)

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(second)
        with pytest.raises(TimeoutError):
            waiting.result(timeout=1)  # blocked on the image's row lock
        first.commit()
        first.close()
        waiting.result(timeout=30)
    with library.session() as s:
        rows = s.scalars(select(LabelEvent).order_by(LabelEvent.id)).all()
        assert [(e.action, e.old_value, e.new_value) for e in rows] == [
            ("import", None, "unlabelled"), ("relabel", "unlabelled", "emu"), ("relabel", "emu", "wombat")]


def _second_waits_for_first(library, first_change, second_change) -> None:
    """``first_change(session)`` in a transaction left open; ``second_change(session)`` in
    another thread must wait for it (still blocked after a second), then finish once the first
    commits."""
    first = Session(library.engine)
    try:
        first_change(first)

        def second():
            with library.session() as s:
                second_change(s)

        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(second)
            with pytest.raises(TimeoutError):
                waiting.result(timeout=1)
            first.commit()
            waiting.result(timeout=30)
    finally:
        first.close()


def _label_rows(library, image_id: int) -> list[tuple[str, str, str]]:
    with library.session() as s:
        return [(e.action, e.old_value, e.new_value) for e in s.scalars(
            select(LabelEvent).where(LabelEvent.image_id == image_id, LabelEvent.field == "label")
            .order_by(LabelEvent.id))]


def _two_images(library, make_tree) -> list[str]:
    import_paths(library, [make_tree({"a.png": 1, "b.png": 2})])
    with library.session() as s:
        return [str(i) for i in sorted(s.scalars(select(Image.id)))]


def test_two_sessions_creating_the_same_class_share_one(library, make_tree):
    a, b = _two_images(library, make_tree)
    _second_waits_for_first(
        library,
        lambda s: labels.relabel(s, catalog.select_images(s, [a]), "quokka/joey", create=True),
        lambda s: labels.relabel(s, catalog.select_images(s, [b]), "quokka/joey", create=True))
    rows = classes.class_table(library)
    assert [(r["class"], r["labelled"], [x["subclass"] for x in r["subclasses"]]) for r in rows] == [
        ("quokka", 2, ["joey"])]


def _relabel(which: str, label: str):
    return lambda s, ids: labels.relabel(s, catalog.select_images(s, [ids[which]]), label)


@pytest.mark.parametrize("before, first, second, history_of_a", [
    ([], _relabel("a", "emu"), lambda s, ids: labels._rename(s, "emu", "dromaius"),
     [("relabel", "unlabelled", "emu"), ("rename", "emu", "dromaius")]),
    ([_relabel("a", "emu")], lambda s, ids: labels._rename(s, "emu", "dromaius"), _relabel("a", "wombat"),
     [("relabel", "unlabelled", "emu"), ("rename", "emu", "dromaius"), ("relabel", "dromaius", "wombat")]),
    ([_relabel("b", "wombat")], _relabel("a", "emu"), lambda s, ids: labels._merge(s, "emu", "wombat"),
     [("relabel", "unlabelled", "emu"), ("merge", "emu", "wombat")]),
], ids=["rename waits for a relabel into the class, and records the image",
        "a relabel after a rename records the new name as the old value",
        "merge waits for a relabel into its source, and moves the image"])
def test_class_changes_and_relabels_take_turns(library, make_tree, before, first, second, history_of_a):
    ids = dict(zip("ab", _two_images(library, make_tree)))
    classes.add(library, "emu")
    classes.add(library, "wombat")
    with library.session() as s:
        for step in before:
            step(s, ids)
    _second_waits_for_first(library, lambda s: first(s, ids), lambda s: second(s, ids))
    assert _label_rows(library, int(ids["a"]))[1:] == history_of_a


@pytest.mark.parametrize("create", [False, True])
def test_a_relabel_into_a_class_renamed_meanwhile_finds_no_class_or_makes_it_anew(library, make_tree, create):
    a, _ = _two_images(library, make_tree)
    classes.add(library, "emu")
    failed = []

    def relabel(s):
        try:
            labels.relabel(s, catalog.select_images(s, [a]), "emu", create=create)
        except ClassNotFound as e:
            failed.append(str(e))

    _second_waits_for_first(library, lambda s: labels._rename(s, "emu", "dromaius"), relabel)
    table = [(r["class"], r["labelled"]) for r in classes.class_table(library)]
    if create:
        assert table == [("dromaius", 0), ("emu", 1)] and not failed
    else:
        assert table == [("dromaius", 0)]
        assert failed and failed[0].startswith("no class 'emu' (known: dromaius)")
