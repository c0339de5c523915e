"""`curator import`: labels from folders and options, duplicates, bad files, resume after a kill."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from curator import image_probe, ingest
from curator.errors import InvalidInput
from curator.library import make_engine, resolve_url
from curator.library.models import Image, ImageLocation, ImportBatch, LabelEvent

from conftest import as_json, write_image


def labels_by_name(lib) -> dict[str, str]:
    with lib.session() as s:
        return {Path(im.path).name: im.label for im in s.scalars(select(Image))}


def test_folder_layout_gives_class_subclass_unknown_and_unlabelled(library, make_tree):
    root = make_tree({
        "kangaroo/joey/a.png": 1, "kangaroo/adult/b.png": 2, "kangaroo/c.png": 3,
        "emu/d.png": 4, "unknown/e.png": 5, "Unknown/sub/f.png": 6, "g.png": 7,
    })
    summary = ingest.import_paths(library, [root], labels_from_folders=True)
    assert (summary.files, summary.added, summary.duplicates) == (7, 7, 0)
    assert labels_by_name(library) == {
        "a.png": "kangaroo/joey", "b.png": "kangaroo/adult", "c.png": "kangaroo",
        "d.png": "emu", "e.png": "unknown", "f.png": "unknown", "g.png": "unlabelled",
    }
    assert summary.added_by_label["kangaroo/joey"] == 1


@pytest.mark.parametrize(
    "options, label, flags",
    [
        ({}, "unlabelled", (False, False, False)),
        ({"label": "kangaroo"}, "kangaroo", (False, False, False)),
        ({"label": "kangaroo/joey"}, "kangaroo/joey", (False, False, False)),
        ({"unknown": True}, "unknown", (False, False, False)),
        ({"label": "emu", "staged": True}, "emu", (True, False, False)),
        ({"label": "emu", "synthetic": True, "benchmark": True}, "emu", (False, True, True)),
    ],
)
def test_options_label_and_flag_new_images(library, make_tree, options, label, flags):
    root = make_tree({"x/a.png": 1, "b.png": 2})
    ingest.import_paths(library, [root], source="camera-3", **options)
    with library.session() as s:
        images = s.scalars(select(Image)).all()
        assert [im.label for im in images] == [label, label]
        assert {(im.staged, im.synthetic, im.benchmark) for im in images} == {flags}
        assert {im.source for im in images} == {"camera-3"}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"staged": True, "synthetic": True}, "--staged and --synthetic exclude each other"),
        ({"labels_from_folders": True, "label": "emu"}, "--labels-from-folders takes labels from folders"),
        ({"label": "emu", "unknown": True}, "--class and --unknown exclude each other"),
        ({"label": "unlabelled/x"}, "'unlabelled' is a label state, not a class name"),
    ],
)
def test_conflicting_options_are_refused(library, make_tree, options, message):
    root = make_tree({"a.png": 1})
    with pytest.raises(InvalidInput, match=message):
        ingest.import_paths(library, [root], **options)


@pytest.mark.parametrize("fmt, suffix", [
    ("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("GIF", ".gif"), ("BMP", ".bmp"),
    ("TIFF", ".tiff"),
])
def test_every_supported_format_is_read(library, tmp_path, fmt, suffix):
    path = write_image(tmp_path / "in" / f"a{suffix}", size=(60, 30), seed=3, fmt=fmt)
    summary = ingest.import_paths(library, [path])
    assert summary.added == 1 and not summary.rejected
    with library.session() as s:
        im = s.scalar(select(Image))
        assert (im.format, im.width, im.height, im.bytes) == (fmt, 60, 30, path.stat().st_size)
        assert im.phash is not None and len(im.sha256) == 64


def test_same_bytes_twice_is_one_image_with_two_locations(library, make_tree):
    root = make_tree({"emu/a.png": 1, "emu/b.png": 2})
    shutil.copy(root / "emu" / "a.png", root / "emu" / "a-copy.png")
    summary = ingest.import_paths(library, [root], labels_from_folders=True)
    assert (summary.added, summary.duplicates, summary.conflicts) == (2, 1, [])
    with library.session() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 2
        im = s.scalar(select(Image).where(Image.path.endswith("a-copy.png") | Image.path.endswith("/a.png")))
        assert sorted(Path(loc.path).name for loc in im.locations) == ["a-copy.png", "a.png"]


def test_same_bytes_under_another_class_is_a_reported_conflict(library, make_tree):
    root = make_tree({"emu/a.png": 1})
    (root / "kangaroo").mkdir()
    shutil.copy(root / "emu" / "a.png", root / "kangaroo" / "z.png")
    summary = ingest.import_paths(library, [root], labels_from_folders=True)
    assert summary.conflicts == [(str(root / "kangaroo" / "z.png"), "kangaroo", "emu")]
    assert labels_by_name(library) == {"a.png": "emu"}


def test_reimport_is_a_no_op(library, make_tree):
    root = make_tree({f"emu/{i}.png": i for i in range(5)})
    ingest.import_paths(library, [root], labels_from_folders=True)
    again = ingest.import_paths(library, [root], labels_from_folders=True)
    assert (again.added, again.duplicates, again.unchanged) == (0, 0, 5)
    with library.session() as s:
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == 5
        assert s.scalar(select(func.count()).select_from(ImageLocation)) == 5


def test_an_existing_image_keeps_its_label_when_found_again(library, make_tree, tmp_path):
    root = make_tree({"a.png": 1})
    ingest.import_paths(library, [root])  # unlabelled, from the pool
    other = tmp_path / "labelled" / "emu"
    other.mkdir(parents=True)
    shutil.copy(root / "a.png", other / "a.png")
    summary = ingest.import_paths(library, [other.parent], labels_from_folders=True)
    # Never relabelled by an import; the folder's opinion is reported, and kept on the location.
    assert summary.duplicates == 1
    assert summary.conflicts == [(str(other / "a.png"), "emu", "unlabelled")]
    assert labels_by_name(library) == {"a.png": "unlabelled"}


# -- bad files ------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions: a decompression bomb in a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    img = PILImage.effect_noise((256, 256), 64).convert("RGB")
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def _corrupt_png() -> bytes:
    buf = io.BytesIO()
    PILImage.effect_noise((128, 128), 64).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # garbage inside the pixel data
    return bytes(data)


BAD_FILES = {
    "empty.png": (b"", "empty file (0 bytes)"),
    "text.jpg": (b"just some text, not pixels\n" * 20, "not an image: no image format recognises this file"),
    "truncated.jpg": (_truncated_jpeg(), "corrupt or truncated: "),
    "bomb.png": (_png_header_only(30000, 30000), "decompression bomb: "),
    "corrupt.png": (_corrupt_png(), "corrupt or truncated: "),
}


def test_bad_files_are_rejected_with_a_reason_and_never_stop_the_batch(library, make_tree):
    root = make_tree({"emu/good1.png": 1, "emu/good2.png": 2})
    for name, (data, _) in BAD_FILES.items():
        (root / "emu" / name).write_bytes(data)
    summary = ingest.import_paths(library, [root], labels_from_folders=True)
    assert summary.added == 2
    reasons = {Path(p).name: r for p, r in summary.rejected}
    assert set(reasons) == set(BAD_FILES)
    for name, (_, expected) in BAD_FILES.items():
        assert reasons[name].startswith(expected), (name, reasons[name])
    with library.session() as s:
        rejected = s.scalars(select(Image).where(Image.status == "rejected")).all()
        assert {Path(im.path).name for im in rejected} == set(BAD_FILES)
        assert all(im.label == "emu" and im.width is None for im in rejected)


def test_bad_files_listed_by_the_cli(cli, library, make_tree):
    root = make_tree({"emu/good.png": 1})
    (root / "emu" / "empty.png").write_bytes(b"")
    r = cli("import", root, "--labels-from-folders")
    assert r.exit_code == 0
    assert "Imported 1 new images from 2 files" in r.stdout
    assert f"Rejected:\n  {root / 'emu' / 'empty.png'}: empty file (0 bytes)" in r.stdout


def test_exif_orientation_is_recorded(library, tmp_path):
    img = PILImage.new("RGB", (40, 20), (200, 10, 10))
    exif = PILImage.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    ingest.import_paths(library, [path])
    with library.session() as s:
        assert s.scalar(select(Image.exif_orientation)) == 6


def test_near_duplicates_have_close_perceptual_hashes(library, tmp_path):
    original = write_image(tmp_path / "in" / "a.png", size=(160, 120), seed=9)
    PILImage.open(original).convert("RGB").save(tmp_path / "in" / "a.jpg", quality=80)
    PILImage.open(original).resize((80, 60)).save(tmp_path / "in" / "a-small.png")
    write_image(tmp_path / "in" / "other.png", size=(160, 120), seed=10)
    ingest.import_paths(library, [tmp_path / "in"])
    with library.session() as s:
        h = {Path(im.path).name: im.phash & (2**64 - 1) for im in s.scalars(select(Image))}
    dist = lambda a, b: bin(h[a] ^ h[b]).count("1")  # noqa: E731
    assert dist("a.png", "a.jpg") <= 6 and dist("a.png", "a-small.png") <= 6
    assert dist("a.png", "other.png") > 12


def test_transparent_images_are_hashed_as_seen_on_white(library, tmp_path):
    # Same visible picture, different colours under the fully transparent pixels.
    seen = write_image(tmp_path / "in" / "x.png", size=(96, 96), seed=4)
    a = PILImage.open(seen).convert("RGBA")
    mask = PILImage.new("L", a.size, 0)
    mask.paste(255, (24, 24, 72, 72))
    a.putalpha(mask)
    b = PILImage.new("RGBA", a.size, (0, 255, 0, 0))
    b.paste(a, (0, 0), a)
    a.save(tmp_path / "in" / "a.png")
    b.save(tmp_path / "in" / "b.png")
    seen.unlink()
    PILImage.alpha_composite(PILImage.new("RGBA", a.size, "white"), a).convert("RGB").save(
        tmp_path / "in" / "c.jpg", quality=90)
    ingest.import_paths(library, [tmp_path / "in"])
    with library.session() as s:
        h = {Path(im.path).name: im.phash & (2**64 - 1) for im in s.scalars(select(Image))}
    assert h["a.png"] == h["b.png"]
    assert bin(h["a.png"] ^ h["c.jpg"]).count("1") <= 4


def test_missing_path_is_a_one_line_error(cli, library, tmp_path):
    r = cli("import", tmp_path / "nope")
    assert r.exit_code == 1
    assert r.stderr == f"Error: no such file or folder: {tmp_path / 'nope'}\n"


def test_import_json_summary(cli, library, make_tree):
    root = make_tree({"emu/a.png": 1, "b.png": 2})
    data = as_json(cli("import", root, "--labels-from-folders", "--json"))
    assert data["added"] == 2 and data["added_by_label"] == {"emu": 1, "unlabelled": 1}


def test_pool_of_workers_gives_the_same_result_as_one(new_db, make_tree):
    from curator.library import init_library, open_library

    root = make_tree({f"c{i % 3}/{i}.png": i for i in range(ingest.SERIAL_BELOW + 20)})
    dumps = []
    for workers in (1, 2):
        path = new_db(f"w{workers}")
        init_library(path)
        lib = open_library(path)
        ingest.import_paths(lib, [root], labels_from_folders=True, workers=workers, commit_every=16)
        lib.close()
        dumps.append(dump(path))
    assert dumps[0] == dumps[1]


# -- interrupted imports ---------------------------------------------------------------------


def query(db: str, sql: str) -> list[tuple]:
    """Rows of ``sql`` on the library at ``db``, through a connection of its own."""
    engine = make_engine(resolve_url(db))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def dump(db: str) -> dict:
    """Everything an import decides, without batch ids and times.

    Image ids are replaced by their rank: PostgreSQL never hands back the sequence values of a
    transaction that a kill rolled back, so a resumed import may skip a few ids (SQLite does not).
    """
    q = lambda sql: query(db, sql)  # noqa: E731
    images = q(
        "SELECT i.id, sha256, phash, width, height, format, mode, bytes, path, label_state,"
        " c.name, sc.name, status, reject_reason, staged, synthetic, benchmark"
        " FROM images i LEFT JOIN classes c ON c.id = i.class_id"
        " LEFT JOIN subclasses sc ON sc.id = i.subclass_id ORDER BY i.id"
    )
    rank = {row[0]: n for n, row in enumerate(images, 1)}
    return {
        "images": [(rank[row[0]], *row[1:]) for row in images],
        "locations": [
            (path, rank[image_id], label)
            for path, image_id, label in q("SELECT path, image_id, folder_label FROM image_locations ORDER BY path")
        ],
        "history": [
            (rank[row[0]], *row[1:])
            for row in q("SELECT image_id, action, field, old_value, new_value, source FROM label_events"
                         " ORDER BY image_id, id")
        ],
        "classes": q("SELECT name FROM classes ORDER BY name"),
    }


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory) -> Path:
    """Enough real images that an import takes a moment: 360 images, 640x480, 6 classes."""
    root = tmp_path_factory.mktemp("big")
    for i in range(360):
        write_image(root / f"class{i % 6}" / f"img{i:04d}.png", size=(640, 480), seed=i)
    (root / "class0" / "empty.png").write_bytes(b"")
    return root


def _start_import(db_path, root) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "curator", "import", str(root), "--labels-from-folders",
         "--commit-every", "8", "--workers", "2", "--db", str(db_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_some_images(db, proc, at_least=16) -> int:
    engine = make_engine(resolve_url(db))
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                with engine.connect() as conn:
                    n = conn.execute(text("SELECT count(*) FROM images")).scalar_one()
            except OperationalError:  # SQLite: locked for a moment
                n = 0
            if n >= at_least:
                return n
            time.sleep(0.005)
    finally:
        engine.dispose()
    raise AssertionError("the import finished or stalled before it could be interrupted")


def test_should_stop_ends_the_import_early_and_a_rerun_finishes_it(library, make_tree):
    root = make_tree({f"c/{i}.png": i for i in range(40)})
    seen = []
    first = ingest.import_paths(library, [root], commit_every=8, workers=1,
                                should_stop=lambda: seen.append(1) or len(seen) >= 10)
    assert first.interrupted and 0 < first.added < 40
    rest = ingest.import_paths(library, [root])
    assert not rest.interrupted and (rest.unchanged, rest.added) == (first.added, 40 - first.added)
    with library.session() as s:
        assert [b.status for b in s.scalars(select(ImportBatch).order_by(ImportBatch.id))] == ["interrupted", "done"]


def _imported(db_path, root, cli_env):
    r = subprocess.run(
        [sys.executable, "-m", "curator", "import", str(root), "--labels-from-folders",
         "--db", str(db_path), "--json"],
        capture_output=True, text=True, env=cli_env,
    )
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def cli_env():
    return {**os.environ, "CURATOR_USER": "tester"}


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -9), (signal.SIGTERM, 130), (signal.SIGINT, 130)],
                         ids=["kill", "term", "ctrl-c"])
def test_interrupted_import_resumes_to_the_same_library(new_db, big_tree, cli_env, sig, code):
    from curator.library import init_library

    whole, broken = new_db("whole"), new_db("broken")
    init_library(whole)
    init_library(broken)
    _imported(whole, big_tree, cli_env)

    proc = _start_import(broken, big_tree)
    saved = _wait_for_some_images(broken, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if code == 130:
        assert "Interrupted: every image recorded so far is kept" in err
        assert "Traceback" not in err
    [(partial,)] = query(broken, "SELECT count(*) FROM images")
    assert saved <= partial < 361

    resumed = json.loads(_imported(broken, big_tree, cli_env).stdout)
    # The empty file (the first one read) was rejected as unreadable: every import reads it again.
    assert resumed["unchanged"] == partial - 1 and resumed["rejected"] == [[str(big_tree / "class0" / "empty.png"),
                                                                           "empty file (0 bytes)"]]
    assert dump(broken) == dump(whole)
    statuses = [r[0] for r in query(broken, "SELECT status FROM import_batches ORDER BY id")]
    assert statuses == ["interrupted", "done"]
    if "://" not in broken:  # SQLite: the killed import's lock file went with its batch
        assert not list(Path(broken).parent.glob("*.lock"))


@pytest.mark.parametrize("files, ignored", [({}, 0), ({"notes.txt": b"hi", "data.csv": b"1,2"}, 2)],
                         ids=["empty", "no-images"])
def test_an_import_that_finds_no_image_says_so(cli, library, tmp_path, files, ignored):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    r = cli("import", folder)
    assert r.exit_code == 0 and "Imported 0 new images from 0 files" in r.stdout
    assert r.stderr == (f"Warning: no image files found in {folder} ({ignored} other files ignored); curator imports"
                        " .avif .bmp .dib .gif .heic .heif .jpe .jpeg .jpg .png .tif .tiff .webp\n")


def test_a_file_unreadable_then_is_read_again_by_the_next_import(library, tmp_path, monkeypatch):
    """A reader installed since (here: a decoder that failed and works now) readmits the image."""
    from curator import decode

    path = write_image(tmp_path / "in" / "a.png", seed=1)
    real = decode.to_rgb
    monkeypatch.setattr(decode, "to_rgb", lambda img: (_ for _ in ()).throw(OSError("no reader")))
    first = ingest.import_paths(library, [path])
    assert first.rejected == [(str(path), "corrupt or truncated: no reader")]
    monkeypatch.setattr(decode, "to_rgb", real)
    again = ingest.import_paths(library, [path])
    assert (again.readmitted, again.rejected, again.unchanged) == (1, [], 0)
    with library.session() as s:
        im = s.scalar(select(Image))
        assert (im.status, im.reject_reason, im.width) == ("active", None, 48)
        actions = [e.action for e in s.scalars(select(LabelEvent).order_by(LabelEvent.id))]
    assert actions == ["import", "reject", "readmit"]
    assert ingest.import_paths(library, [path]).unchanged == 1  # read once it is good


def _slow_to_start() -> None:
    import time

    time.sleep(1.0)  # a worker the machine is slow to schedule, still holding the parent's handler
    image_probe.quiet_worker()


def test_a_pool_closed_before_its_workers_are_ready_still_stops():
    # The CLI's graceful-stop handler is the parent's SIGTERM handler when the pool forks; a
    # SIGTERM that reached a worker before it set SIG_DFL used to be dropped, and the import
    # waited for that worker forever (seen under load).
    import signal
    import time

    old = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        pool = image_probe.worker_pool(2, initializer=_slow_to_start)
        started = time.monotonic()
        pool.terminate()
        pool.join()
        assert time.monotonic() - started < 30
    finally:
        signal.signal(signal.SIGTERM, old)
