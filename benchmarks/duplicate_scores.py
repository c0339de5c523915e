"""How a library's duplicate groups score against the near-duplicate copies planted in it.

The set is ``real_library.prepare``'s: ``planted`` (original, copy, transform) triples from
``real_images.plant_duplicates`` and ``negatives``, look-alike pairs that are not duplicates
(one emoji in two skin tones...). ``score`` takes the groups (image id -> group) that ``curator
dedup`` stored (``groups``) or that an embedding alone makes at a similarity
(``embedding_groups``), and gives per transform the recall (original and copy in one group) and
precision (of the pairs sharing a group that touch a planted family, the share within one
family), the precision over every pair sharing a group, and the look-alike pairs grouped.

Usage (benchmarks/ on sys.path, as the other benchmarks put it):

    from duplicate_scores import dedup_line, groups, score
    dedup.find_duplicates(lib, full=True)
    print(dedup_line(score(d, image_ids(lib), groups(lib))))
"""

from __future__ import annotations

import collections
import itertools
import math
from pathlib import Path

import numpy as np

import real_images


def score(d: dict, ids: dict[str, int], gid: dict[int, int]) -> dict:
    """Recall and precision per transform, overall precision and the look-alikes grouped."""
    family, transform = {}, {}  # image id -> family (its original's id); family -> transform
    for original, copy, t in d["planted"]:
        o, c = ids.get(staged(d, original)), ids.get(staged(d, copy))
        if o is None or c is None or o == c:
            continue
        family[o] = family[c] = o
        transform[o] = t
    members = collections.defaultdict(list)
    for i, g in gid.items():
        members[g].append(i)
    out = {}
    for t in real_images.TRANSFORMS:
        fams = [f for f, tt in transform.items() if tt == t]
        if not fams:
            continue
        copies = {f: [i for i in family if family[i] == f] for f in fams}
        recall = np.mean([len({gid.get(i) for i in copies[f]}) == 1 and gid.get(f) is not None for f in fams])
        touching = true = 0
        for g, m in members.items():
            mine = [i for i in m if transform.get(family.get(i)) == t]
            touching += math.comb(len(m), 2) - math.comb(len(m) - len(mine), 2)
            true += sum(math.comb(n, 2) for n in collections.Counter(family[i] for i in mine).values())
        out[t] = {"n": len(fams), "recall": round(float(recall), 4),
                  "precision": round(true / touching, 4) if touching else None, "false_pairs": touching - true}
    total = sum(math.comb(len(m), 2) for m in members.values())
    true = sum(math.comb(n, 2) for m in members.values()
               for n in collections.Counter(family[i] for i in m if i in family).values())
    neg = collections.Counter()
    for a, b, r in d["negatives"]:
        ia, ib = ids.get(staged(d, a)), ids.get(staged(d, b))
        if ia is not None and ib is not None and ia != ib and gid.get(ia) is not None and gid.get(ia) == gid.get(ib):
            neg[r] += 1
    return {"transforms": out, "grouped_pairs": total, "true_pairs": true,
            "precision": round(true / total, 4) if total else None,
            "negatives_grouped": dict(neg), "negatives": dict(collections.Counter(r for *_, r in d["negatives"])),
            "groups": len(members), "largest": max(map(len, members.values()), default=0)}


def staged(d: dict, path: Path) -> str:
    """A data path's imported path: its staged hard link, else itself (copies, skin tones)."""
    return d["staged"].get(path) or str(path.resolve())


def groups(lib) -> dict[int, int]:
    """image id -> duplicate group, for the active images in one."""
    from sqlalchemy import select

    from curator.library.models import ACTIVE, Image

    with lib.session() as s:
        return dict(s.execute(select(Image.id, Image.dup_group_id).where(Image.status == ACTIVE,
                                                                         Image.dup_group_id.is_not(None))).all())


def embedding_groups(ids: np.ndarray, sims: np.ndarray, s: float) -> dict[int, int]:
    """image id -> component of every pair at or above ``s`` (what the embedding alone joins;
    the stored pairs of kind ``embedding`` leave out those pHash already has)."""
    a, b = np.nonzero(np.triu(sims >= s, 1))
    return components(zip(ids[a].tolist(), ids[b].tolist()))


def components(edges) -> dict[int, int]:
    """id -> its component's root, for every id in the edges (union-find)."""
    parent = {}

    def root(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[root(a)] = root(b)
    return {x: root(x) for x in list(parent)}


def co_grouped(edges) -> list[list[int]]:
    """Every pair of ids that the edges put in one component, smaller first."""
    comps = collections.defaultdict(list)
    for x, r in components(edges).items():
        comps[r].append(x)
    return [sorted(p) for m in comps.values() for p in itertools.combinations(sorted(m), 2)]


def dedup_line(r: dict) -> str:
    """A score on one line: recall / precision per transform, precision, look-alikes grouped."""
    parts = [f"{t} {v['recall']:.2f}/{'-' if v['precision'] is None else format(v['precision'], '.2f')}"
             for t, v in r["transforms"].items()]
    return (", ".join(parts) + f"; precision {r['precision']}, look-alikes grouped {r['negatives_grouped'] or 0}")


def added(r: dict, phash: dict) -> str:
    """The grouped pairs the embedding pass adds to pHash's (a superset of them): true / false."""
    if r is phash:
        return ""
    def true_of(x):  # files saved before true_pairs was kept: from the rounded precision
        return x.get("true_pairs", round((x["precision"] or 0) * x["grouped_pairs"]))

    true = true_of(r) - true_of(phash)
    return f"{true} / {r['grouped_pairs'] - phash['grouped_pairs'] - true}"
