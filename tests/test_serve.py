"""The prediction service on loopback with real HTTP requests; thresholds; feedback; transactions."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import requests
from sqlalchemy import func, select

from conftest import SAMPLE, as_json, error
from test_formats import KINDS, PRESENT, _png_bomb, _write
from curator import serve, thresholds
from curator.library import open_library
from curator.library.models import Image, Threshold, Transaction


# -- thresholds ----------------------------------------------------------------------------------

def test_choose_the_lowest_threshold_reaching_the_precision():
    # answers by confidence: 0.95 right, 0.9 right, 0.8 wrong, 0.7 right, 0.6 wrong, 0.5 right
    correct = np.array([True, True, False, True, False, True])
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    assert thresholds.choose(correct, conf, 1.0) == {"threshold": 0.9, "precision": 1.0, "answered": 2}
    assert thresholds.choose(correct, conf, 0.75) == {"threshold": 0.7, "precision": 0.75, "answered": 4}
    assert thresholds.choose(correct, conf, 0.6) == {"threshold": 0.5, "precision": 4 / 6, "answered": 6}
    assert thresholds.choose(np.array([False, False]), np.array([0.9, 0.8]), 0.5) is None
    assert thresholds.choose(np.array([], dtype=bool), np.array([]), 0.5) is None


def test_thresholds_of_a_run(trained_copy, cli, monkeypatch):
    monkeypatch.setenv("CURATOR_DB", str(trained_copy))
    out = as_json(cli("thresholds", "parent", "--precision", "0.9", "--json"))
    lib = open_library(trained_copy)
    rows = {r["class"]: r for r in out["classes"]}
    assert out["run"] == "parent" and out["images"] > 0 and "*" in rows
    for r in out["classes"]:
        if r["own"] and r["class"] != "*":
            assert r["precision"] >= 0.9 and 0 < r["threshold"] <= 1
        elif r["class"] != "*":
            assert r["threshold"] == rows["*"]["threshold"]
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Threshold)) == len(out["classes"])
    assert error(cli("thresholds", "parent", "--precision", "1.5")) == "Error: --precision 1.5 is not in (0, 1]"
    assert error(cli("thresholds", "nope")) == "Error: no run named 'nope': see `curator runs`"


# -- the service ---------------------------------------------------------------------------------

@pytest.fixture
def service(trained_copy, tmp_path):
    """`curator serve`'s app for run parent on a free loopback port, keeping images in tmp_path."""
    import uvicorn

    from browser import free_port

    lib = open_library(trained_copy)
    app = serve.create_app(lib, "parent", store=tmp_path / "served", max_bytes=200_000, device="cpu")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    server.url, server.lib, server.app = f"http://127.0.0.1:{port}", lib, app
    yield server
    server.should_exit = True
    thread.join(timeout=10)


def sample_png() -> tuple[str, bytes]:
    path = sorted((SAMPLE / "pool").glob("*.png"))[0]
    return path.name, path.read_bytes()


def logged(lib, tid: int) -> Transaction:
    with lib.session() as s:
        t = s.get(Transaction, tid)
        s.expunge(t)
        return t


def test_predict_answers_and_logs_a_transaction(service):
    name, data = sample_png()
    r = requests.post(f"{service.url}/predict", files={"file": (name, data, "image/png")}, data={"client": "shop-7"})
    assert r.status_code == 200, r.text
    a = r.json()
    classes = service.app.state.predictor.classes
    assert a["run"] == "parent" and len(a["top_k"]) == min(5, len(classes))
    assert a["predicted"] == a["top_k"][0]["class"] and a["confidence"] == a["top_k"][0]["confidence"]
    assert [x["confidence"] for x in a["top_k"]] == sorted((x["confidence"] for x in a["top_k"]), reverse=True)
    # No thresholds yet: the answer is given, and it says that nothing decided whether it is sure.
    assert (a["threshold"], a["sure"], a["answer"]) == (None, None, a["predicted"])
    assert a["note"] == "no threshold set: every answer is given; run `curator thresholds parent`"
    t = logged(service.lib, a["transaction"])
    assert (t.status, t.client, t.predicted, t.sure, t.threshold, t.bytes) == (200, "shop-7", a["predicted"], None,
                                                                                 None, len(data))
    assert t.latency_ms > 0 and t.model_ms > 0 and len(t.sha256) == 64
    assert t.stored_path and open(t.stored_path, "rb").read() == data
    assert requests.get(f"{service.url}/health").json() == {"run": "parent", "classes": len(classes), "thresholds": False}


