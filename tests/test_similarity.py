"""`curator similar`, `find --unfamiliar` and `find --outliers` on a library whose geometry is known.

Three families of real images, embedded by the ImageNet EfficientNet-Lite0 (`--weights lite0`,
offline) at 64 px: red pictures, green pictures (a red or green background with four darker
blobs) and yellow pictures with blue blobs, the odd family. Labelled: 6 red (plus one green
picture labelled red, the planted label error) and 6 green; the pool: 4 of each family, the odd
one being the class no labelled image shows; 2 unknown red pictures. Within a family the images
are nearer (cosine 0.79 or more) than across families (0.73 or less).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import random
import shutil

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

from conftest import BACKEND, as_json, error, ids
from curator import embeddings, filters, ingest, similarity
from curator.errors import CuratorError
from curator.library import init_library, open_library

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "odd": (240, 220, 40),
           "violet": (130, 50, 190)}  # test_discover's second new family
LAYOUT = {  # folder: (file name prefix, the family of each file): l-red0.png, ..., p-odd8.png
    "lib/red": ("l", ["red"] * 6 + ["green"]), "lib/green": ("l", ["green"] * 6), "lib/unknown": ("u", ["red"] * 2),
    "pool": ("p", ["red"] * 4 + ["green"] * 4 + ["odd"] * 4),
}
MISLABELLED = "l-green6.png"
ODD = {f"p-odd{i}.png" for i in range(8, 12)}


def picture(family: str, seed: int, size: int = 64) -> PILImage.Image:
    """One picture of a family: its colours and four blobs where the family puts them, each
    picture's colours jittered and blobs moved a few pixels. (Blobs placed at random per picture
    made families overlap under Lite0: this layout keeps every within-family similarity above
    every cross-family one, by 0.09 or more over 60 pictures.)"""
    rng, layout = random.Random(seed), random.Random(family)

    def jitter(colour):
        return tuple(max(0, min(255, v + rng.randint(-15, 15))) for v in colour)

    colour = COLOURS[family]
    img = PILImage.new("RGB", (size, size), jitter(colour))
    draw = ImageDraw.Draw(img)
    dx, dy = rng.randint(-4, 4), rng.randint(-4, 4)
    for _ in range(4):
        x, y, r = layout.randint(12, size - 12) + dx, layout.randint(12, size - 12) + dy, layout.randint(5, 9)
        blob = (30, 40, 200) if family == "odd" else tuple(v // 2 for v in colour)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=jitter(blob))
    return img


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    root, seed = tmp_path_factory.mktemp("families"), 0
    for folder, (prefix, kinds) in LAYOUT.items():
        for i, family in enumerate(kinds):
            seed += 1
            path = root / folder / f"{prefix}-{family}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            picture(family, seed).save(path)
    return root


@pytest.fixture(scope="module")
def cached_backbone():
    """Lite0 made once for the module (8 s), for the tests that embed."""
    return functools.cache(embeddings.backbone)


def _import(lib, families):
    ingest.import_paths(lib, [families / "lib"], labels_from_folders=True)
    ingest.import_paths(lib, [families / "pool"])
    lib.by_name = ids(lib)
    return lib


@pytest.fixture(scope="module")
def template(tmp_path_factory, families, cached_backbone, request):
    """The families imported and embedded by Lite0 at 64 px once for the module (embedder
    tf_efficientnet_lite0; its index saved beside the library): each test gets a copy."""
    home = tmp_path_factory.mktemp("similarity")
    db = str(home / "curator.sqlite") if BACKEND == "sqlite" else (
        request.getfixturevalue("pg_server").create_database("similarity"))
    init_library(db)
    lib = _import(open_library(db, home=home), families)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embeddings, "backbone", cached_backbone)
        summary = embeddings.embed(lib, weights="lite0", pool="all", size=64, workers=0)
    assert summary.embedded == 27 and not summary.errors
    similarity.similar(lib, ["1"], k=1)  # the index, saved: the copies read it
    lib.engine.dispose()  # a PostgreSQL template has no connections
    yield lib
    lib.close()


@pytest.fixture
def imported(library, families):
    return _import(library, families)


@pytest.fixture
def embedded(template, cli, db_path, cached_backbone, monkeypatch, request):
    """A private copy of ``template`` (its folder too), which `cli` and the test change freely."""
    if BACKEND == "sqlite":
        shutil.copytree(template.folder, db_path.parent)
        db = str(db_path)
    else:
        shutil.copytree(template.folder, db_path.parent, dirs_exist_ok=True)
        template.engine.dispose()
        db = request.getfixturevalue("pg_server").create_database(template="similarity")
    monkeypatch.setenv("CURATOR_DB", db)
    monkeypatch.setattr(embeddings, "backbone", cached_backbone)
    lib = open_library(db)
    lib.by_name = template.by_name
    yield lib
    lib.close()


def names(lib, result) -> list[str]:
    back = {v: k for k, v in lib.by_name.items()}
    return [back[r["image_id"]] for r in result["rows"]]


def family(name: str) -> str:
    return name.split("-")[1].rstrip("0123456789.png")


# -- similar --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seeds, pool, k, first", [
    (["p-red0.png"], "unlabelled", 3, {"p-red1.png", "p-red2.png", "p-red3.png"}),
    (["p-green4.png"], "unlabelled", 3, {"p-green5.png", "p-green6.png", "p-green7.png"}),
    (["p-red0.png", "p-red1.png"], "unlabelled", 2, {"p-red2.png", "p-red3.png"}),
    (["p-red0.png"], "unknown", 50, {"u-red0.png", "u-red1.png"}),  # the whole pool: fewer than k
    (["p-odd8.png"], "unlabelled", 3, {"p-odd9.png", "p-odd10.png", "p-odd11.png"}),
])
def test_similar_gives_the_seeds_family_first(embedded, seeds, pool, k, first):
    result = similarity.similar(embedded, [str(embedded.by_name[s]) for s in seeds], pool=pool, k=k)
    rows = result["rows"]
    assert set(names(embedded, result)) == first
    assert [r["similarity"] for r in rows] == sorted((r["similarity"] for r in rows), reverse=True)
    assert result["embedder"] == "tf_efficientnet_lite0" and result["total"] == len(rows)


@pytest.mark.parametrize("pool, labels", [
    ("unlabelled", {"unlabelled"}), ("labelled", {"red", "green"}), ("unknown", {"unknown"}),
    ("all", {"unlabelled", "red", "green", "unknown"}),
])
def test_similar_keeps_to_the_pool_and_leaves_out_the_seeds(embedded, pool, labels):
    seeds = [embedded.by_name["p-red0.png"], embedded.by_name["l-red0.png"]]
    result = similarity.similar(embedded, [str(i) for i in seeds], pool=pool, k=50)
    assert {r["label"] for r in result["rows"]} == labels
    assert not set(seeds) & {r["image_id"] for r in result["rows"]}
    wanted = {"unlabelled": 11, "labelled": 12, "unknown": 2, "all": 25}[pool]  # 27 images less the seeds
    assert result["total"] == wanted


def test_similar_k_and_a_pool_that_needs_widening(embedded):
    # The unknown images are 2 of 27: the first fetch (4 * k + seeds) holds them only by luck,
    # the widening finds them for certain.
    result = similarity.similar(embedded, [str(embedded.by_name["p-odd8.png"])], pool="unknown", k=1)
    assert [family(n) for n in names(embedded, result)] == ["red"]
    assert len(similarity.similar(embedded, [str(embedded.by_name["p-odd8.png"])], k=5)["rows"]) == 5


def test_similar_sees_images_embedded_later(embedded, tmp_path):
    picture("odd", 999).save(tmp_path / "late.png")
    ingest.import_paths(embedded, [tmp_path / "late.png"])
    embeddings.embed(embedded, weights="lite0", pool="all", size=64, workers=0)
    late = ids(embedded)["late.png"]
    result = similarity.similar(embedded, [str(embedded.by_name["p-odd8.png"])], k=4)
    assert late in [r["image_id"] for r in result["rows"]]


def test_similar_cli_formats(embedded, cli):
    seed = embedded.by_name["p-red0.png"]
    table = cli("similar", seed, "--k", 3)
    assert table.exit_code == 0, table.output
    assert "Similarity" in table.stdout and "3 images (embeddings of tf_efficientnet_lite0)." in table.stdout
    data = as_json(cli("similar", seed, "--k", 3, "--json"))
    assert {r["image_id"] for r in data["rows"]} == {embedded.by_name[f"p-red{i}.png"] for i in (1, 2, 3)}
    rows = list(csv.reader(io.StringIO(cli("similar", seed, "--k", 3, "--csv").stdout)))
    assert rows[0] == ["image_id", "similarity", "label", "path"] and len(rows) == 4
    paths = cli("similar", seed, "--k", 3, "--paths").stdout.splitlines()
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == ["p-red1.png", "p-red2.png", "p-red3.png"]


def test_similar_actions_go_to_history(embedded, cli):
    seed = embedded.by_name["p-red0.png"]
    data = as_json(cli("similar", seed, "--k", 3, "--label", "red", "--json"))
    assert sorted(data["action"]["changed"]) == sorted(embedded.by_name[f"p-red{i}.png"] for i in (1, 2, 3))
    events = as_json(cli("history", embedded.by_name["p-red1.png"], "--json"))
    assert (events[-1]["new"], events[-1]["detail"]) == ("red", "curator similar, embedder tf_efficientnet_lite0")
    data = as_json(cli("similar", seed, "--k", 2, "--pool", "unknown", "--tag", "reds?", "--json"))
    assert len(data["action"]["changed"]) == 2
    assert len(filters.find(embedded, filters.Query(tag="reds?", unfamiliar=True, label="unknown"))["rows"]) == 2


# -- find --unfamiliar / --outliers ---------------------------------------------------------------


def test_unfamiliar_ranks_the_class_no_labelled_image_shows_first(embedded):
    result = filters.find(embedded, filters.Query(unfamiliar=True))
    shown = names(embedded, result)
    assert set(shown[:4]) == ODD and len(shown) == result["total"] == 12
    assert result["run"] is None and result["notes"] == []
    scores = [r["score"] for r in result["rows"]]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] < scores[0] <= 1


@pytest.mark.parametrize("query, expected", [
    (dict(limit=2, offset=1), 2),  # a page of the same order
    (dict(label="unknown"), 2),
    (dict(label="green"), 6),  # labelled images: each one's nearest other labelled image
])
def test_unfamiliar_composes(embedded, query, expected):
    everything = names(embedded, filters.find(embedded, filters.Query(unfamiliar=True, label=query.get("label"))))
    result = filters.find(embedded, filters.Query(unfamiliar=True, **query))
    offset = query.get("offset", 0)
    assert names(embedded, result) == everything[offset:offset + expected]


@pytest.mark.parametrize("query", [dict(predicted="red"), dict(label="red"), dict()])
def test_outliers_rank_the_mislabelled_image_first(embedded, query):
    result = filters.find(embedded, filters.Query(outliers=True, **query))
    shown = names(embedded, result)
    assert shown[0] == MISLABELLED
    assert len(shown) == (7 if query else 13)
    assert set(r["label"] for r in result["rows"]) == ({"red"} if query else {"red", "green"})


def test_unfamiliar_reads_a_run_when_an_option_needs_one(embedded):
    """--class with --unfamiliar filters on a run's predictions: the rows show them too."""
    from curator import splits
    from curator.library.models import Prediction, Run, SplitBuild

    splits.build(embedded, min_count=1, name="b", val=0.0, test=0.0)
    with embedded.session() as s:
        run = Run(name="r", build_id=s.query(SplitBuild).filter_by(name="b").one().id, model="test_resnet",
                  status="done", folder="runs/r", classes=json.dumps(["green", "red"]))
        s.add(run)
        s.flush()
        for name, image_id in embedded.by_name.items():
            if name.startswith("p-"):  # the odd family looks green to this run
                predicted = "red" if "red" in name else "green"
                s.add(Prediction(run_id=run.id, image_id=image_id, predicted=predicted, confidence=0.5,
                                 top_k=json.dumps([[predicted, 0.5]])))
    result = filters.find(embedded, filters.Query(unfamiliar=True, predicted="green"))
    assert result["run"] == "r" and result["total"] == 8
    assert set(names(embedded, result)[:4]) == ODD
    assert {(r["predicted"], r["confidence"]) for r in result["rows"]} == {("green", 0.5)}
    assert result["detail"] == "curator find --unfamiliar, embedder tf_efficientnet_lite0, run r"


