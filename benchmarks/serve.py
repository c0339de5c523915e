"""``curator serve`` throughput and latency against the model's raw forward time.

The model is benchmarks/bulk_identify.py's resnet18 at 128 px (trained once, cached under
benchmarks/out/bulk-model); `--model resnet50 --img-size 224` serves another timm model
(trained one epoch on sample_data, cached under benchmarks/out/serve-MODEL-SIZE). Three images: a 64 px PNG from sample_data, a 640x480 JPEG of
noise (the worst case for a JPEG decoder, 269 KiB) and a photo-like 640x480 JPEG from
benchmarks/ingest.py (92 KiB).

  raw        in a fresh process, the same model's forward pass on one pre-decoded image
             (batch 1, inference mode): p50 over 300 calls
  serve      `curator serve` in its own process (uvicorn, every request logged to the library),
             1 and 8 concurrent clients (threads, keep-alive http.client connections) posting the
             image; requests/s, the p50/p99 latency each client sees, the p50 of the time
             spent inside the endpoint (the answer's latency_ms) and of its forward pass, and
             the mean batch (requests that wait for the model share its next forward pass)
  no forward the same service, 1 client, with the forward pass replaced by uniform
             probabilities: what serving costs by itself, without the forward pass competing
             with it for the cores

Server overhead at p50 = (p50 with 1 client - raw p50) / raw p50 (target: under 20%); it
includes the upload, decoding and resizing the image, and writing the transaction. On a shared
2-core VM the raw forward p50 varies from one fresh process to the next (12 to 15 ms seen), so
the overhead is also printed in milliseconds against the forward pass timed inside the server
(the answers' model_ms), which needs no second process.

Usage:
    .venv/bin/python benchmarks/serve.py                 # ~4 minutes
    .venv/bin/python benchmarks/serve.py --requests 100 --json benchmarks/out/serve.json
    .venv/bin/python benchmarks/serve.py --model resnet50 --img-size 224
    .venv/bin/python benchmarks/serve.py --against HEAD~1 --requests 3000   # a change, side by side

``--against REF`` measures a change rather than the service: this checkout's service and git
REF's (checked out in a temporary worktree) run at once, and ``--rounds`` rounds of requests
(from ``--clients`` clients, 1 by default) alternate between them in random order; it prints,
per image, the median p50, server CPU a request and requests/s of each and the median of the
paired differences. On this VM a figure from one run moves by 2 ms with the minute it was
taken in, more than most changes: only a side-by-side comparison sees them. The forward pass is
stubbed out unless ``--forward``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bulk_identify  # noqa: E402  the cached model library
from measure import print_result, result_of  # noqa: E402


def images() -> dict[str, bytes]:
    from PIL import Image

    png = sorted((ROOT / "sample_data" / "pool").glob("*.png"))[0].read_bytes()
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).resize((640, 480))
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    import ingest  # benchmarks/ingest.py: its photo-like JPEGs (shapes, blur and grain)

    if not ingest.image_path(0).exists():
        ingest.image_path(0).parent.mkdir(parents=True, exist_ok=True)
        ingest.make_image(0)
    return {"png 64px": png, "jpeg 640x480": buf.getvalue(), "jpeg photo-like": ingest.image_path(0).read_bytes()}


MODEL_LIB_VAR = "CURATOR_BENCH_MODEL_LIB"  # tells the child processes which model library


def model_library(model: str, size: int) -> Path:
    """The folder of the library holding run "bench" of ``model`` at ``size`` px: bulk_identify's
    for its resnet18 at 128 px, else one of its own (each trained once, in a child process)."""
    folder = bulk_identify.MODEL_LIB if (model, size) == ("resnet18", 128) else bulk_identify.OUT / f"serve-{model}-{size}"
    subprocess.run([sys.executable, __file__, "--child", f"model:{folder}:{model}:{size}"], check=True,
                   capture_output=True)
    return folder


def raw_child(kind: str) -> dict:
    """p50 of the forward pass alone on one decoded image (what serving cannot avoid)."""
    import torch

    from curator import checkpoints
    from curator.data import load_pixels, normalise

    ckpt = checkpoints.load(Path(os.environ[MODEL_LIB_VAR]) / "runs" / "bench" / "best.pt")
    model = checkpoints.build_model(ckpt).eval()
    dc = ckpt["data_config"]
    size = dc["input_size"][-1]
    x = torch.from_numpy(load_pixels(io.BytesIO(images()[kind]), size)).permute(2, 0, 1).unsqueeze(0)
    times = []
    with torch.inference_mode():
        for i in range(330):
            t0 = time.perf_counter()
            model(normalise(x, dc["mean"], dc["std"]))
            if i >= 30:
                times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99))}


def load(port: int, data: bytes, name: str, clients: int, per_client: int) -> dict:
    """``clients`` threads, each on its own keep-alive connection (http.client: the lightest
    client, so the figures are the server's), posting ``data`` as a multipart upload."""
    import http.client
    import uuid

    boundary = uuid.uuid4().hex
    ctype = "image/png" if name.endswith(".png") else "image/jpeg"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    latencies: list[float] = []
    server_ms: list[float] = []
    model_ms: list[float] = []
    batches: list[int] = []
    errors = []
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        try:
            for _ in range(per_client):
                t0 = time.perf_counter()
                conn.request("POST", "/predict", body=body, headers=headers)
                response = conn.getresponse()
                answer = json.loads(response.read())
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if response.status == 200:
                        latencies.append(ms)
                        server_ms.append(answer["latency_ms"])
                        model_ms.append(answer["model_ms"])
                        batches.append(answer.get("batch", 1))  # a ref from before batching: 1
                    else:
                        errors.append(ms)
        finally:
            conn.close()

    seconds = bulk_identify.side_by_side(client, [(k,) for k in range(clients)])
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "rps": len(latencies) / seconds,
            "p50_ms": float(np.median(latencies)), "p99_ms": float(np.percentile(latencies, 99)),
            "server_p50_ms": float(np.median(server_ms)), "model_p50_ms": float(np.median(model_ms)),
            "mean_batch": float(np.mean(batches))}


