"""Vector-index benchmark: which nearest-neighbour index should hold curator's image embeddings.

Data: N seeded, L2-normalised 512-d vectors stored as float16 (what curator stores): 2,000
Gaussian clusters of log-normal sizes and spreads (cosine to the centre ~0.65-0.95) plus 5%
uniform noise points; 10,000 more from the same distribution to add incrementally, and 10,000
queries. They are generated in chunks into ``benchmarks/out/vector_index-data-<N>.npy`` once
and reused (the generator holds one chunk, not N x D); the exact top-50 of the first 200
queries is cached next to it (``vector_index-truth-<N>.npy``).

Each candidate runs in a fresh subprocess, so that peak memory (VmHWM, the peak RSS, the
float16 embeddings read into memory included) belongs to it alone, with a time-out:

  numpy-exact      blocked float16 -> float32 matmul + argpartition (the reference)
  faiss-flat       ``IndexFlatIP`` (float32 copy)
  faiss-ivf-sq8    ``IndexIVFScalarQuantizer`` QT_8bit, inner product, nlist = 4 sqrt(N),
                   trained (10 k-means iterations) on 40 * nlist sampled vectors
  faiss-ivf-fp16   the same with QT_fp16
  faiss-hnsw-sq8   ``IndexHNSWSQ`` QT_8bit, M=16, efConstruction=100
  usearch-f16      ``usearch.index.Index`` metric 'cos', dtype f16, connectivity 16,
                   expansion_add 128, multi-threaded add
  usearch-i8       the same with dtype i8
  hnswlib          ``hnswlib.Index`` space 'ip', M=16, ef_construction=100 (float32)

For each: build seconds (float16 array in memory -> ready index, training included), size on
disk once saved, peak RSS; the search knob (nprobe / efSearch / expansion_search) is raised
from low to high until recall@50 on the 200 queries reaches 0.95 (the curve is in the JSON);
at that setting: single-query latency p50/p95 over the 200 queries (k=50, the library's own
default threading on the 2 cores), recall@50, and batch throughput for 10,000 queries at k=1
(what ``find --unfamiliar`` asks: one neighbour per pool image; stopped after ``--batch-cap``
seconds and reported as queries/s over those done); finally add() of the 10,000 new vectors
to the built index, then save, timed. The cores are shared, so each row also gives the build's
CPU seconds and the single query's CPU milliseconds (process time; on 2 idle cores a build's
wall time is about CPU / 2, a single-threaded query's about its CPU time) and the 1-minute
load average when the candidate started and finished.

Build budget: at N above 100,000, a candidate whose build in ``vector_index-100000.json``
extrapolates past ``--build-budget`` seconds (default 900) at N (x N/100k, x 1.2 for graphs'
log N, x (N/100k)^1.5 for IVF whose nlist grows with sqrt N) is not run: "over budget".

Usage:
    .venv/bin/python benchmarks/vector_index.py --n 100000      # a couple of minutes
    .venv/bin/python benchmarks/vector_index.py                 # N = 1,000,000 (~25 min on 2 idle cores)
    .venv/bin/python benchmarks/vector_index.py --only faiss-ivf-sq8,usearch-i8 --timeout 600
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import peak_mib, print_result, run_child, table  # noqa: E402

OUT = HERE / "out"
SEED = 0
CLUSTERS = 2_000
NOISE_FRACTION = 0.05
EXTRA = 10_000  # vectors added incrementally (1% at 1M)
QUERIES = 10_000  # batch queries; the first SINGLE are the latency / recall queries
SINGLE = 200
K = 50
TARGET_RECALL = 0.95
CHUNK = 50_000


# -- the data --------------------------------------------------------------------------------


def _chunk(centres, spread, weights, basis, start: int, rows: int, seed: int) -> np.ndarray:
    """Rows [start, start + rows) of the stream: cluster members and uniform noise, unit norm.

    A member is its centre plus Gaussian scatter whose variance decays as 1/j along the
    ``basis`` directions (effective dimension ~28, as image embeddings have a few dozen), not
    isotropic: full-rank 512-d blobs would make every approximate index look far worse.
    """
    rng = np.random.default_rng([seed, start])
    dim = centres.shape[1]
    labels = rng.choice(len(centres), rows, p=weights)
    scale = np.sqrt(dim / np.arange(1, dim + 1) / np.sum(1 / np.arange(1, dim + 1)))
    scatter = (rng.standard_normal((rows, dim), np.float32) * scale.astype(np.float32)) @ basis
    x = centres[labels] + spread[labels, None] * scatter
    noise = rng.random(rows) < NOISE_FRACTION
    x[noise] = rng.standard_normal((int(noise.sum()), dim), np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def data_path(n: int, dim: int) -> Path:
    return OUT / f"vector_index-data-{n}-{dim}.npy"


def make_data(n: int, dim: int, seed: int = SEED) -> Path:
    """Write (n + EXTRA + QUERIES, dim) float16 rows to a .npy once; base, to-add, queries."""
    path = data_path(n, dim)
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(0.015, 0.05, CLUSTERS).astype(np.float32)  # per-dimension sigma
    weights = rng.lognormal(0, 1, CLUSTERS)
    weights /= weights.sum()
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    total = n + EXTRA + QUERIES
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, dim))
    for start in range(0, total, CHUNK):
        rows = min(CHUNK, total - start)
        mm[start : start + rows] = _chunk(centres, spread, weights, basis, start, rows, seed)
    mm.flush()
    del mm
    tmp.rename(path)
    return path


def load(n: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The base (n, dim) float16 in memory; the to-add and query rows (float16, float32)."""
    path, rows = data_path(n, dim), np.empty((n + EXTRA + QUERIES, dim), np.float16)
    offset = np.load(path, mmap_mode="r").offset  # read() below: a memmap's pages would count
    with open(path, "rb") as f:  # in RSS on top of the copy (another 1 GiB at 1M)
        f.seek(offset)
        view = memoryview(rows.reshape(-1).view(np.uint8))
        for start in range(0, len(view), 2**26):
            f.readinto(view[start : start + 2**26])
    return rows[:n], rows[n : n + EXTRA].copy(), rows[n + EXTRA :].astype(np.float32)


