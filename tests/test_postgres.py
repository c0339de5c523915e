"""The library on PostgreSQL: a private server per test session (tests/postgres.py), a fresh
database per test (migrations on PostgreSQL: tests/test_migrations.py). The CLI end to end with
real images, and two sessions labelling the same images at once losing no update."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from curator import catalog, classes, labels
from curator.ingest import import_paths
from curator.library import init_library, open_library, schema
from curator.library.models import Image, ImageTag, LabelEvent

from conftest import as_json


@pytest.fixture
def pg_cli(cli, pg_url, monkeypatch, tmp_path):
    """`cli`, pointed at a fresh PostgreSQL database (the library's folder under tmp_path)."""
    monkeypatch.setenv("CURATOR_DB", pg_url)
    monkeypatch.setenv("CURATOR_HOME", str(tmp_path / "home"))
    return cli


@pytest.fixture
def pg_library(pg_url):
    init_library(pg_url)
    lib = open_library(pg_url)
    yield lib
    lib.close()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_cli_init_and_db_current(pg_cli, pg_url):
    head = schema.head_revision()
    assert flat(pg_cli("init").stdout) == f"Created library {pg_url} (schema {head})."
    assert flat(pg_cli("db", "current").stdout) == f"library: {head} expected: {head}"
    assert flat(pg_cli("init").stdout) == f"Library {pg_url} is up to date (schema {head})."
    assert as_json(pg_cli("stats", "--json"))["library"] == pg_url


def test_import_label_relabel_history_round_trip(pg_cli, make_tree):
    root = make_tree({"emu/e1.png": 1, "emu/e2.png": 2, "loose.png": 3})
    pg_cli("init")
    assert as_json(pg_cli("import", root, "--labels-from-folders", "--json"))["added"] == 3
    loose = str(root / "loose.png")
    assert as_json(pg_cli("label", loose, "--class", "wombat", "--create", "--json"))["changed"]
    assert as_json(pg_cli("relabel", "--of", "emu", "--class", "kangaroo/joey", "--create",
                          "--json"))["unchanged"] == 0
    assert as_json(pg_cli("relabel", loose, "--class", "emu", "--json"))["changed"]
    assert [(e["action"], e["old"], e["new"], e["actor"])
            for e in as_json(pg_cli("history", loose, "--json"))] == [
        ("import", None, "unlabelled", "tester"),
        ("label", "unlabelled", "wombat", "tester"),
        ("relabel", "wombat", "emu", "tester"),
    ]
    e1 = as_json(pg_cli("show", root / "emu" / "e1.png", "--json"))
    assert (e1["label"], [e["new"] for e in e1["history"]]) == ("kangaroo/joey", ["emu", "kangaroo/joey"])
    stats = as_json(pg_cli("stats", "--json"))
    assert (stats["images"], stats["labelled"], stats["classes"], stats["history_rows"]) == (3, 3, 3, 7)


# -- two labelling sessions at once -----------------------------------------------------------

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


def test_two_sessions_labelling_the_same_images_lose_no_update(pg_library, make_tree):
    root = make_tree({f"im{i}.png": i for i in range(6)})
    import_paths(pg_library, [root])
    with pg_library.session() as s:
        for name in ("emu", "kangaroo/joey", "wombat"):
            classes.add(s, name)
        ids = sorted(s.scalars(select(Image.id)))
    barrier = threading.Barrier(2, timeout=60)
    with ThreadPoolExecutor(2) as pool:
        sessions = [pool.submit(_labelling_session, pg_library, ids, seed, barrier) for seed in (1, 2)]
    failed = [f.exception() for f in sessions if f.exception() is not None]
    if failed:  # the first cause, not the other session's BrokenBarrierError
        raise next((e for e in failed if not isinstance(e, threading.BrokenBarrierError)), failed[0])
    made = sessions[0].result() + sessions[1].result()
    assert sum(made.values()) > ROUNDS  # the sessions did change things, many times over

    with pg_library.session() as s:
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


def test_a_second_session_waits_for_the_first_and_sees_its_change(pg_library, make_tree):
    import_paths(pg_library, [make_tree({"a.png": 1})])
    first = Session(pg_library.engine)
    ref = [str(first.scalar(select(Image.id)))]
    labels.relabel(first, catalog.select_images(first, ref), "emu", create=True)

    def second():
        with pg_library.session() as s:
            labels.relabel(s, catalog.select_images(s, ref), "wombat", create=True)

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(second)
        with pytest.raises(TimeoutError):
            waiting.result(timeout=1)  # blocked on the image's row lock
        first.commit()
        first.close()
        waiting.result(timeout=30)
    with pg_library.session() as s:
        rows = s.scalars(select(LabelEvent).order_by(LabelEvent.id)).all()
        assert [(e.action, e.old_value, e.new_value) for e in rows] == [
            ("import", None, "unlabelled"), ("relabel", "unlabelled", "emu"), ("relabel", "emu", "wombat")]
