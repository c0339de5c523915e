"""What a build writes: the files, ``manifest.csv`` (one row per file), ``expected.json`` (the
figures the tests assert, pHash distances included) and, through ``readme.write_readme``, the
README; then a check that the folders hold exactly the manifest's files.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from emoji_packages import PACKAGE, VENDORS, VERSION, sha256
from phash import bits, hashes
from plan import CUTOFF, LOOKALIKE, LOOKALIKE_OF, NEAR_BITS, THROWAWAY
from readme import write_readme
from selection import Item

MANIFEST_COLUMNS = ["path", "role", "class", "subclass", "true_class", "vendor", "unified",
                    "short_name", "source_image", "duplicate_of", "duplicate_kind", "format",
                    "true_subclass", "sha256"]
ROLE_DIRS = ("library", "staged", "pool")


def kind_name(kind: str) -> str:
    """A duplicate kind as the manifest names it (``resize96`` -> ``resize``)."""
    return "resize" if kind.startswith("resize") else kind


def manifest_rows(items: list[Item]) -> list[dict]:
    """One ``manifest.csv`` row per item, by path."""
    rows = []
    for it in sorted(items, key=lambda i: i.path):
        rows.append({
            "path": it.path, "role": it.role, "class": it.cls, "subclass": it.sub,
            "true_class": it.true_class, "vendor": it.src.vendor, "unified": it.src.unified,
            "short_name": it.src.short_name, "source_image": it.src.source_image,
            "duplicate_of": it.dup_of.path if it.dup_of else "", "duplicate_kind": kind_name(it.kind),
            "format": it.fmt, "true_subclass": it.true_sub, "sha256": sha256(it.data),
        })
    return rows


def expected(items: list[Item], extra: dict) -> dict:
    """``expected.json``: counts per class, duplicate pairs, conflicts and pHash distances; asserts
    the guarantees the Design section states."""
    lib = [it for it in items if it.role == "library"]
    libfiles = [it for it in items if it.role in ("library", "unknown")]
    sha = {id(it): sha256(it.data) for it in items}

    def distinct(its) -> int:
        return len({sha[id(i)] for i in its})

    classes: dict[str, dict] = {}
    for c in sorted({it.cls for it in lib}):
        its = [it for it in lib if it.cls == c]
        entry = {"images": distinct(its), "files": len(its),
                 "usable": distinct([i for i in its if i.dup_of is None])}
        subs = sorted({it.sub for it in its if it.sub})
        if subs:
            entry["subclasses"] = {s: distinct([i for i in its if i.sub == s]) for s in subs}
            entry["no_subclass"] = distinct([i for i in its if not i.sub])
        classes[c] = entry
    # a byte string in two class folders would be one image with the first label: not planted
    owners: dict[str, set[str]] = {}
    for it in lib:
        owners.setdefault(sha[id(it)], set()).add(it.cls)
    assert all(len(v) == 1 for v in owners.values()), "exact duplicate across class folders"

    usable = {c: e["usable"] for c, e in classes.items()}
    pool = [it for it in items if it.role == "pool"]
    known = {sha[id(it)] for it in items if it.role in ("library", "unknown", "staged")}
    pool_by_class: dict[str, int] = {}
    for it in pool:
        if it.dup_of is None:
            pool_by_class[it.true_class] = pool_by_class.get(it.true_class, 0) + 1
    staged: dict[str, int] = {}
    for it in items:
        if it.role == "staged":
            staged[it.cls] = staged.get(it.cls, 0) + 1
    dups = [it for it in items if it.dup_of is not None]
    exact = [[d.dup_of.path, d.path] for d in sorted(dups, key=lambda d: d.path) if d.kind == "exact"]
    near = [[d.dup_of.path, d.path, kind_name(d.kind)] for d in sorted(dups, key=lambda d: d.path)
            if d.kind != "exact"]
    conflicts = sorted(d.path for d in dups if d.role == "library" and d.label != d.dup_of.label)

    # pHash distances: planted pairs, and every unplanted pair of distinct images as close
    h = {id(it): hashes(it.data) for it in items}
    planted = []
    for d in sorted(dups, key=lambda d: d.path):
        a, b = h[id(d.dup_of)], h[id(d)]
        planted.append({"original": d.dup_of.path, "duplicate": d.path, "kind": kind_name(d.kind),
                        "flattened": bits(a[0], b[0]), "raw": bits(a[1], b[1])})
    assert all(v[2] for v in h.values()), "an unstable pHash slipped in"
    originals = sorted((it for it in items if it.dup_of is None), key=lambda i: i.path)
    unplanted: dict[str, list] = {"flattened": [], "raw": []}
    for m, key in ((0, "flattened"), (1, "raw")):
        for i, a in enumerate(originals):
            for b in originals[i + 1:]:
                d = bits(h[id(a)][m], h[id(b)][m])
                if d <= NEAR_BITS:
                    unplanted[key].append([a.path, b.path, d, a.src.base == b.src.base])
    phash_summary = {
        "method": "imagehash.phash: 32x32 LANCZOS grey, 8x8 DCT-II, bit = above the median. "
                  "'flattened' composites alpha on white first; 'raw' converts RGBA to grey directly, "
                  "as curator import hashes today, so colours hidden under transparent pixels count.",
        "threshold_bits": NEAR_BITS,
        "planted_max_flattened": max(p["flattened"] for p in planted),
        "planted_max_raw": max(p["raw"] for p in planted),
        "planted_pairs": planted,
        "unplanted_within_threshold": {
            k: {"pairs": len(v), "same_emoji": sum(1 for p in v if p[3]),
                "other_emoji": [p[:3] for p in v if not p[3]]} for k, v in unplanted.items()},
        "unplanted_pairs_flattened": [p[:3] for p in unplanted["flattened"]],
        "selection_skipped": extra["skipped_near_identical"],
    }
    assert phash_summary["planted_max_flattened"] <= NEAR_BITS
    assert not phash_summary["unplanted_within_threshold"]["flattened"]["other_emoji"]

    near_cut = sorted(c for c, n in usable.items() if THROWAWAY <= n < CUTOFF)
    return {
        "cutoff": CUTOFF,
        "throwaway_cutoff": THROWAWAY,
        "packages": {PACKAGE.format(vendor=v): VERSION for v in VENDORS},
        "library_files": len(libfiles),
        "library_distinct_bytes": distinct(libfiles),
        "labelled_files": len(lib),
        "labelled_distinct_bytes": distinct(lib),
        "classes": classes,
        "usable": usable,
        "unknown": distinct([it for it in items if it.role == "unknown"]),
        "staged": dict(sorted(staged.items())),
        "staged_only_classes": sorted(set(staged) - set(classes)),
        "pool": {"files": len(pool), "distinct_bytes": distinct(pool),
                 "new_distinct_bytes": len({sha[id(it)] for it in pool} - known),
                 "by_true_class": dict(sorted(pool_by_class.items())),
                 "planted_duplicates": len([d for d in dups if d.role == "pool"])},
        "exact_duplicate_pairs": exact,
        "near_duplicate_pairs": near,
        "label_conflicts": conflicts,
        "label_conflict_details": [
            {"path": d.path, "folder_label": d.label, "true_label": d.dup_of.label,
             "original": d.dup_of.path, "kind": kind_name(d.kind)}
            for d in sorted(dups, key=lambda d: d.path) if d.role == "library" and d.label != d.dup_of.label],
        "lookalike_class": {"pool_class": LOOKALIKE.name, "resembles": LOOKALIKE_OF,
                            "pool_images": pool_by_class.get(LOOKALIKE.name, 0)},
        "near_cutoff_classes": near_cut,
        "above_cutoff_classes": sorted(c for c, n in usable.items() if n >= CUTOFF),
        "below_throwaway_classes": sorted(c for c, n in usable.items() if n < THROWAWAY),
        "formats": count_formats(items),
        "phash": phash_summary,
        "notes": [
            "Counts under 'classes' are what an importer that collapses identical bytes reports: "
            "'images' = distinct sha256 among the files in the class folder (sub-folders included); "
            "'files' = files; 'subclasses' and 'no_subclass' the same per sub-folder.",
            "'usable' = distinct images after also collapsing every planted near duplicate onto its "
            "original: the files in the folder whose manifest duplicate_of is empty.",
            "Exact duplicates are planted only within one folder or in pool/, never across two "
            "class folders, so every byte string has one folder label and no exact-duplicate "
            "label conflict arises (an importer keeps the first path's label and records the "
            "second path as another location).",
            "Label conflicts are near duplicates in another folder than their original: counted as "
            "an image of the folder they sit in under 'images', not counted under 'usable' "
            "(their original is counted in its own class).",
            "Pairs are [original, duplicate(, kind)]. library_files counts library/unknown too; "
            "labelled_* leave it out.",
            "pool.by_true_class counts pool originals (planted pool duplicates left out); "
            "pool.new_distinct_bytes = pool images whose bytes are not already under library/ or staged/.",
        ],
    }


def count_formats(items: list[Item]) -> dict[str, int]:
    """Files per format, by format name."""
    out: dict[str, int] = {}
    for it in items:
        out[it.fmt] = out.get(it.fmt, 0) + 1
    return dict(sorted(out.items()))


def write_all(out: Path, items: list[Item], exp: dict, packages: dict[str, Path]) -> None:
    """Replace ``out``'s role folders and write every output, then check them against the items."""
    out.mkdir(parents=True, exist_ok=True)
    for d in ROLE_DIRS:
        shutil.rmtree(out / d, ignore_errors=True)
    for it in sorted(items, key=lambda i: i.path):
        p = out / it.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(it.data)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(manifest_rows(items))
    (out / "expected.json").write_text(json.dumps(exp, indent=2) + "\n")
    (out / "LICENSES").mkdir(exist_ok=True)
    lic = {v: (packages[v] / "LICENSE").read_bytes() for v in VENDORS}
    assert lic["google"] == lic["twitter"]
    (out / "LICENSES" / "emoji-datasource-MIT.txt").write_bytes(lic["google"])
    write_readme(out, exp, items)
    # check: the folders hold exactly the manifest's files, with its bytes
    on_disk = sorted(str(p.relative_to(out)) for d in ROLE_DIRS for p in (out / d).rglob("*") if p.is_file())
    assert on_disk == sorted(it.path for it in items), "files on disk differ from the manifest"
    for it in items:
        assert sha256((out / it.path).read_bytes()) == sha256(it.data)