def test_below_the_threshold_the_answer_is_not_sure(trained_copy, tmp_path):
    lib = open_library(trained_copy)
    thresholds.compute(lib, "parent", target_precision=0.5)
    with lib.session() as s:
        run_id = s.scalar(select(Threshold.run_id))
        s.query(Threshold).filter_by(run_id=run_id).update({"threshold": 0.999999})
    predictor = serve.Predictor(lib, "parent", device="cpu")
    top, _, _ = predictor.answer(predictor.pixels(sample_png()[1]))
    assert predictor.threshold(top[0][0]) == 0.999999
    from fastapi.testclient import TestClient

    client = TestClient(serve.create_app(lib, "parent", device="cpu"))
    a = client.post("/predict", files={"file": ("x.png", sample_png()[1], "image/png")}).json()
    assert (a["sure"], a["answer"], a["threshold"], a["note"]) == (False, serve.NOT_SURE, 0.999999, None)


def test_waiting_requests_share_one_forward_pass(trained_copy):
    """Requests that queue while the model is busy go through the next forward pass together,
    and each gets the answer it would have got alone."""
    from concurrent.futures import ThreadPoolExecutor

    lib = open_library(trained_copy)
    predictor = serve.Predictor(lib, "parent", device="cpu", max_batch=4)
    pixels = [predictor.pixels(p.read_bytes()) for p in sorted((SAMPLE / "pool").glob("*.png"))[:6]]
    alone = [predictor.answer(px) for px in pixels]
    assert {batch for _, _, batch in alone} == {1}
    busy = threading.Event()
    predictor._model_thread.submit(busy.wait)  # the model is busy: the six requests queue
    with ThreadPoolExecutor(6) as pool:
        answers = [pool.submit(predictor.answer, px) for px in pixels]
        deadline = time.time() + 10
        while predictor._waiting.qsize() < 6 and time.time() < deadline:
            time.sleep(0.01)
        busy.set()
        together = [a.result(timeout=60) for a in answers]
    assert sorted(batch for _, _, batch in together) == [2, 2, 4, 4, 4, 4]  # max_batch 4, then the rest
    for (top_alone, _, _), (top_together, _, _) in zip(alone, together):
        assert [c for c, _ in top_together] == [c for c, _ in top_alone]
        assert np.allclose([p for _, p in top_together], [p for _, p in top_alone], atol=1e-4)


def test_concurrent_clients_are_all_answered_and_logged(service):
    from concurrent.futures import ThreadPoolExecutor

    name, data = sample_png()

    def post(k: int) -> dict:
        r = requests.post(f"{service.url}/predict", files={"file": (name, data, "image/png")}, data={"client": f"c{k}"})
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert len({a["transaction"] for a in answers}) == 16 and all(1 <= a["batch"] <= 8 for a in answers)
    assert len({a["predicted"] for a in answers}) == 1  # one image, one answer, whatever the batch
    with service.lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Transaction).where(Transaction.client.like("c%"))) == 16


