"""The library's FiftyOne dataset on FiftyOne's real embedded database (a mongod per library folder):
contents, saved views, incremental refresh, pull of app edits, conflicts, rebuilds, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import as_json, error
from curator import fiftyone_database, fiftyone_pull, fiftyone_samples
from curator import fiftyone_sync as fs
from curator import filters, history, ingest, labels, status
from curator.library.models import Image, Run

fo = pytest.importorskip("fiftyone")


def samples(lib) -> dict[str, object]:
    """The dataset's samples by file name."""
    return {s.filepath.rsplit("/", 1)[1]: s for s in fs.open_dataset(lib, create=False)}


def view_names(lib, view: str) -> list[str]:
    dataset = fs.open_dataset(lib, create=False)
    return [p.rsplit("/", 1)[1] for p in dataset.load_saved_view(view).values("filepath")]


def image(lib, name: str) -> Image:
    with lib.session() as s:
        found = s.get(Image, lib.by_name[name])
        found.label  # load it
        s.expunge_all()
        return found


def label_of(lib, name: str) -> str:
    with lib.session() as s:
        return s.get(Image, lib.by_name[name]).label


def test_dataset_matches_the_library(known):
    result = fs.sync(known)
    assert (result["dataset"], result["run"], result["samples"], result["added"]) == ("curator", "r", 18, 18)
    # the database lives in the library's folder
    db_path = fo.core.odm.database.get_db_client().admin.command("getCmdLineOpts")["parsed"]["storage"]["dbPath"]
    assert db_path == str(known.folder.resolve() / "fiftyone")
    got = samples(known)
    assert len(got) == 18  # every active image
    k1, k5, u1, p1 = got["k1.png"], got["k5.png"], got["u1.png"], got["p1.png"]
    assert (k1.ground_truth.label, k1.unknown, k1.staged, k1.curator_id) == ("kangaroo", False, False, known.by_name["k1.png"])
    assert (k1.predictions.label, k1.predictions.confidence) == ("kangaroo", 0.5)
    assert [(c.label, c.confidence) for c in k1.top_k.classifications] == [("kangaroo", 0.5)]
    assert k1.tags == ["split:train"]
    assert (k5.staged, k5.synthetic, k5.benchmark) == (True, False, False)
    assert (u1.ground_truth, u1.unknown, u1.synced_label) == (None, True, "unknown")
    assert (p1.ground_truth, p1.unknown, p1.synced_label, p1.tags) == (None, False, "unlabelled", [])
    assert got["w1.png"].predictions is None  # not predicted by the run


def test_each_saved_view_is_its_filter(known):
    filters.act(known, filters.find(known, filters.Query(run="r", predicted="wombat")), "tag", "check")
    with known.session() as s:
        run = s.scalar(select(Run).where(Run.name == "r"))
        folder = known.folder / run.folder
    folder.mkdir(parents=True)
    (folder / "suspects.json").write_text(json.dumps({"suspects": [
        {"image_id": known.by_name["w2.png"], "label": "wombat", "suspected": "kangaroo", "score": 0.2},
        {"image_id": known.by_name["k2.png"], "label": "kangaroo", "suspected": "wombat", "score": 0.1}]}))
    views = fs.sync(known)["views"]
    expected = {
        "low-confidence": ["p5.png", "p3.png", "p2.png"],  # the pool, least sure first
        "look-alike-antelope": ["p3.png"],
        "look-alike-kangaroo": ["k1.png", "p2.png"],
        "look-alike-wombat": ["p5.png", "u2.png"],
        "low-count": ["p5.png", "p4.png", "p3.png", "p1.png", "p2.png"],  # wombat needs most
        "synthetic-dependent": ["p4.png", "p3.png"],  # antelope: all staged
        "unknown": ["u1.png", "u2.png"],
        "lowest": ["p5.png", "p3.png", "k1.png", "p2.png", "u2.png", "u1.png", "k5.png", "p4.png", "p1.png"],
        "suspects": ["k2.png", "w2.png"],  # lowest probability of the given label first
        "label-conflicts": [],
        "tag-check": ["u2.png", "p5.png"],  # by image id
    }
    assert views == {name: len(names) for name, names in expected.items()}
    for name, names in expected.items():
        assert view_names(known, name) == names, name
    dataset = fs.open_dataset(known, create=False)
    assert dataset.get_saved_view_info("low-count")["description"] == "curator find --run r --low-count"
    assert samples(known)["w2.png"].suspected == "kangaroo"


