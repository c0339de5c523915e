"""The tallies (migration 0008) always equal a count of the rows they stand for.

Every kind of change a library sees (imports, labels, flags, rejects and restores, renames and
merges, predictions added, changed and removed, a run deleted, an image deleted) is made to
the ``known`` library; after each, and after folding, the tallies read as a GROUP BY over the
images, predictions, label events and locations themselves reads. ``prediction_counts``
between two confidences (on bucket edges, and on a value whose bucket float arithmetic puts
below the obvious one) equals counting the predictions.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text

from curator import ingest, labels, tallies
from curator.library import schema
from curator.library.models import (
    ACTIVE,
    LABEL_STATES,
    Image,
    ImageLocation,
    ImageTally,
    LabelEvent,
    Prediction,
    PredictionTally,
    Run,
    RowTally,
)

TRIGGERS = {
    "sqlite": {"tally_images_insert", "tally_images_update", "tally_images_delete", "tally_images_state",
               "tally_predictions_insert", "tally_predictions_delete", "tally_predictions_update",
               "tally_label_events_insert", "tally_label_events_delete", "tally_image_locations_insert",
               "tally_image_locations_delete"},
    "postgresql": {"tally_images_change", "tally_images_delete", "tally_predictions_change",
                   "tally_label_events_insert", "tally_label_events_delete", "tally_image_locations_insert",
                   "tally_image_locations_delete"},
}


def _state(image):
    return image.label_state if image.status == ACTIVE else tallies.REJECTED_STATE


def recount(lib) -> dict:
    """What the tallies must say, counted from the rows themselves."""
    keys = [getattr(Image, k) for k in tallies.IMAGE_KEYS]
    with lib.session() as s:
        images = {tuple(r[:-2]): (r[-2], r[-1]) for r in s.execute(
            select(*keys, func.count(), func.sum(Image.bytes)).group_by(*keys))}
        predictions: dict[tuple, int] = {}
        for p, image in s.execute(select(Prediction, Image).join(Image, Image.id == Prediction.image_id)
                                  .where(Prediction.error.is_(None))):
            key = (p.run_id, p.predicted, _state(image), None if p.confidence is None else int(p.confidence * tallies.BUCKETS))
            predictions[key] = predictions.get(key, 0) + 1
        rows = {"label_events": s.scalar(select(func.count()).select_from(LabelEvent)),
                "image_locations": s.scalar(select(func.count()).select_from(ImageLocation))}
    return {"images": images, "predictions": predictions, "rows": rows}


def tallied(lib) -> dict:
    """What the tallies say, zero sums left out."""
    t = PredictionTally
    with lib.session() as s:
        images = {tuple(r[:-2]): (r[-2], r[-1]) for r in tallies.image_groups(s)}
        n = func.sum(t.n)
        predictions = {tuple(r[:-1]): r[-1] for r in s.execute(
            select(t.run_id, t.predicted, t.state, t.bucket, n).group_by(t.run_id, t.predicted, t.state, t.bucket)
            .having(n != 0))}
        rows = {name: tallies.rows(s, name) for name in ("label_events", "image_locations")}
    return {"images": images, "predictions": predictions, "rows": rows}


def check(lib) -> None:
    assert tallied(lib) == recount(lib)
    with lib.session() as s:
        tallies.settle(s)
    assert tallied(lib) == recount(lib)
    with lib.session() as s:
        for table in (ImageTally, PredictionTally, RowTally):
            assert tallies.unsettled(s, table, 10) == 0


def _images(lib, *names):
    return [lib.by_name[n] for n in names]


def test_every_change_is_counted(known, make_tree):
    lib = known
    check(lib)  # after the imports and the predictions
    with lib.session() as s:
        get = lambda *names: [s.get(Image, i) for i in _images(lib, *names)]  # noqa: E731
        labels.relabel(s, get("k1.png", "p1.png"), "kangaroo/joey", create=True)
        labels.mark_unknown(s, get("p2.png"))
        labels.set_flags(s, get("w1.png", "p3.png"), synthetic=True)
        labels.set_flags(s, get("u1.png"), benchmark=True)
        labels.reject(s, get("k2.png", "p4.png"), "blurred")
    check(lib)
    with lib.session() as s:
        get = lambda *names: [s.get(Image, i) for i in _images(lib, *names)]  # noqa: E731
        labels.restore(s, get("p4.png"))
    labels.rename(lib, "wombat", "wombat-common")
    labels.merge(lib, "antelope", "kangaroo")
    check(lib)
    with lib.session() as s:  # predictions: a new run, a changed answer, an unreadable one, one gone
        old = s.scalar(select(Run).where(Run.name == "r"))
        run = Run(name="r2", build_id=old.build_id, model="test_resnet", status="done", folder="runs/r2",
                  classes=old.classes)
        s.add(run)
        s.flush()
        for i, image_id in enumerate(lib.by_name.values()):
            s.add(Prediction(run_id=run.id, image_id=image_id, predicted="kangaroo", confidence=i / 20,
                             top_k="[]", error="unreadable" if i == 3 else None))
        s.flush()
        p = s.get(Prediction, (old.id, lib.by_name["p1.png"]))
        p.confidence, p.predicted = 0.29, "wombat-common"
        s.get(Prediction, (old.id, lib.by_name["p3.png"])).error = "unreadable now"
        s.execute(delete(Prediction).where(Prediction.run_id == old.id, Prediction.image_id == lib.by_name["u1.png"]))
    check(lib)
    more = make_tree({"more/m1.png": 300, "more/m2.png": 301}, root="more")
    ingest.import_paths(lib, [more])
    with lib.session() as s:  # an image and a run deleted: their rows go by cascade
        s.execute(delete(Image).where(Image.id == lib.by_name["p5.png"]))
        s.execute(delete(Run).where(Run.name == "r"))
    check(lib)


@pytest.mark.parametrize("lo, hi", [(None, None), (0.4, None), (None, 0.8), (0.4, 0.8), (0.55, 0.55),
                                    (0.0, 1.0), (0.29, None), (None, 0.29), (0.291, 0.95), (0.99, None),
                                    (0.855, 0.9), (0.805, 0.815), (0.7, 0.7)])
def test_prediction_counts_between_bounds(known, lo, hi):
    lib = known
    with lib.session() as s:  # 0.29 * 100 is 28.999999999999996, 0.35 * 20 is 6.999999999999999
        run = s.scalar(select(Run).where(Run.name == "r"))
        s.get(Prediction, (run.id, lib.by_name["p5.png"])).confidence = 0.29
        s.get(Prediction, (run.id, lib.by_name["u2.png"])).confidence = 0.291
        labels.mark_unknown(s, [s.get(Image, lib.by_name["p4.png"])])
    with lib.session() as s:
        for states in ((state,) for state in LABEL_STATES):
            for predicted in (None, "kangaroo", "wombat"):
                q = (select(Prediction.predicted, func.count()).join(Image, Image.id == Prediction.image_id)
                     .where(Prediction.run_id == run.id, Prediction.error.is_(None), Image.status == ACTIVE,
                            Image.label_state.in_(states)).group_by(Prediction.predicted))
                if predicted:
                    q = q.where(Prediction.predicted == predicted)
                if lo is not None:
                    q = q.where(Prediction.confidence >= lo)
                if hi is not None:
                    q = q.where(Prediction.confidence <= hi)
                want = {name: n for name, n in s.execute(q)}
                got = tallies.prediction_counts(s, run.id, states, predicted=predicted, lo=lo, hi=hi)
                assert got == want, (states, predicted)


def test_every_trigger_is_there(library):
    dialect = library.engine.dialect.name
    query = ("SELECT name FROM sqlite_master WHERE type = 'trigger'" if dialect == "sqlite" else
             "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    with library.session() as s:
        assert TRIGGERS[dialect] <= set(s.scalars(text(query)))


def test_the_upgrade_fills_the_tallies_of_an_existing_library(known):
    schema.downgrade(known.engine, "0007")
    with known.session() as s:  # a change the triggers do not see: the fill must count it
        s.execute(text("UPDATE images SET staged = NOT staged WHERE id = :id"), {"id": known.by_name["p1.png"]})
    schema.upgrade(known.engine)
    check(known)


def test_a_reader_folds_many_deltas_first(known):
    """Hundreds of deltas waiting: ``settle_library`` folds them, and the counts stay right."""
    lib = known
    with lib.session() as s:
        images = list(s.scalars(select(Image).where(Image.id.in_(_images(lib, "p1.png", "p2.png", "p3.png")))))
        for i in range(40):
            labels.relabel(s, images, "wombat" if i % 2 else "kangaroo")
    want = recount(lib)
    assert tallied(lib) == want
    with lib.session() as s:
        assert tallies.unsettled(s, ImageTally, 100) == 100
    tallies.settle_library(lib, at=100)
    with lib.session() as s:
        assert tallies.unsettled(s, ImageTally, 100) == 0
    assert tallied(lib) == want


def test_prediction_counts_on_random_confidences_and_bounds(known):
    """Confidences on bucket edges, next to them and anywhere; bounds likewise."""
    import math
    import random

    rng = random.Random(7)
    edges = [k / 100 for k in range(101)] + [k / tallies.BUCKETS for k in range(tallies.BUCKETS + 1)]
    near = [math.nextafter(x, d) for x in edges for d in (-1, 2)]
    pick = lambda: rng.choice(edges + near + [rng.random() for _ in range(50)])  # noqa: E731
    with known.session() as s:
        build_id = s.scalar(select(Run.build_id).where(Run.name == "r"))
        runs = [Run(name=f"x{i}", build_id=build_id, model="test_resnet", status="done", folder=f"runs/x{i}",
                    classes="[]") for i in range(8)]
        s.add_all(runs)
        s.flush()
        for run in runs:
            for image_id in known.by_name.values():
                s.add(Prediction(run_id=run.id, image_id=image_id, predicted=rng.choice(["a", "b"]),
                                 confidence=min(1.0, max(0.0, pick())), top_k="[]"))
        run_ids = [r.id for r in runs]
    with known.session() as s:
        for _ in range(60):
            lo, hi = sorted((pick(), pick()))
            lo, hi = rng.choice([(lo, hi), (lo, None), (None, hi)])
            for run_id in run_ids[:3]:
                q = (select(Prediction.predicted, func.count()).join(Image, Image.id == Prediction.image_id)
                     .where(Prediction.run_id == run_id, Image.status == ACTIVE).group_by(Prediction.predicted))
                q = q.where(Prediction.confidence >= lo) if lo is not None else q
                q = q.where(Prediction.confidence <= hi) if hi is not None else q
                want = {name: n for name, n in s.execute(q)}
                assert tallies.prediction_counts(s, run_id, LABEL_STATES, lo=lo, hi=hi) == want, (lo, hi)
