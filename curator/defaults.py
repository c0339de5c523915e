"""Defaults that commands show in their ``--help``, in a module that imports nothing heavy.

Each value lives here only: the service modules import it from here (``classes.DEFAULT_MIN_COUNT``
is this one), and the CLI reads it without loading SQLAlchemy, so ``curator --help`` stays instant.
"""

from pathlib import Path

DEFAULT_MIN_COUNT = 40  # `curator classes`: classes with fewer labelled images are marked

DEFAULT_THRESHOLD = 8  # pHash bits; planted re-encodes, resizes and slight crops fall within 8
# Share of pixels whose colour falls in other bins, in the channel where most moved (0-1,
# dedup.color_distance). Calibrated by benchmarks/phash_calibration.py on emoji views, photo
# crops, grey photos, faces and digits: re-encodes and 80% resizes are under 0.1 at the 99th
# percentile and 0.164 at worst (a flat background on a bin edge); sample_data's skin tones
# start at 0.174. 0.17 sits in that gap.
DEFAULT_COLOR_THRESHOLD = 0.17
# Of the 256 bits of curator.crop_hash's fine pHashes, best alignment: a pair near in the 64-bit
# pHash (at some crop) or in an embedding is kept only within this. Calibrated by
# benchmarks/crop_hash_calibration.py on emoji views, photo crops, grey photos, faces and digits:
# at 36 every kind keeps >= 0.95 of its planted re-encodes, resizes, 3-5% crops and colour shifts
# and views, photos, grey and faces group no look-alike; 40 chains two digits of one hand to
# re-encoded ones (precision 0.46), 32 loses a tenth of the photo crops and digit brightenings.
DEFAULT_DETAIL_THRESHOLD = 36

# `dedup --embeddings`: the cosine similarity at and above which two images are near duplicates
# (when alike in detail too: DEFAULT_DETAIL_THRESHOLD). Calibrated by benchmarks/embeddings.py with
# EfficientNet-Lite0 at 224 px on emoji views, digits and photo crops: 0.90 and 0.93 meet recall and
# precision 0.95 on every planted transform of views and photos; 0.95 finds 0.90 of views' hue
# shifts. 0.93 adds 37 wrong pairs on views against 0.90's 50 (skin tones: colour variants pass).
# A run's own embeddings are on another scale (a re-encoded digit at 0.24-0.62): give them a lower value.
DEFAULT_MIN_SIMILARITY = 0.93

DEMO_DB = Path("db") / "demo" / "curator.sqlite"  # `curator demo` always replaces a library here
DEMO_TRAINING = {"model": "resnet18", "img_size": 64, "epochs": 20, "patience": 5, "batch_size": 32}
DEMO_EMBED_SIZE = 64  # Lite0's input size for the demo's discovery: sample_data's own 64 px (a pure cluster of 32
# hand-fingers-partial images; at 128 px it splits into clusters of 15 and fewer)
DEMO_QUICK_TRAINING = {"model": "test_resnet", "img_size": 32, "epochs": 2, "patience": 2, "batch_size": 32}