def _stored(dataset) -> dict[int, dict]:
    """The dataset's sample documents by curator id, less what differs between two writes of them."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("_id", "_rand", "_dataset_id", "created_at", "last_modified_at")}
        return [strip(v) for v in value] if isinstance(value, list) else value

    return {d["curator_id"]: strip(d) for d in dataset._sample_collection.find()}


def test_samples_are_written_as_add_samples_writes_them(known):
    # sync writes sample documents itself (a fo.Sample each is too slow for a working set):
    # FiftyOne's own add_samples, given the same rows, stores the same documents
    tag_suspects(known)
    with known.session() as s:
        labels.tag(s, [s.get(Image, known.by_name["k1.png"])], "check")
    fs.sync(known)
    dataset = fs.open_dataset(known, create=False)
    rows = fiftyone_samples.library_rows(known, fiftyone_samples.resolve_run(known, "r")[0])
    reference = fo.Dataset()
    try:
        reference.add_samples([fo.Sample(filepath=r["path"], tags=fiftyone_samples.sample_tags(r), **reference_fields(r))
                               for r in rows.values()], progress=False)
        assert _stored(dataset) == _stored(reference) and len(rows) == 18
        schema = dataset.get_field_schema(flat=True)
        assert {f: type(t) for f, t in reference.get_field_schema(flat=True).items()} == {
            f: type(schema[f]) for f in reference.get_field_schema(flat=True)}
        assert dataset.media_type == reference.media_type == "image"
        assert all(0.999 <= d["_rand"] <= 1 for d in dataset._sample_collection.find({}, {"_rand": 1}))
    finally:
        reference.delete()


def reference_fields(row: dict) -> dict:
    """A row's fields as FiftyOne's objects (how sync built samples before writing documents)."""
    fields = {f: v for f, v in fiftyone_samples.sample_fields(row).items() if not isinstance(v, dict)}
    fields["ground_truth"] = fo.Classification(label=row["class"]) if row["class"] else None
    predicted = row["predicted"] is not None
    fields["predictions"] = fo.Classification(label=row["predicted"], confidence=row["confidence"]) if predicted else None
    fields["top_k"] = fo.Classifications(classifications=[fo.Classification(label=c, confidence=p)
                                                          for c, p in row["top_k"]]) if predicted else None
    return fields


def tag_suspects(lib) -> None:
    """A saved `curator suspects` result for run r: w2 looks like a kangaroo, k2 like a wombat."""
    with lib.session() as s:
        folder = lib.folder / s.scalar(select(Run).where(Run.name == "r")).folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suspects.json").write_text(json.dumps({"suspects": [
        {"image_id": lib.by_name["w2.png"], "label": "wombat", "suspected": "kangaroo", "score": 0.2},
        {"image_id": lib.by_name["k2.png"], "label": "kangaroo", "suspected": "wombat", "score": 0.1}]}))


def test_views_are_resaved_only_when_changed_and_a_users_own_view_is_left(known):
    fs.sync(known)
    dataset = fs.open_dataset(known, create=False)
    dataset.save_view("mine", dataset.limit(2), description="my own")
    created = {v["name"]: v for v in (fo.load_dataset("curator").list_saved_views(info=True))}
    stamps = {d.name: d.id for d in dataset._doc.get_saved_views()}
    filters.act(known, filters.find(known, filters.Query(run="r", predicted="wombat")), "tag", "check")
    with known.session() as s:
        labels.reject(s, [s.get(Image, known.by_name["p3.png"])], "blurry")  # was in low-confidence
    views = fs.sync(known)["views"]
    dataset = fs.open_dataset(known, create=False)
    now = {d.name: d.id for d in dataset._doc.get_saved_views()}
    assert now["unknown"] == stamps["unknown"] and now["mine"] == stamps["mine"]  # unchanged: not re-saved
    assert now["low-confidence"] != stamps["low-confidence"] and views["low-confidence"] == 2
    assert view_names(known, "low-confidence") == ["p5.png", "p2.png"]
    assert view_names(known, "tag-check") == ["u2.png", "p5.png"] and "look-alike-antelope" not in now  # p3 was its only image
    assert set(now) == set(views) | {"mine"} and set(created) - set(now) == {"look-alike-antelope"}
    assert len(dataset.load_saved_view("mine")) == 2
    # what FiftyOne reads back from its database, in a fresh load
    again = fo.load_dataset("curator")
    again.reload()
    assert sorted(again.list_saved_views()) == sorted(now)
    assert again.get_saved_view_info("tag-check")["description"] == "curator find --tagged check"


def test_refresh_rewrites_only_what_changed(known, make_tree):
    fs.sync(known)
    before = {name: s.id for name, s in samples(known).items()}
    again = fs.sync(known)
    assert (again["added"], again["updated"], again["removed"]) == (0, 0, 0)
    with known.session() as s:
        labels.relabel(s, [s.get(Image, known.by_name["k1.png"])], "wombat")
        labels.reject(s, [s.get(Image, known.by_name["p5.png"])], "blurry")
    ingest.import_paths(known, [make_tree({"new.png": 999}, root="more")])
    result = fs.sync(known)
    assert (result["added"], result["updated"], result["removed"]) == (1, 1, 1)
    after = samples(known)
    assert after["k1.png"].ground_truth.label == "wombat" and after["k1.png"].synced_label == "wombat"
    assert "p5.png" not in after and after["new.png"].synced_label == "unlabelled"
    assert all(after[name].id == sid for name, sid in before.items() if name in after)  # same samples


def test_pull_takes_app_edits_into_history(known):
    fs.sync(known)
    got = samples(known)
    got["p1.png"].ground_truth = fo.Classification(label="antelope")  # edited in the app
    got["p2.png"].tags.append("label:wombat")
    got["p3.png"].tags.append("unknown")
    got["p4.png"].tags.append("reject:blurry")
    got["k1.png"].tags += ["benchmark", "look again"]
    got["u1.png"].ground_truth = fo.Classification(label="kangaroo")
    edited = ("p1.png", "p2.png", "p3.png", "p4.png", "k1.png", "u1.png")
    for name in edited:
        got[name].save()
    assert fiftyone_pull.pending_samples(known) == sorted(known.by_name[n] for n in edited)
    assert {"check": "pull", "state": "6 images edited in FiftyOne not yet pulled into the library",
            "command": "curator pull"} in status.status(known)["next"]
    result = fiftyone_pull.pull(known)
    assert (result["conflicts"], result["problems"]) == ([], [])
    assert [label_of(known, n) for n in ("p1.png", "p2.png", "p3.png", "u1.png")] == [
        "antelope", "wombat", "unknown", "kangaroo"]
    p4, k1 = image(known, "p4.png"), image(known, "k1.png")
    assert (p4.status, p4.reject_reason, k1.benchmark) == ("rejected", "blurry", True)
    with known.session() as s:
        events = history.events(s, s.get(Image, known.by_name["p1.png"]))
        tag_events = history.events(s, s.get(Image, known.by_name["k1.png"]))
    assert (events[-1]["source"], events[-1]["old"], events[-1]["new"]) == ("fiftyone", "unlabelled", "antelope")
    assert {e["new"] for e in tag_events if e["source"] == "fiftyone"} == {"true", "look again"}
    after = samples(known)
    assert "p4.png" not in after
    assert after["p2.png"].tags == [] and after["p2.png"].ground_truth.label == "wombat"
    assert after["k1.png"].tags == ["split:train", "look again"]
    again = fiftyone_pull.pull(known)  # nothing left to take
    assert again["labels"] == again["rejected"] == again["tagged"] == []
    assert fiftyone_pull.pending_samples(known) == []


def _conflict(lib):
    """k1 (kangaroo) relabelled wombat in the library, antelope in the app."""
    fs.sync(lib)
    sample = samples(lib)["k1.png"]
    with lib.session() as s:
        labels.relabel(s, [s.get(Image, lib.by_name["k1.png"])], "wombat")
    sample.ground_truth = fo.Classification(label="antelope")
    sample.save()


def test_a_conflict_is_listed_and_nothing_overwritten(known):
    _conflict(known)
    refreshed = fs.sync(known)  # a refresh keeps the app's edit for pull to judge
    assert refreshed["kept_edits"] == 1 and samples(known)["k1.png"].ground_truth.label == "antelope"
    result = fiftyone_pull.pull(known)
    assert result["conflicts"] == [{"image_id": known.by_name["k1.png"], "path": str(image(known, "k1.png").path),
                                    "was": "kangaroo", "library": "wombat", "fiftyone": "antelope"}]
    assert label_of(known, "k1.png") == "wombat"
    assert samples(known)["k1.png"].ground_truth.label == "antelope"  # still there to decide on
    resolved = fiftyone_pull.pull(known, resolve="fiftyone")
    assert resolved["labels"] == [known.by_name["k1.png"]] and resolved["conflicts"] == []
    assert label_of(known, "k1.png") == "antelope"
    assert samples(known)["k1.png"].synced_label == "antelope"


def test_a_conflict_resolved_for_the_library(known):
    _conflict(known)
    result = fiftyone_pull.pull(known, resolve="library")
    assert result["labels"] == [] and label_of(known, "k1.png") == "wombat"
    assert samples(known)["k1.png"].ground_truth.label == "wombat"
    assert fiftyone_pull.pull(known)["conflicts"] == []


def test_unknown_class_in_the_app_is_a_problem_not_a_crash(known):
    fs.sync(known)
    sample = samples(known)["p1.png"]
    sample.tags.append("label:gazelle")
    sample.save()
    result = fiftyone_pull.pull(known)
    assert result["problems"] == [{"image_id": known.by_name["p1.png"], "error": result["problems"][0]["error"]}]
    assert "no class 'gazelle'" in result["problems"][0]["error"]
    assert label_of(known, "p1.png") == "unlabelled"
    created = fiftyone_pull.pull(known, create=True)
    assert created["labels"] == [known.by_name["p1.png"]] and label_of(known, "p1.png") == "gazelle"


@pytest.mark.parametrize("damage", ["delete", "drop field", "other library"])
def test_a_lost_or_damaged_dataset_is_rebuilt(known, damage):
    fs.sync(known)
    dataset = fs.open_dataset(known, create=False)
    if damage == "delete":
        dataset.delete()
    elif damage == "drop field":
        dataset.delete_sample_field("curator_sig")
    else:
        dataset.info = {"library": "sqlite:///elsewhere.sqlite"}
        dataset.save()
    result = fs.sync(known)
    assert (result["added"], result["samples"]) == (18, 18)
    assert len(view_names(known, "low-confidence")) == 3


def test_two_libraries_two_databases(known, tmp_path, make_tree):
    from curator.library import init_library, open_library

    fs.sync(known)
    other = tmp_path / "other" / "lib.sqlite"
    init_library(other)
    lib2 = open_library(other)
    ingest.import_paths(lib2, [make_tree({"x.png": 7}, root="x")])
    result = fs.sync(lib2)
    assert (result["dataset"], result["samples"], result["run"]) == ("lib", 1, None)
    assert result["views"] == {"label-conflicts": 0}
    assert fo.list_datasets() == ["lib"]  # its own database
    assert fs.sync(known)["samples"] == 18 and fo.list_datasets() == ["curator"]


def test_cli_browse_and_pull(known, cli):
    out = as_json(cli("browse", "--no-launch", "--json"))
    assert (out["samples"], out["views"]["low-confidence"], out["url"]) == (18, 3, None)
    text = cli("browse", "--no-launch").output
    assert "Saved views: low-confidence (3)" in text and "0 added, 0 updated" in text
    assert "Open it with `curator browse` (the app then serves " in text
    again = cli("browse", "--no-launch", "--run", "r", "--view", "lowest").stdout
    assert "Open it with `curator browse --run r --view lowest` (the app then serves " in again
    assert error(cli("browse", "--no-launch", "--view", "nope")).startswith("Error: no saved view 'nope': there are low-confidence, ")
    assert error(cli("browse", "--no-launch", "--run", "nope")) == "Error: no run named 'nope': see `curator runs`"
    assert error(cli("pull", "--resolve", "mine")) == "Error: --resolve mine: use one of library, fiftyone"
    sample = samples(known)["p2.png"]
    sample.tags.append("label:wombat")
    sample.save()
    pulled = as_json(cli("pull", "--json"))
    assert pulled["labels"] == [known.by_name["p2.png"]] and pulled["sync"]["updated"] == 0
    assert label_of(known, "p2.png") == "wombat"


def test_pull_before_browse_is_a_clear_error(library, cli):
    assert error(cli("pull")) == "Error: no FiftyOne dataset for this library yet: run `curator browse` first"


def test_an_external_database_uri_is_used_as_is(known, tmp_path):
    """FIFTYONE_DATABASE_URI (a MongoDB server of the team's) replaces the embedded database."""
    import os
    import subprocess
    import sys

    import pymongo
    from fiftyone.core.service import DatabaseService

    from browser import free_port

    port = free_port()
    (tmp_path / "mongo").mkdir()
    mongod = subprocess.Popen([DatabaseService.find_mongod(), "--dbpath", str(tmp_path / "mongo"), "--port", str(port),
                               "--bind_ip", "127.0.0.1", "--nounixsocket"], stdout=subprocess.DEVNULL)
    try:
        uri = f"mongodb://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_PRIVATE")}
        env.update(FIFTYONE_DATABASE_URI=uri, CURATOR_DB=known.url.removeprefix("sqlite:///"))
        run = subprocess.run([sys.executable, "-m", "curator", "browse", "--no-launch", "--json"], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert (out["database"], out["samples"]) == (uri, 18)
        client = pymongo.MongoClient(uri)
        assert client["fiftyone"]["datasets"].find_one({"name": "curator"}) is not None
        assert not (known.folder / "fiftyone").exists()  # nothing embedded was started
    finally:
        mongod.terminate()
        mongod.wait(timeout=60)


def test_close_kills_an_app_server_that_does_not_stop(tmp_path):
    """FiftyOne's session.close() waits for its server without a limit; curator's gives up
    after the timeout and kills the server's processes (here one that ignores being asked)."""
    import subprocess
    import sys
    import time

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "--51-service", "server"])

    class Stuck:
        def close(self):
            server.wait()  # as FiftyOne's ServerService.stop does

    t0 = time.monotonic()
    fs.close(Stuck(), timeout=1)
    assert server.poll() is not None and time.monotonic() - t0 < 10


