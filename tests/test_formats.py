"""Every mode and format Pillow opens imports, predicts and trains; bombs are judged by bytes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import features
from sqlalchemy import select

from conftest import TINY, write_image
from curator import decode, image_probe, ingest, predict, splits, train
from curator.data import load_pixels
from curator.library.models import Image


def _grey(base):
    return np.asarray(base.convert("L"))


def _frames(base, path, fmt):
    other = PILImage.effect_noise(base.size, 40).convert("RGB")
    base.save(path, fmt, save_all=True, append_images=[other, base.rotate(90)], duration=100, loop=0)


def _exif_rotated(base, path):
    exif = PILImage.Exif()
    exif[0x0112] = 6
    base.rotate(90, expand=True).save(path, "JPEG", quality=95, exif=exif)


def _palette_transparent(base, path):
    """The background colour transparent; returns what a viewer sees: that colour white."""
    img = base.convert("P", palette=PILImage.Palette.ADAPTIVE, colors=32)
    img.save(path, "PNG", transparency=img.getpixel((0, 0)))
    seen = np.array(img.convert("RGB"))
    seen[np.array(img) == img.getpixel((0, 0))] = 255
    return PILImage.fromarray(seen)


# Where a reader is missing, its format is skipped (and `curator import --help` says so).
MISSING = {"picture.heic": not decode.available_formats()["HEIF"], "picture.avif": not features.check("avif")}

# name: (how to write the picture ``base`` (RGB) at ``path``, the mode Pillow opens it in)
KINDS = {
    "palette.png": (lambda b, p: b.convert("P", palette=PILImage.Palette.ADAPTIVE).save(p), "P"),
    "palette-transparent.png": (_palette_transparent, "P"),
    "animated.gif": (lambda b, p: _frames(b, p, "GIF"), "P"),
    "one-bit.bmp": (lambda b, p: b.convert("1").save(p), "1"),
    "grey16.png": (lambda b, p: PILImage.fromarray(_grey(b).astype(np.uint16) * 257).save(p), "I;16"),
    "float.tiff": (lambda b, p: PILImage.fromarray(_grey(b).astype(np.float32) / 255).save(p), "F"),
    "cmyk.jpg": (lambda b, p: b.convert("CMYK").save(p, quality=95), "CMYK"),
    "la.png": (lambda b, p: b.convert("LA").save(p), "LA"),
    "pages.tiff": (lambda b, p: _frames(b, p, "TIFF"), "RGB"),
    "rotated.jpg": (_exif_rotated, "RGB"),
    "picture.webp": (lambda b, p: b.save(p, quality=95), "RGB"),
    "picture.avif": (lambda b, p: b.save(p, quality=95), "RGB"),
    "picture.heic": (lambda b, p: b.save(p, quality=95), "RGB"),
}
PRESENT = [n for n in KINDS if not MISSING.get(n)]


def _write(folder: Path, name: str, seed: int) -> Path:
    """Writes picture ``seed`` as ``name``; returns a PNG of what a viewer should see."""
    decode._pil()  # pillow-heif's writer too
    seen = write_image(folder / ".base" / f"{seed}.png", size=(72, 56), seed=seed)  # hidden: not imported
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    other = KINDS[Path(name).name][0](PILImage.open(seen).convert("RGB"), folder / name)
    if other is not None:
        other.save(seen)
    return seen


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.skipif(MISSING.get(n, False),
                                                                          reason="no reader installed"))
                                  for n in KINDS])
def test_each_mode_reads_as_what_a_viewer_sees(tmp_path, name):
    seen = _write(tmp_path, name, seed=7)
    with PILImage.open(tmp_path / name) as img:
        assert img.mode == KINDS[name][1]
    luma = np.array([0.299, 0.587, 0.114])
    got, seen = load_pixels(tmp_path / name, 32) @ luma, load_pixels(seen, 32) @ luma
    # Not white, not black, not clipped: the same brightness, and a picture rather than a flat field.
    assert abs(got.mean() - seen.mean()) < 12, name
    assert got.std() > 0.5 * seen.std(), name


@pytest.mark.parametrize("values, mode, grey", [
    ([0, 32896, 65535], "I;16", [0, 128, 255]),  # 16-bit: by its full range, never clipped white
    ([0, 128, 255], "I", [0, 128, 255]),  # 32-bit holding 8-bit values
    ([0, 32896, 65535], "I", [0, 128, 255]),  # 32-bit holding 16-bit values
    ([0.0, 0.5, 1.0], "F", [0, 128, 255]),  # float in 0-1
    ([-1.0, 0.0, 1.0], "F", [0, 128, 255]),  # float in no known range: stretched
    ([float("nan"), 0.5, 1.0], "F", [0, 128, 255]),  # NaN as 0
])
def test_high_bit_depths_are_scaled_to_8_bits(values, mode, grey):
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    img = PILImage.fromarray(np.array([values], dtype=dtype))
    assert img.mode == mode
    assert np.asarray(decode.to_rgb(img))[0, :, 0].tolist() == grey


def test_a_folder_of_every_mode_imports_predicts_and_trains(library, tmp_path):
    root = tmp_path / "mixed"
    seed = iter(range(300, 400))
    for cls in ("emu", "owl"):
        for name in PRESENT:
            _write(root, f"{cls}/{name}", next(seed))
        for i in range(4):
            write_image(root / cls / f"good{i}.png", seed=next(seed))
    summary = ingest.import_paths(library, [root], labels_from_folders=True, workers=1)
    assert summary.rejected == [] and summary.failed == []
    assert summary.added_by_label == {"emu": len(PRESENT) + 4, "owl": len(PRESENT) + 4}
    with library.session() as s:
        modes = {Path(p).name: m for p, m in s.execute(select(Image.path, Image.mode))}
    assert {n: modes[n] for n in PRESENT} == {n: KINDS[n][1] for n in PRESENT}
    splits.build(library, min_count=3, name="modes", val=0.25, test=0.0)
    run = train.train(library, "modes", train.TrainConfig(epochs=1, **TINY), name="modes")
    assert run["status"] == "done" and run["missing"] == 0
    scored = predict.score(library, "modes", predict.pool_ids(library, "all"), workers=0)
    assert scored.errors == [] and scored.missing == 0 and scored.scored == summary.added


def test_heic_and_avif_are_known_formats():
    assert decode.IMAGE_SUFFIXES >= {".heic", ".heif", ".avif"} and {"HEIF", "AVIF"} <= decode.FORMATS
    assert ingest.IMAGE_SUFFIXES is decode.IMAGE_SUFFIXES and image_probe.FORMATS is decode.FORMATS


# -- decompression bombs ---------------------------------------------------------------------------


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of zeros, compressed row by row: hundreds of megapixels in a few KB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height, nbytes, max_pixels, refused", [
    (9_000, 9_000, 1_000, decode.MAX_PIXELS, None),  # 81 Mpx: under Pillow's own limit, always read
    (12_000, 9_000, 19_000_000, decode.MAX_PIXELS, None),  # a real 108-Mpx photograph of 19 MB
    (12_000, 9_000, 1_000_000, decode.MAX_PIXELS, "108,000,000 pixels in 1,000,000 bytes (108 pixels a byte"),
    (20_000, 20_000, 50_000, decode.MAX_PIXELS, "400,000,000 pixels, over the limit of 250,000,000"),
    (20_000, 20_000, 50_000, 500_000_000, "400,000,000 pixels in 50,000 bytes"),
    (20_000, 20_000, 300_000_000, 500_000_000, None),  # --max-pixels raised, and dense: read
    (2_000, 1_000, 10, 1_000_000, "2,000,000 pixels, over the limit of 1,000,000"),
    (30_000, 30_000, 10, None, "900,000,000 pixels in 10 bytes"),
])
def test_bombs_are_judged_by_pixels_against_bytes(width, height, nbytes, max_pixels, refused):
    if refused is None:
        decode.check_size(width, height, nbytes, max_pixels=max_pixels)
        return
    with pytest.raises(decode.Unreadable) as e:
        decode.check_size(width, height, nbytes, max_pixels=max_pixels)
    assert str(e.value).startswith(f"decompression bomb: {width}x{height} is ") and refused in str(e.value)


def test_a_real_bomb_is_refused_even_with_a_higher_limit(cli, library, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "good.png", seed=1)
    (folder / "bomb.png").write_bytes(_png_bomb(20_000, 20_000))
    size = (folder / "bomb.png").stat().st_size
    assert size < 60_000
    r = cli("import", folder, "--max-pixels", 500_000_000)
    assert r.exit_code == 0, r.output
    assert "Imported 1 new images from 2 files" in r.stdout and "1 rejected" in r.stdout
    with library.session() as s:
        reason = s.scalar(select(Image.reject_reason).where(Image.path == str(folder / "bomb.png")))
    assert reason.startswith(f"decompression bomb: 20000x20000 is 400,000,000 pixels in {size:,} bytes")


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory) -> Path:
    """A 12000x9000 JPEG of about 20 MB: a 108-Mpx photograph (texture, not a flat field)."""
    path = tmp_path_factory.mktemp("big") / "panorama.jpg"
    rng = np.random.default_rng(0)
    small = PILImage.fromarray(rng.integers(0, 256, (1125, 1500, 3), dtype=np.uint8))
    small.resize((12_000, 9_000), PILImage.BILINEAR).save(path, quality=80)
    return path


def test_a_big_real_photograph_imports_and_reads(library, big_photo):
    summary = ingest.import_paths(library, [big_photo], workers=1)
    assert summary.added == 1 and summary.rejected == []
    with library.session() as s:
        assert s.execute(select(Image.width, Image.height, Image.format)).one() == (12_000, 9_000, "JPEG")
    assert load_pixels(big_photo, 32).shape == (32, 32, 3)


def test_max_pixels_lowers_and_raises_the_limit(cli, library, tmp_path):
    photo = write_image(tmp_path / "in" / "photo.jpg", size=(1600, 1200), seed=5, quality=90)
    r = cli("import", photo, "--max-pixels", 1_000_000)
    assert "Imported 0 new images" in r.stdout
    assert ("decompression bomb: 1600x1200 is 1,920,000 pixels, over the limit of 1,000,000:"
            " raise it with --max-pixels if the image is real") in " ".join(r.stdout.split())
    again = cli("import", photo, "--max-pixels", 2_000_000)
    assert "1 images unreadable at an earlier import were read this time: active again." in again.stdout
    with library.session() as s:
        im = s.scalar(select(Image))
        assert (im.status, im.reject_reason, im.width, im.format) == ("active", None, 1600, "JPEG")
    assert "readmit" in cli("history", photo).stdout


# -- a decoder that raises something unexpected ---------------------------------------------------


@pytest.mark.parametrize("where, reason", [
    ("to_rgb", "corrupt or truncated: decoder exploded"),
    ("color_signature", "cannot be decoded: RuntimeError: decoder exploded"),
])
def test_an_unexpected_exception_rejects_that_file_only(library, tmp_path, monkeypatch, where, reason):
    folder = tmp_path / "in"
    for seed in range(3):
        write_image(folder / f"good{seed}.png", seed=seed)
    write_image(folder / "poison.png", size=(61, 41), seed=9)
    module = decode if where == "to_rgb" else image_probe
    real = getattr(module, where)

    def exploding(img, *args):
        if img.size == (61, 41):
            raise RuntimeError("decoder exploded")
        return real(img, *args)

    monkeypatch.setattr(module, where, exploding)
    summary = ingest.import_paths(library, [folder], workers=1)
    assert summary.added == 3
    assert summary.rejected == [(str(folder / "poison.png"), reason)]


def test_the_installed_readers_read_heic_and_avif():
    # curator's own dependencies bring both readers (pillow-heif, Pillow >= 11.3): the folder of
    # every format above skips none of them where curator was installed as it says.
    assert decode.available_formats() == {"HEIF": True, "AVIF": True}
    assert "not here" not in decode.formats_line()