def exact_search(base: np.ndarray, queries: np.ndarray, k: int, block: int = 32_768):
    """Top-k inner products of (Q, D) float32 queries over (N, D) float16 rows, in row blocks."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(base), block):
        s = queries @ base[start : start + block].astype(np.float32).T
        top = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]  # this block's top k
        s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        i = np.concatenate([best_i, top + start], axis=1)
        top = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def truth(n: int, dim: int) -> np.ndarray:
    path = OUT / f"vector_index-truth-{n}-{dim}.npy"
    if not path.exists():
        base, _, queries = load(n, dim)
        np.save(path, exact_search(base, queries[:SINGLE], K)[1])
    return np.load(path)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(e)) / len(e) for f, e in zip(found, exact)]))


# -- the candidates: build(base) -> index; set(index, knob); search(index, q, k, batch); add; save


def _fp32_chunks(x: np.ndarray, rows: int = 20_000):  # 40 MiB of float32 at a time
    for start in range(0, len(x), rows):
        yield start, x[start : start + rows].astype(np.float32)


def _faiss_add(index, x: np.ndarray) -> None:
    for _, chunk in _fp32_chunks(x):
        index.add(chunk)


def _faiss_sample(x: np.ndarray, rows: int) -> np.ndarray:
    pick = np.sort(np.random.default_rng(SEED).choice(len(x), min(rows, len(x)), replace=False))
    return x[pick].astype(np.float32)


class NumpyExact:
    knobs = [None]

    def build(self, x):
        return [x]

    def set(self, index, knob):
        pass

    def search(self, index, q, k, batch):
        return exact_search(index[0], q, k)[1]

    def add(self, index, x):
        index[0] = np.concatenate([index[0], x])

    def save(self, index, path):
        with open(path, "wb") as f:
            np.save(f, index[0])


class FaissFlat:
    knobs = [None]

    def build(self, x):
        import faiss

        index = faiss.IndexFlatIP(x.shape[1])
        _faiss_add(index, x)
        return index

    def set(self, index, knob):
        pass

    def search(self, index, q, k, batch):
        return index.search(q, k)[1]

    def add(self, index, x):
        _faiss_add(index, x)

    def save(self, index, path):
        import faiss

        faiss.write_index(index, str(path))


class FaissIVF(FaissFlat):
    knobs = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024]

    def __init__(self, qtype: str):
        self.qtype = qtype

    def build(self, x):
        import faiss

        n, dim = x.shape
        self.nlist = int(4 * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(dim)
        qtype = getattr(faiss.ScalarQuantizer, self.qtype)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, self.nlist, qtype,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.train(_faiss_sample(x, 40 * self.nlist))
        _faiss_add(index, x)
        return index

    def set(self, index, knob):
        index.nprobe = knob


class FaissHNSWSQ(FaissFlat):
    knobs = [50, 64, 100, 128, 200, 256, 400, 512, 768, 1024]

    def build(self, x):
        import faiss

        index = faiss.IndexHNSWSQ(x.shape[1], faiss.ScalarQuantizer.QT_8bit, 16,
                                  faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 100
        index.train(_faiss_sample(x, 100_000))
        _faiss_add(index, x)
        return index

    def set(self, index, knob):
        index.hnsw.efSearch = knob


class USearch:
    knobs = [64, 100, 128, 200, 256, 400, 512, 768, 1024]

    def __init__(self, dtype: str):
        self.dtype = dtype

    def build(self, x):
        from usearch.index import Index

        index = Index(ndim=x.shape[1], metric="cos", dtype=self.dtype, connectivity=16,
                      expansion_add=128)
        index.add(np.arange(len(x)), x, threads=0)
        return index

    def set(self, index, knob):
        index.expansion_search = knob

    def search(self, index, q, k, batch):
        found = index.search(q, k, threads=0 if batch else 1)
        return found.keys.astype(np.int64).reshape(len(q), -1)

    def add(self, index, x):
        index.add(np.arange(len(index), len(index) + len(x)), x, threads=0)

    def save(self, index, path):
        index.save(str(path))


class HNSWLib:
    knobs = [50, 64, 100, 128, 200, 256, 400, 512, 768, 1024]

    def build(self, x):
        import hnswlib

        index = hnswlib.Index(space="ip", dim=x.shape[1])
        index.init_index(max_elements=len(x), ef_construction=100, M=16)
        for start, chunk in _fp32_chunks(x):
            index.add_items(chunk, np.arange(start, start + len(chunk)))
        return index

    def set(self, index, knob):
        index.set_ef(knob)

    def search(self, index, q, k, batch):
        return index.knn_query(q, k, num_threads=-1 if batch else 1)[0].astype(np.int64)

    def add(self, index, x):
        n = index.get_current_count()
        index.resize_index(n + len(x))
        index.add_items(x.astype(np.float32), np.arange(n, n + len(x)))

    def save(self, index, path):
        index.save_index(str(path))


CANDIDATES = {  # name: (factory, kind used for the build-time extrapolation)
    "numpy-exact": (NumpyExact, "flat"),
    "faiss-flat": (FaissFlat, "flat"),
    "faiss-ivf-sq8": (lambda: FaissIVF("QT_8bit"), "ivf"),
    "faiss-ivf-fp16": (lambda: FaissIVF("QT_fp16"), "ivf"),
    "faiss-hnsw-sq8": (FaissHNSWSQ, "graph"),
    "usearch-f16": (lambda: USearch("f16"), "graph"),
    "usearch-i8": (lambda: USearch("i8"), "graph"),
    "hnswlib": (HNSWLib, "graph"),
}


# -- one candidate in its own process --------------------------------------------------------


def _tune(cand, index, queries, exact, deadline: float) -> tuple[object, list]:
    """The lowest knob reaching TARGET_RECALL (or the highest tried), and the curve."""
    curve = []
    for knob in cand.knobs:
        cand.set(index, knob)
        start = time.perf_counter()
        r = recall(cand.search(index, queries, K, batch=True), exact)
        curve.append({"knob": knob, "recall": round(r, 4),
                      "batch_ms_per_query": round((time.perf_counter() - start) * 1e3 / SINGLE, 3)})
        if r >= TARGET_RECALL or time.perf_counter() > deadline:
            break
    return curve[-1]["knob"], curve


def _latency(cand, index, queries, cap: float) -> tuple[list, list, np.ndarray]:
    """Single-query wall and CPU milliseconds over the queries (fewer if ``cap`` seconds run
    out), and the ids found."""
    cand.search(index, queries[:1], K, batch=False)  # warm-up
    times, cpu_times, found, stop = [], [], [], time.perf_counter() + cap
    for q in queries:
        start, cpu = time.perf_counter(), time.process_time()
        found.append(cand.search(index, q[None], K, batch=False)[0])
        times.append((time.perf_counter() - start) * 1e3)
        cpu_times.append((time.process_time() - cpu) * 1e3)
        if time.perf_counter() > stop and len(times) >= 10:
            break
    return times, cpu_times, np.array(found)


def _throughput(cand, index, queries, cap: float) -> tuple[float, int]:
    done, start = 0, time.perf_counter()
    while done < len(queries) and time.perf_counter() - start < cap:
        cand.search(index, queries[done : done + 1000], 1, batch=True)
        done += 1000
    return done / (time.perf_counter() - start), done


def run(name: str, n: int, dim: int, batch_cap: float) -> dict:
    exact = truth(n, dim)
    base, extra, queries = load(n, dim)
    cand = CANDIDATES[name][0]()
    before, load_before = peak_mib(), os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    index = cand.build(base)
    build_s, build_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    build_peak = peak_mib()
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        path = Path(tmp) / "index"
        cand.save(index, path)
        size_mib = os.path.getsize(path) / 2**20
        knob, curve = _tune(cand, index, queries[:SINGLE], exact, time.perf_counter() + 120)
        times, cpu_times, found = _latency(cand, index, queries[:SINGLE], cap=30)
        qps, batch_done = _throughput(cand, index, queries, batch_cap)
        start = time.perf_counter()
        cand.add(index, extra)
        add_s = time.perf_counter() - start
        cand.save(index, path)
        add_save_s = time.perf_counter() - start
    return {
        "status": "ok", "build_s": round(build_s, 2), "build_cpu_s": round(build_cpu_s, 1), "size_mib": round(size_mib, 1),
        "peak_mib": peak_mib(), "build_peak_mib": build_peak, "data_mib": before,
        "knob": knob, "nlist": getattr(cand, "nlist", None), "curve": curve,
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3), "latency_queries": len(times),
        "p50_cpu_ms": round(float(np.percentile(cpu_times, 50)), 3),
        "recall": round(recall(found, exact[: len(found)]), 4),
        "batch_qps": round(qps, 1), "batch_queries": batch_done,
        "add_s": round(add_s, 3), "add_save_s": round(add_save_s, 3),
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def spawn(name: str, n: int, dim: int, timeout: float, batch_cap: float) -> dict:
    """Run one candidate in a fresh process (own session: a time-out kills it and its threads)."""
    return run_child([sys.executable, __file__, "--child", name, "--n", str(n), "--dim", str(dim),
                      "--batch-cap", str(batch_cap)], timeout)


def estimate(name: str, n: int, dim: int) -> float | None:
    """Build seconds at n extrapolated from the 100k run's JSON, if there is one."""
    path = OUT / "vector_index-100000.json"
    if n <= 100_000 or not path.exists():
        return None
    rows = {r["method"]: r for r in json.loads(path.read_text()) if r.get("dim", dim) == dim}
    if rows.get(name, {}).get("status") != "ok":
        return None
    ratio = n / 100_000
    factor = {"flat": ratio, "ivf": ratio**1.5, "graph": ratio * 1.2}[CANDIDATES[name][1]]
    return rows[name]["build_s"] * factor


