"""The prediction service: a run's model over HTTP, every request a transaction in the library.

``create_app(lib, run)`` builds a FastAPI app:

- ``POST /predict`` (multipart ``file``, optional ``client`` tag): the top-k classes and
  confidences, and whether the top confidence clears the class's threshold (``curator
  thresholds``); below it the answer is "not sure". With no thresholds set for the run,
  ``sure`` and ``threshold`` are null and ``note`` says so. Every format and mode that
  ``curator import`` reads is read here (``curator.decode``); bad input (not an image,
  truncated, a decompression bomb, too large, wrong content type) gets a 4xx with a one-line
  ``detail`` (``not an image: ...``), and is logged too.
- ``POST /feedback`` (JSON ``{"transaction": ID, "correct": true}`` or ``{"transaction": ID,
  "label": "CLASS"}``): a manual review of an answer.
- ``GET /health``: the run being served.

The model runs on one thread of its own. Requests that arrive while it is busy wait in a queue
and go through the next forward pass together, as one batch (up to ``max_batch``): no request
waits for others to arrive, and under concurrent clients the model works on batches. The web
server's thread pool reads uploads, decodes images and writes transactions meanwhile.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
import hashlib
import io
import json
import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from curator import transactions
from curator.errors import CuratorError
from curator.library import Library
from curator.library.models import Transaction

NOT_SURE = "not sure"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff",
               "image/heic", "image/heif", "image/avif", "application/octet-stream")


class BadImage(CuratorError):
    """An upload that cannot be answered; ``status`` is the HTTP status to return."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    transaction: int
    run: str
    answer: str  # the class, or "not sure"
    predicted: str
    confidence: float
    threshold: float | None  # None: the run has no thresholds
    sure: bool | None  # None: no threshold to be sure against
    top_k: list[dict]
    latency_ms: float
    model_ms: float
    batch: int  # images in the forward pass that answered it
    note: str | None = None


class Feedback(BaseModel):
    """The body of ``POST /feedback``."""

    transaction: int
    correct: bool | None = None
    label: str | None = None
    reviewer: str | None = None


class Predictor:
    """A run's model, classes and thresholds; images that wait for the model share a forward pass."""

    def __init__(self, lib: Library, ref: str = "production", *, top_k: int = 5, device: str = "auto",
                 max_batch: int = 8) -> None:
        from curator import predict, thresholds
        from curator.devices import pick_device

        self.lib = lib
        # All torch work (loading included) on one thread of our own. The web server runs
        # requests on a pool of threads, and every thread that calls into torch gets an OpenMP
        # team of its own whose spinning workers slow the others: measured on 2 cores, the
        # forward pass took 17 ms instead of 12 once a second thread had used torch.
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="curator-model")
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()  # (pixels, Future) for the next batch
        self.max_batch = max(1, max_batch)
        self.model, ckpt, self.run_id = self._model_thread.submit(
            predict.load_model, lib, ref, pick_device(device)).result()
        self.model.eval()
        self.data_config, self.classes = ckpt["data_config"], ckpt["classes"]
        self.size = self.data_config["input_size"][-1]
        self.top_k = min(top_k, len(self.classes))
        self.thresholds = thresholds.load(lib, self.run_id)
        from curator.runs import find_run

        with lib.session() as s:
            self.run = find_run(s, str(self.run_id)).name
        self.no_threshold_note = f"no threshold set: every answer is given; run `curator thresholds {self.run}`"

    def threshold(self, cls: str) -> float | None:
        """The class's threshold, else the pooled one; None when the run has none."""
        from curator.thresholds import POOLED

        return self.thresholds.get(cls, self.thresholds.get(POOLED))

    def pixels(self, data: bytes):
        """Decoded, resized pixels ``(1, 3, S, S)`` uint8; BadImage (400, 413 for a bomb) if they
        cannot be, with the reason an import would give."""
        import torch

        from curator.data import load_pixels
        from curator.decode import MAX_PIXELS, Unreadable, first_line

        try:
            array = load_pixels(io.BytesIO(data), self.size, max_pixels=MAX_PIXELS)
        except Unreadable as e:
            raise BadImage(413 if str(e).startswith("decompression bomb") else 400, str(e)) from None
        except Exception as e:  # noqa: BLE001  whatever a decoder raises, the upload is refused
            raise BadImage(400, f"cannot be decoded: {type(e).__name__}: {first_line(e)}") from None
        return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)

    def answer(self, pixels) -> tuple[list[tuple[str, float]], float, int]:
        """Top-k ``[(class, confidence), ...]``, the forward pass's milliseconds and its batch size."""
        done: Future = Future()
        self._waiting.put((pixels, done))
        self._model_thread.submit(self._forward_waiting)
        probs, model_ms, batch = done.result()
        conf, idx = probs.topk(self.top_k)
        return [(self.classes[i], round(float(c), 6)) for c, i in zip(conf.tolist(), idx.tolist())], model_ms, batch

    def _forward_waiting(self) -> None:
        """On the model's thread: one forward pass over every image waiting (up to max_batch).

        Each request queues its image and then this call, so there are as many calls as images;
        a call that finds the queue emptied by an earlier batch does nothing.
        """
        import torch

        from curator.predict import forward

        batch = []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        try:
            started = time.perf_counter()
            pixels = batch[0][0] if len(batch) == 1 else torch.cat([px for px, _ in batch])
            probs, _ = forward(self.model, pixels, self.data_config)
            model_ms = (time.perf_counter() - started) * 1000
        except BaseException as e:  # noqa: BLE001  every waiting request gets it, none hangs
            for _, done in batch:
                done.set_exception(e)
            return
        for row, (_, done) in zip(probs, batch):
            done.set_result((row, model_ms, len(batch)))


