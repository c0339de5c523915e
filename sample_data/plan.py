"""What the sample data set holds: the per-class plans, the planted duplicates and format swaps,
and the numbers they are measured against (the cutoffs, the pHash guard, the seed).

Pure data, no I/O: ``selection.build`` turns it into files. See ``build.py``'s Design section for
why the set has this shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED = "curator-sample-data-v1"
CUTOFF = 40  # the per-class cutoff the sample exercises
THROWAWAY = 35  # below this a class is thrown away rather than topped up
NEAR_BITS = 8  # no two chosen images of different emoji are this close (pHash bits)
RAW_GUARD = False  # also keep apart by the raw (alpha-blind) pHash: costs too many images
CROP_PX = 2  # px cut from each side for a "crop" near duplicate


@dataclass
class Plan:
    """How many images of one class go where. Library images are taken first, then staged,
    unknown and pool images from what is left (in a seeded random order)."""

    name: str
    subcategories: tuple[str, ...]
    library: int = 0  # flat class: images directly in library/<name>/
    subclasses: dict[str, tuple[str, int]] = field(default_factory=dict)  # sub -> (base, n)
    direct: tuple[str, int] | None = None  # (base, n) directly in the class folder
    staged: int = 0
    unknown: int = 0
    pool: int = 0
    exclude: tuple[str, ...] = ()  # short names left out (not the class's look)
    only_bases: bool = False  # draw everything from the sub-class bases only
    force: tuple[tuple[str, str], ...] = ()  # (vendor, short_name) that must be in library


NOT_VEHICLES = ("busstop", "motorway", "railway_track", "oil_drum", "fuelpump", "wheel", "station",
                "rotating_light", "traffic_light", "vertical_traffic_light", "octagonal_sign",
                "construction")

LIBRARY_PLANS = [
    Plan("hand-fingers-open", ("hand-fingers-open",), pool=20,
         subclasses={"waving-hand": ("1F44B", 12), "raised-hand": ("270B", 12),
                     "raised-back-of-hand": ("1F91A", 12), "vulcan-salute": ("1F596", 10)},
         direct=("1F590-FE0F", 3)),
    Plan("animal-mammal", ("animal-mammal",), library=48, unknown=2, pool=25, exclude=("feet",)),
    Plan("country-flag", ("country-flag",), library=44, unknown=2, pool=25),
    Plan("transport-ground", ("transport-ground",), library=42, unknown=2, pool=20,
         exclude=NOT_VEHICLES),
    Plan("animal-bird", ("animal-bird",), library=37, pool=5,
         force=(("google", "bird"), ("twitter", "penguin"))),
    Plan("person", ("person",), pool=10,
         subclasses={"baby": ("1F476", 9), "child": ("1F9D2", 9), "adult": ("1F9D1", 9),
                     "older-adult": ("1F9D3", 9)}),
    Plan("food-fruit", ("food-fruit",), library=27, staged=5, pool=6),
    Plan("drink", ("drink",), library=23, staged=2, pool=6),
    Plan("face-smiling", ("face-smiling",), library=19, pool=5),
]
STAGED_ONLY = Plan("sky-weather", ("sky & weather",), staged=44)
LOOKALIKE = Plan("hand-fingers-partial", ("hand-fingers-partial",), pool=45)
LOOKALIKE_OF = "hand-fingers-open"
OTHER_PLANS = [  # classes nobody has yet: some unknown images, some pool distractors
    Plan("plant-flower", ("plant-flower",), unknown=2, pool=3),
    Plan("musical-instrument", ("musical-instrument",), unknown=2, pool=3),
    Plan("sport", ("sport",), unknown=2, pool=4),
]

# (role, class) whose first free image is saved in another format, so every format appears.
FORMAT_SWAPS = [
    ("library", "animal-mammal", "WEBP"), ("pool", "animal-mammal", "WEBP"),
    ("library", "country-flag", "GIF"), ("staged", "sky-weather", "GIF"),
    ("library", "transport-ground", "BMP"), ("pool", "transport-ground", "BMP"),
    ("library", "drink", "TIFF"), ("staged", "sky-weather", "TIFF"),
]

# Planted duplicates in library/: (kind, original's folder, copy's folder or None = same,
# original's (vendor, short_name) or None = the next free one in seeded order).
LIBRARY_DUPLICATES = [
    ("exact", "hand-fingers-open/waving-hand", None, None),
    ("exact", "animal-mammal", None, None),
    ("exact", "country-flag", None, None),
    ("exact", "person/baby", None, None),
    ("exact", "drink", None, None),
    ("jpeg", "hand-fingers-open/waving-hand", None, None),
    ("resize96", "hand-fingers-open/raised-hand", None, None),
    ("crop", "hand-fingers-open/raised-hand", "hand-fingers-open/waving-hand", None),  # sub-class conflict
    ("jpeg", "animal-mammal", None, None),
    ("crop", "animal-mammal", None, None),
    ("jpeg", "animal-bird", "animal-mammal", ("twitter", "penguin")),  # class conflict
    ("crop", "animal-bird", None, None),
    ("resize48", "country-flag", None, None),
    ("jpeg", "country-flag", None, None),
    ("resize96", "transport-ground", None, None),
    ("crop", "transport-ground", None, None),
    ("resize48", "person/older-adult", None, None),
    ("crop", "food-fruit", None, None),
    ("jpeg", "face-smiling", None, None),
]
# Planted duplicates in pool/: (kind, where the original is: a library folder, or "pool").
POOL_DUPLICATES = [
    ("exact", "country-flag"),
    ("exact", "hand-fingers-open/raised-back-of-hand"),
    ("exact", "pool"),
    ("jpeg", "transport-ground"),
    ("resize96", "animal-mammal"),
    ("crop", "drink"),
]