def test_browse_defaults_to_the_run_that_predicted_the_pool(known, cli):
    """A newer run that predicted only a labelled image: browse keeps r, and says why."""
    with known.session() as s:
        newer = Run(name="newer", build_id=s.get(Run, 1).build_id, model="test_resnet", status="done",
                    folder="runs/newer", classes=json.dumps(["kangaroo"]))
        s.add(newer)
    note = "run newer has not predicted the pool: run `curator bulk-identify --run newer`"
    assert (fs.sync(known)["run"], fs.sync(known)["notes"]) == ("r", [note])
    shown = cli("browse", "--no-launch")
    assert "predictions of r)" in shown.stdout and shown.stderr.strip() == f"Note: {note}"
    assert fs.sync(known, "newer")["run"] == "newer"


def test_browse_remote_prints_the_ssh_instructions_once(known, cli, monkeypatch):
    """The real app server; only the wait for Ctrl-C is cut short."""
    import logging
    import signal

    from fiftyone.core.session import Session

    from browser import free_port

    heard = []
    handler = logging.Handler()
    handler.emit = heard.append
    monkeypatch.setattr(Session, "wait", lambda self, wait=3: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own Ctrl-C
    logging.getLogger("fiftyone").addHandler(handler)
    port = free_port()
    try:
        shown = cli("browse", "--remote", "--port", port)
    finally:
        logging.getLogger("fiftyone").removeHandler(handler)
    assert shown.exit_code == 0, shown.output
    said = shown.output + "\n".join(record.getMessage() for record in heard)
    assert said.count("ssh -N -L") == 1
    assert f"From another machine: ssh -N -L {port}:127.0.0.1:{port} USER@THIS-HOST" in shown.stdout


def test_a_moved_image_is_shown_from_where_it_is_now(known, tmp_path):
    import shutil

    with known.session() as s:
        old = s.get(Image, known.by_name["k1.png"]).path
    new = tmp_path / "moved" / "k1.png"
    new.parent.mkdir()
    shutil.copy(old, new)
    ingest.import_paths(known, [new])  # a second location of the same image
    Path(old).unlink()
    fs.sync(known)
    assert samples(known)["k1.png"].filepath == str(new.resolve())


def test_the_database_port_is_checked_to_serve_the_librarys_folder(known, tmp_path):
    import fiftyone.core.odm.database as fod

    fs.connect(known)
    port, folder = fod._db_service.port, str(fiftyone_database.database_dir(known))
    # FiftyOne's internals curator sets: the port it connects to, kept between connections.
    assert fod._connection_kwargs["port"] == port and isinstance(fod._db_service.folder, str)
    assert fiftyone_database._serves(port, folder)
    assert not fiftyone_database._serves(port, str(tmp_path / "elsewhere"))  # another folder's mongod: not ours
    assert not fiftyone_database._serves(1, folder, wait_s=1)  # nothing listens there