@pytest.mark.parametrize("upload, status, detail", [
    (("notes.txt", b"hello", "text/plain"), 415, "content type text/plain is not an image type"),
    (("x.png", b"", "image/png"), 400, "empty upload"),
    (("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "image/png"), 400, "not an image: no image format recognises this file"),
    (("notes.png", b"just some text\n", "image/png"), 400, "not an image: no image format recognises this file"),
    (("bomb.png", _png_bomb(20_000, 20_000), "image/png"), 413, "decompression bomb: 20000x20000 is 400,000,000 pixels"),
    (("big.png", b"\0" * 200_001, "image/png"), 413, "image larger than 0 MiB"),
    (None, 422, "file: Field required"),
])
def test_bad_input_is_a_4xx_and_logged(service, upload, status, detail):
    files = {"file": upload} if upload else None
    r = requests.post(f"{service.url}/predict", files=files, data={"client": "tests"})
    assert r.status_code == status and r.json()["detail"].startswith(detail), r.text
    assert "\n" not in r.json()["detail"] and "BytesIO" not in r.json()["detail"]
    with service.lib.session() as s:
        t = s.scalars(select(Transaction).order_by(Transaction.id.desc())).first()
        assert (t.status, t.predicted) == (status, None) and t.error.startswith(detail)
    ok = requests.post(f"{service.url}/predict", files={"file": ("y.png", sample_png()[1], "image/png")})
    assert ok.status_code == 200  # still serving


def test_a_truncated_image_is_refused(service):
    name, data = sample_png()
    r = requests.post(f"{service.url}/predict", files={"file": (name, data[: len(data) // 2], "image/png")})
    assert r.status_code == 400 and r.json()["detail"] == "corrupt or truncated: image file is truncated"


def test_every_mode_import_reads_is_answered(service, tmp_path):
    for name in PRESENT:
        _write(tmp_path, name, seed=len(name))
        r = requests.post(f"{service.url}/predict", files={"file": (name, (tmp_path / name).read_bytes(),
                                                                    "application/octet-stream")})
        assert r.status_code == 200, (name, KINDS[name][1], r.text)


def test_feedback_over_http_and_from_the_cli(service, cli, monkeypatch):
    name, data = sample_png()
    a = requests.post(f"{service.url}/predict", files={"file": (name, data, "image/png")}).json()
    b = requests.post(f"{service.url}/predict", files={"file": ("jpg.jpg", _jpeg(), "image/jpeg")}).json()
    r = requests.post(f"{service.url}/feedback", json={"transaction": a["transaction"], "correct": True})
    assert r.status_code == 200 and r.json()["correct"] is True and r.json()["true_label"] == a["predicted"]
    other = next(c for c in service.app.state.predictor.classes if c != b["predicted"])
    r = requests.post(f"{service.url}/feedback", json={"transaction": b["transaction"], "label": other})
    assert r.status_code == 200 and (r.json()["correct"], r.json()["true_label"]) == (False, other)
    assert requests.post(f"{service.url}/feedback", json={"transaction": 999999, "correct": True}).status_code == 404
    bad = requests.post(f"{service.url}/feedback", json={"transaction": a["transaction"], "label": "zebra"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("no class 'zebra'")
    assert requests.post(f"{service.url}/feedback", json={"transaction": a["transaction"]}).status_code == 422
    monkeypatch.setenv("CURATOR_DB", service.lib.url.removeprefix("sqlite:///"))
    out = as_json(cli("feedback", str(a["transaction"]), "--wrong", "--json"))
    assert (out["correct"], out["true_label"]) == (False, None)
    assert error(cli("feedback", "999999", "--correct")) == "Error: no transaction 999999"
    listed = as_json(cli("transactions", "--reviewed", "--json"))
    assert [t["id"] for t in listed] == [b["transaction"], a["transaction"]]
    # the reviewed image with a right label joins the library, labelled
    imported = as_json(cli("transactions", "--import-reviewed", "--json"))
    assert imported["imported"] == [b["transaction"]]
    with service.lib.session() as s:
        image = s.scalar(select(Image).where(Image.id == logged(service.lib, b["transaction"]).image_id))
        assert (image.label, image.source) == (other, "production")
    assert as_json(cli("transactions", "--import-reviewed", "--json"))["imported"] == []


def _jpeg() -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (300, 200), (200, 30, 40)).save(buf, "JPEG")
    return buf.getvalue()


def test_curator_serve_runs_until_ctrl_c(trained_copy):
    import os
    import signal
    import subprocess
    import sys

    from browser import free_port

    port = free_port()
    env = {**os.environ, "CURATOR_DB": str(trained_copy), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "curator", "serve", "--run", "parent", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert health == {"run": "parent", "classes": health and health["classes"], "thresholds": False}, proc.stdout
        r = requests.post(f"http://127.0.0.1:{port}/predict", files={"file": ("a.png", sample_png()[1], "image/png")})
        assert r.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read().startswith(f"Serving on http://127.0.0.1:{port}")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_same_upload_kept_by_many_requests_at_once(tmp_path):
    # Requests carrying the same image each write the stored copy; none may find another's
    # temporary file gone (this raised FileNotFoundError, a 500, under concurrent clients).
    from concurrent.futures import ThreadPoolExecutor

    from curator import transactions

    data = b"the same bytes" * 1000
    barrier = threading.Barrier(16)

    def keep(_):
        barrier.wait()
        return transactions.keep(tmp_path, "ab" * 32, data, "x.png")

    with ThreadPoolExecutor(16) as pool:
        paths = set(pool.map(keep, range(16)))
    assert len(paths) == 1 and open(paths.pop(), "rb").read() == data
    assert [p.name for p in (tmp_path / "ab").iterdir()] == [f"{'ab' * 32}.png"]