def stub_server(port: int) -> None:
    """``curator serve`` with the forward pass replaced by uniform probabilities: what the
    service costs by itself (upload, decoding, the model thread's hop, the log, HTTP)."""
    import torch

    from curator import predict, serve
    from curator.library import open_library

    def no_forward(model, pixels, data_config):
        k = model.get_classifier().out_features
        return torch.full((len(pixels), k), 1 / k), torch.zeros(len(pixels), 1)

    predict.forward = no_forward
    serve.serve(open_library(os.environ["CURATOR_DB"]), "bench", port=port, device="cpu")


@contextmanager
def running_server(scratch: Path, port: int, stub: bool = False, tree: Path = ROOT):
    """``curator serve`` (or the stub) on a copy of the model library, stopped with Ctrl-C after;
    ``tree``: the checkout whose curator serves (another one for ``--against``)."""
    import requests

    shutil.copytree(os.environ[MODEL_LIB_VAR], scratch / "lib")
    env = {**os.environ, "CURATOR_DB": str(scratch / "lib" / "curator.sqlite"),
           "PYTHONPATH": os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = ([str(tree / "benchmarks" / "serve.py"), "--child", f"stub-server:{port}"] if stub else
           ["-m", "curator", "serve", "--run", "bench", "--port", str(port), "--device", "cpu"])
    proc = subprocess.Popen([sys.executable, *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None:
                sys.exit(f"curator serve failed:\n{proc.stderr.read()}")
            time.sleep(0.2)
    else:
        proc.kill()
        sys.exit("curator serve did not start in 120 s")
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def against(ref: str, kind: str, data: bytes, rounds: int, per_round: int, stub: bool, clients: int = 1) -> dict:
    """This checkout's service against ``ref``'s (a git worktree), both running at once: rounds
    of ``per_round`` requests from ``clients`` clients alternating between them in random order,
    so that the machine's drift from minute to minute falls on both. Returns the medians and the
    median of the paired differences (this minus ref) of p50 latency, server CPU per request
    and requests/s."""
    import random
    from contextlib import ExitStack

    name = "x.png" if "png" in kind else "x.jpg"
    results: dict[str, list[tuple[float, float, float]]] = {"this": [], ref: []}
    with tempfile.TemporaryDirectory(prefix="serve-ab-", dir=bulk_identify.OUT) as scratch, ExitStack() as stack:
        worktree = Path(scratch) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(worktree), ref], check=True)
        stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)])
        servers = {}
        for i, (label, tree) in enumerate([("this", ROOT), (ref, worktree)]):
            port = free_port()
            proc = stack.enter_context(running_server(Path(scratch) / f"lib{i}", port, stub=stub, tree=tree))
            servers[label] = (proc.pid, port)
            load(port, data, name, 1, 30)  # warm up
        for _ in range(rounds):
            for label in random.sample(list(servers), len(servers)):
                pid, port = servers[label]
                cpu = cpu_seconds(pid)
                r = load(port, data, name, clients, max(1, per_round // clients))
                results[label].append((r["p50_ms"], (cpu_seconds(pid) - cpu) * 1000 / r["requests"], r["rps"]))
    this, other = np.array(results["this"]), np.array(results[ref])
    diff = this - other
    return {"image": kind, "ref": ref, "stub": stub, "clients": clients, "rounds": rounds, "per_round": per_round,
            "this_p50_ms": float(np.median(this[:, 0])), "ref_p50_ms": float(np.median(other[:, 0])),
            "this_cpu_ms": float(np.median(this[:, 1])), "ref_cpu_ms": float(np.median(other[:, 1])),
            "p50_diff_ms": float(np.median(diff[:, 0])), "p50_diff_iqr_ms": np.percentile(diff[:, 0], [25, 75]).tolist(),
            "cpu_diff_ms": float(np.median(diff[:, 1])), "cpu_diff_iqr_ms": np.percentile(diff[:, 1], [25, 75]).tolist(),
            "this_rps": float(np.median(this[:, 2])), "ref_rps": float(np.median(other[:, 2])),
            "rps_diff": float(np.median(diff[:, 2]))}


def free_port() -> int:
    from socket import socket

    with socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement (split over the clients)")
    parser.add_argument("--model", default="resnet18", help="any timm model name")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--against", metavar="REF", help="compare this checkout's service with git REF's, side by side")
    parser.add_argument("--rounds", type=int, default=20, help="with --against: alternating rounds")
    parser.add_argument("--clients", type=int, default=1, help="with --against: concurrent clients")
    parser.add_argument("--forward", action=argparse.BooleanOptionalAction, default=False,
                        help="with --against: the real forward pass (default: stubbed out, the service alone)")
    args = parser.parse_args()
    if args.child and args.child.startswith("stub-server:"):
        return stub_server(int(args.child.split(":")[1]))
    if args.child and args.child.startswith("model:"):
        folder, model, size = args.child.removeprefix("model:").rsplit(":", 2)
        return bulk_identify.model_library(Path(folder), model, int(size))
    if args.child:
        print_result(raw_child(args.child))
        return
    os.environ[MODEL_LIB_VAR] = str(model_library(args.model, args.img_size))
    print(f"model: {args.model} at {args.img_size} px", flush=True)
    if args.against:
        return compare(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="serve-", dir=bulk_identify.OUT) as scratch:
        port = free_port()
        for kind, data in images().items():
            out = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True, check=True)
            raw = result_of(out.stdout)
            print(f"{kind:15s} raw forward   p50 {raw['p50_ms']:6.1f} ms  p99 {raw['p99_ms']:6.1f} ms", flush=True)
            name = "x.png" if "png" in kind else "x.jpg"
            with running_server(Path(scratch) / kind.replace(" ", "-"), port):
                load(port, data, name, 1, 20)  # warm up
                for clients in (1, 8):
                    r = load(port, data, name, clients, max(1, args.requests // clients))
                    r.update(image=kind, raw_p50_ms=raw["p50_ms"], overhead_p50=(r["p50_ms"] - raw["p50_ms"]) / raw["p50_ms"],
                             overhead_ms=r["p50_ms"] - r["model_p50_ms"])
                    rows.append(r)
                    print(f"{kind:15s} {clients} client{'s' if clients > 1 else ' '}    p50 {r['p50_ms']:6.1f} ms"
                          f"  p99 {r['p99_ms']:6.1f} ms  (in the server {r['server_p50_ms']:5.1f} ms,"
                          f" its forward {r['model_p50_ms']:5.1f} ms, batch {r['mean_batch']:.1f})"
                          f"  {r['rps']:6.1f} requests/s  overhead at p50"
                          f" {r['overhead_p50']:+.0%}  ({r['errors']} errors)", flush=True)
            one_client = next(r for r in rows if r["image"] == kind and r["clients"] == 1)
            with running_server(Path(scratch) / f"{kind.replace(' ', '-')}-stub", port, stub=True):
                load(port, data, name, 1, 20)
                r = load(port, data, name, 1, args.requests)
                one_client.update(stub_p50_ms=r["p50_ms"], stub_server_p50_ms=r["server_p50_ms"])
                print(f"{kind:15s} no forward   p50 {r['p50_ms']:6.1f} ms  (in the server {r['server_p50_ms']:5.1f} ms):"
                      f" the service by itself", flush=True)
    print()
    for r in rows:
        if r["clients"] == 1:
            ok = r["overhead_p50"] < 0.2
            print(f"{'PASS' if ok else 'FAIL'}  {r['image']}: server overhead at p50 {r['overhead_p50']:.0%} of the"
                  f" raw forward {r['raw_p50_ms']:.1f} ms (target < 20%); p50 minus the server's own forward"
                  f" p50: {r['overhead_ms']:.1f} ms; {r['stub_p50_ms']:.1f} ms with no forward pass at all")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"figures written to {args.json}")


def compare(args) -> None:
    """``--against REF``: each image, this checkout's service and REF's side by side."""
    rows = []
    per_round = max(1, args.requests // args.rounds)
    for kind, data in images().items():
        r = against(args.against, kind, data, args.rounds, per_round, stub=not args.forward, clients=args.clients)
        rows.append(r)
        print(f"{kind:15s} p50 {r['this_p50_ms']:6.2f} ms here, {r['ref_p50_ms']:6.2f} ms at {args.against};"
              f" paired difference {r['p50_diff_ms']:+.2f} ms (IQR {r['p50_diff_iqr_ms'][0]:+.2f} to"
              f" {r['p50_diff_iqr_ms'][1]:+.2f}); server CPU a request {r['this_cpu_ms']:.2f} against"
              f" {r['ref_cpu_ms']:.2f} ms ({r['cpu_diff_ms']:+.2f}); requests/s {r['this_rps']:.1f} against"
              f" {r['ref_rps']:.1f} ({r['rps_diff']:+.1f})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