def test_find_cli_shows_a_score_and_acts(embedded, cli):
    out = cli("find", "--unfamiliar", "--limit", 4)
    assert out.exit_code == 0, out.output
    assert "Score" in out.stdout and "4 of 12 images (embeddings of tf_efficientnet_lite0)." in out.stdout
    rows = list(csv.reader(io.StringIO(cli("find", "--outliers", "--class", "red", "--limit", 1, "--csv").stdout)))
    assert rows[0] == ["image_id", "label", "predicted", "confidence", "split", "score", "path"]
    assert rows[1][0] == str(embedded.by_name[MISLABELLED])
    data = as_json(cli("find", "--outliers", "--class", "red", "--limit", 1, "--set-label", "green", "--json"))
    assert data["action"]["changed"] == [embedded.by_name[MISLABELLED]]
    events = as_json(cli("history", embedded.by_name[MISLABELLED], "--json"))
    assert (events[-1]["old"], events[-1]["new"]) == ("red", "green")
    assert events[-1]["detail"] == "curator find --outliers, embedder tf_efficientnet_lite0"
    data = as_json(cli("find", "--unfamiliar", "--limit", 4, "--reject", "not an animal", "--json"))
    assert {embedded.by_name[n] for n in ODD} == set(data["action"]["changed"])


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["similar", "9999"], "Error: no image with id 9999"),
    (["similar", "p-red0.png", "--pool", "rejected"], "Error: --pool rejected: use one of unlabelled, unknown,"
                                                      " labelled, all"),
    (["similar", "p-red0.png", "--embedder", "nope"], "Error: no embedder or run named 'nope': `curator embed"
     " --weights lite0` embeds with a pretrained backbone, `curator embedders` lists what there is"),
    (["find", "--unfamiliar", "--outliers"], "Error: give one of --unfamiliar or --outliers"),
    (["find", "--outliers", "--unknown"], "Error: --outliers looks at labelled images, not unknown:"
                                          " --unfamiliar ranks the others"),
    (["find", "--unfamiliar", "--lowest", "3"], "Error: --unfamiliar sorts by its own score: drop --lowest"
                                                " (--limit N shows the first N)"),
    (["find", "--embedder", "x"], "Error: --embedder picks the vectors of --unfamiliar or --outliers:"
                                  " give one of them"),
    (["find", "--outliers", "--class", "blue"], "Error: no class 'blue' (known: green, red)"),
    (["find", "--unfamiliar", "--accept"], "Error: --accept takes a run's predictions and there are none here:"
                                           " give --run, or label with --set-label CLASS"),
])
def test_errors_are_one_line(embedded, cli, args, message):
    args = [str(embedded.by_name.get(a, a)) for a in args]
    assert error(cli(*args)) == message