def create_app(lib: Library, ref: str = "production", *, top_k: int = 5, store: str | Path | None = None,
               max_bytes: int = 20 * 2**20, device: str = "auto", max_batch: int = 8):
    """The FastAPI app serving run ``ref`` (``store``: a folder that keeps every uploaded image;
    ``max_batch``: the most waiting requests one forward pass answers together)."""
    predictor = Predictor(lib, ref, top_k=top_k, device=device, max_batch=max_batch)
    store = Path(store) if store else None
    app = FastAPI(title="curator", description=f"Predictions of run {predictor.run}")

    def log(started: float, **fields) -> int:
        fields.setdefault("run_id", predictor.run_id)
        fields["latency_ms"] = (time.perf_counter() - started) * 1000
        return transactions.record(lib, **fields)

    @app.exception_handler(BadImage)
    def bad_image(request: Request, exc: BadImage):
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    def malformed(request: Request, exc: RequestValidationError):
        """A request without its file or with a malformed body: one line, and logged."""
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        if request.url.path == "/predict":
            log(time.perf_counter(), status=422, error=message)
        return JSONResponse(status_code=422, content={"detail": message})

    @app.get("/health")
    def health() -> dict:
        return {"run": predictor.run, "classes": len(predictor.classes), "thresholds": bool(predictor.thresholds)}

    @app.post("/predict")
    def predict(file: UploadFile = File(...), client: str | None = Form(None)) -> JSONResponse:
        started = time.perf_counter()
        data = file.file.read(max_bytes + 1)
        common = {"client": client, "bytes": len(data)}
        try:
            if file.content_type and file.content_type.split(";")[0].strip() not in IMAGE_TYPES:
                raise BadImage(415, f"content type {file.content_type} is not an image type")
            if len(data) > max_bytes:
                raise BadImage(413, f"image larger than {max_bytes // 2**20} MiB")
            if not data:
                raise BadImage(400, "empty upload")
            sha = hashlib.sha256(data).hexdigest()
            common["sha256"] = sha
            pixels = predictor.pixels(data)
        except BadImage as e:
            log(started, status=e.status, error=str(e), **common)
            raise
        top, model_ms, batch = predictor.answer(pixels)
        stored = transactions.keep(store, sha, data, file.filename) if store else None
        predicted, confidence = top[0]
        threshold = predictor.threshold(predicted)
        sure = None if threshold is None else confidence >= threshold
        tid = log(started, status=200, stored_path=stored, predicted=predicted, confidence=confidence,
                  top_k=json.dumps(top), threshold=threshold, sure=sure, model_ms=model_ms, **common)
        answer = Answer(transaction=tid, run=predictor.run, answer=NOT_SURE if sure is False else predicted,
                        predicted=predicted, confidence=confidence, threshold=threshold, sure=sure,
                        top_k=[{"class": c, "confidence": p} for c, p in top],
                        latency_ms=round((time.perf_counter() - started) * 1000, 3), model_ms=round(model_ms, 3),
                        batch=batch, note=predictor.no_threshold_note if threshold is None else None)
        # A response, not a dict: FastAPI returns it as is, where a dict from a sync endpoint is
        # validated and encoded on a second trip through the thread pool (0.6 ms a request).
        return JSONResponse(answer.__dict__)

    @app.post("/feedback")
    def feedback(body: Feedback) -> dict:
        try:
            return transactions.feedback(lib, body.transaction, correct=body.correct, label=body.label,
                                         reviewer=body.reviewer)
        except CuratorError as e:
            status = 404 if "no transaction" in str(e) else 422
            raise HTTPException(status_code=status, detail=str(e)) from None

    app.state.predictor = predictor
    return app


def serve(lib: Library, ref: str = "production", *, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """Run the service until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(lib, ref, **options), host=host, port=port, log_level="warning")


__all__ = ["create_app", "serve", "Predictor", "BadImage", "NOT_SURE", "Transaction"]