# -- the report ------------------------------------------------------------------------------

COLUMNS = [  # (heading, key, format)
    ("N", "n", "{:,}"), ("method", "method", "{}"), ("knob", "knob", "{}"),
    ("build s", "build_s", "{:.1f}"), ("cpu s", "build_cpu_s", "{:.0f}"),("disk MiB", "size_mib", "{:.0f}"),
    ("peak MiB", "peak_mib", "{:.0f}"), ("p50 ms", "p50_ms", "{:.2f}"),
    ("p95 ms", "p95_ms", "{:.2f}"), ("cpu ms", "p50_cpu_ms", "{:.2f}"),("recall@50", "recall", "{:.4f}"),
    ("batch q/s", "batch_qps", "{:,.0f}"), ("add 1% s", "add_s", "{:.2f}"),
    ("+save s", "add_save_s", "{:.2f}"), ("load", "load_text", "{}"),
    ("status", "status", "{}"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stored vectors (default 1M)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--only", help="comma-separated candidates (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per candidate")
    parser.add_argument("--build-budget", type=float, default=900, help="extrapolated build s")
    parser.add_argument("--batch-cap", type=float, default=60, help="seconds of batch queries")
    parser.add_argument("--json", type=Path, help="default benchmarks/out/vector_index-<n>.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = run(args.child, args.n, args.dim, args.batch_cap)
        return print_result(result)
    start = time.perf_counter()
    make_data(args.n, args.dim)
    truth(args.n, args.dim)
    print(f"data and exact top-{K}: {time.perf_counter() - start:.0f} s", flush=True)
    rows, path = [], args.json or OUT / f"vector_index-{args.n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in args.only.split(",") if args.only else CANDIDATES:
        est = estimate(name, args.n, args.dim)
        if est is not None and est > args.build_budget:
            result = {"status": f"over budget: build ~{est:.0f} s extrapolated from 100k"}
        else:
            result = spawn(name, args.n, args.dim, args.timeout, args.batch_cap)
        rows.append({"n": args.n, "dim": args.dim, "method": name, **result})
        print(json.dumps(rows[-1]), flush=True)
        path.write_text(json.dumps(rows, indent=1))  # after each: a long run can be cut short
    print(f"\n{args.dim}-d float16, {CLUSTERS:,} clusters + {NOISE_FRACTION:.0%} noise, seed "
          f"{SEED}, k={K}, batch k=1, target recall {TARGET_RECALL}, {os.cpu_count()} cores\n")
    for row in rows:  # the "load" cell: the load average at the start and the end
        if "load_avg" in row:
            row["load_text"] = "{}-{}".format(*row["load_avg"])
    print(table(rows, COLUMNS))


if __name__ == "__main__":
    main()