@pytest.mark.parametrize("args", [["similar", "1"], ["find", "--unfamiliar"], ["find", "--outliers"]])
def test_no_embeddings_yet_says_what_to_run(imported, cli, args):
    assert error(cli(*args)) == ("Error: no embedder or run named 'latest': `curator embed --weights lite0`"
                                 " embeds with a pretrained backbone, `curator embedders` lists what there is")


def test_images_without_a_vector_say_what_to_run(imported, cached_backbone, monkeypatch, cli):
    monkeypatch.setattr(embeddings, "backbone", cached_backbone)
    embeddings.embed(imported, weights="lite0", pool="unlabelled", size=64, workers=0)
    hint = "run `curator embed --model tf_efficientnet_lite0 --weights lite0 --size 64 --pool labelled`"
    assert error(cli("find", "--unfamiliar")) == ("Error: no labelled image has an embedding under"
                                                  f" tf_efficientnet_lite0: {hint}")
    seed = imported.by_name["l-red0.png"]
    assert error(cli("similar", seed)) == (f"Error: image {seed} has no embedding under tf_efficientnet_lite0:"
                                           f" {hint.replace('labelled', 'all')}")
    result = cli("find", "--outliers")  # no labelled vectors: nothing to rank, and a note says why
    assert result.exit_code == 0 and "13 of 13 matches have no embedding" in result.stderr


def test_two_actions_are_refused(embedded, cli):
    result = cli("similar", embedded.by_name["p-red0.png"], "--tag", "a", "--unknown")
    assert result.exit_code == 2 and "give at most one action" in result.output


def test_the_library_raises_what_the_cli_prints(embedded):
    with pytest.raises(CuratorError, match="--k 0: give 1 or more"):
        similarity.similar(embedded, ["1"], k=0)
    with pytest.raises(CuratorError, match="name one or more seed images"):
        similarity.similar(embedded, [])
    assert json.loads(json.dumps(filters.find(embedded, filters.Query(outliers=True, limit=1))))["total"] == 13
