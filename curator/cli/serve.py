"""``curator serve``, ``thresholds``, ``feedback``, ``transactions``: the model in production."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, parse_since, print_json, table


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("thresholds")(thresholds)
    app.command("feedback")(feedback)
    app.command("transactions")(transactions_)


def serve(
    run: Annotated[str, typer.Option(help="The run to serve: 'production', 'latest', a name or an id.")] = "production",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    top_k: Annotated[int, typer.Option(help="Classes per answer.", min=1)] = 5,
    store: Annotated[Optional[Path], typer.Option(help="Keep every uploaded image in this folder (opt-in).")] = None,
    max_mb: Annotated[int, typer.Option(help="Refuse uploads larger than this (413).", min=1)] = 20,
    device: Annotated[str, typer.Option(help="auto (GPU when there is one), cpu, cuda or cuda:N.")] = "auto",
    max_batch: Annotated[int, typer.Option(help="Requests waiting for the model go through one forward pass"
                                                " together, up to this many (1: one at a time).", min=1)] = 8,
    db: DbOption = None,
) -> None:
    """Serve a run over HTTP: POST /predict (an image upload), POST /feedback, GET /health.

    Every request is a transaction in the library (time, run, image hash, answer, latency,
    client tag); below the class's threshold (`curator thresholds`) the answer is "not sure".
    Before thresholds are set every answer is given, with "sure": null and a note saying so.
    Uploads are read as `curator import` reads files (every mode; HEIC and AVIF where their
    readers are installed); one that is not an image gets 400 with the reason.

    Example: curator serve --run production --port 8000 --store db/served
    """
    from curator import serve as serve_lib

    lib = open_lib(db)
    console.print(f"Serving on http://{host}:{port} (POST /predict, POST /feedback, GET /health); Ctrl-C stops.")
    serve_lib.serve(lib, run, host=host, port=port, top_k=top_k, store=store, max_bytes=max_mb * 2**20, device=device,
                   max_batch=max_batch)


def thresholds(
    run: Annotated[str, typer.Argument(help="A run name or id, 'latest' or 'production'.")],
    precision: Annotated[float, typer.Option(help="The precision each class's sure answers must reach.")] = 0.95,
    split: Annotated[str, typer.Option(help="Choose them on this split of the run's build.")] = "val",
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Propose and store a per-class confidence threshold for a target precision; serving uses them.

    Example: curator thresholds production --precision 0.95
    """
    from curator import thresholds as thresholds_lib

    result = thresholds_lib.compute(open_lib(db), run, target_precision=precision, split=split)
    if json_:
        return print_json(result)
    t = table("Class", "Threshold", "Precision", "Recall", "Support", "Own")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in result["classes"]:
        t.add_row(r["class"], f"{r['threshold']:.3f}", fmt(r["precision"]), fmt(r["recall"]), str(r["support"]),
                  "yes" if r["own"] else "pooled")
    console.print(t)
    console.print(f"Thresholds of {result['run']} for precision {precision} on {result['images']} {split} images"
                  " (class '*': all classes pooled, used where a class has too few answers to choose its own).")


def feedback(
    transaction: Annotated[int, typer.Argument(help="The transaction id a /predict answer gave.")],
    correct: Annotated[Optional[bool], typer.Option("--correct/--wrong", help="The answer was right, or wrong.")] = None,
    label: Annotated[Optional[str], typer.Option(help="The right class.")] = None,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """Record a manual review of a served answer: --correct, --wrong, or --label CLASS.

    Example: curator feedback 1234 --label wallaby
    """
    from curator import transactions

    r = transactions.feedback(open_lib(db), transaction, correct=correct, label=label)
    if json_:
        return print_json(r)
    console.print(f"Transaction {r['id']}: answered {r['predicted']}, reviewed"
                  f" {'correct' if r['correct'] else 'wrong'}" + (f", right label {r['true_label']}" if r["true_label"] else ""))


def transactions_(
    since: Annotated[Optional[str], typer.Option(help="Only from this date (YYYY-MM-DD) on.")] = None,
    reviewed: Annotated[Optional[bool], typer.Option("--reviewed/--unreviewed", help="Only reviewed, or only unreviewed.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.", min=1)] = 50,
    import_reviewed: Annotated[bool, typer.Option("--import-reviewed", help="Import the kept images of reviewed transactions as labelled real-world images.")] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """List served requests (newest first), or import the reviewed ones into the library.

    Example: curator transactions --reviewed --import-reviewed
    """
    from curator import transactions

    lib = open_lib(db)
    if import_reviewed:
        r = transactions.import_reviewed(lib)
        if json_:
            return print_json(r)
        console.print(f"Imported {len(r['imported'])} reviewed images; {len(r['already'])} were in the library"
                      f" already; {len(r['missing'])} were not kept (serve with --store to keep them).")
        return
    rows = transactions.list_transactions(lib, since=parse_since(since), reviewed=reviewed, limit=limit)
    if json_:
        return print_json(rows)
    t = table("Id", "At", "Status", "Answer", "Confidence", "Sure", "Latency ms", "Review", "Client")
    for r in rows:
        review = "" if r["reviewed_at"] is None else ("correct" if r["correct"] else f"wrong: {r['true_label'] or '?'}")
        t.add_row(str(r["id"]), r["at"], str(r["status"]), r["predicted"] or (r["error"] or "")[:40],
                  "" if r["confidence"] is None else f"{r['confidence']:.3f}", "" if r["sure"] is None else str(r["sure"]).lower(),
                  f"{r['latency_ms']:.1f}", review, r["client"] or "")
    console.print(t)
