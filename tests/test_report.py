"""`curator report`: the numbers match the library, helper runs stay out, the page is written
where asked (or says why not) and reads well in headless Chromium (screenshots kept, see
tests/browser.py:keep)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from browser import chromium_page, keep, page_errors, requires_browser
from conftest import as_json, error
from curator import evaluation, report, report_page, transactions
from curator.library import open_library
from curator.library.models import SUSPECTS_PURPOSE, Evaluation, Run, RunEpoch

DAY1, DAY2 = datetime(2026, 11, 20, 10), datetime(2026, 11, 21, 15)


@pytest.fixture
def reported(trained_copy):
    """Both runs evaluated on test; child served 6 requests over two days (4 reviewed, 1 refused)."""
    lib = open_library(trained_copy)
    for run in ("parent", "child"):
        evaluation.evaluate(lib, run, "test")
    with lib.session() as s:
        child = s.scalar(select(Run).where(Run.name == "child"))
        child.promoted_at = DAY1
        classes = json.loads(child.classes)
        child_id = child.id
    served = [(DAY1, 0.95, True, True), (DAY1, 0.55, False, False), (DAY1, 0.92, True, None),
              (DAY2, 0.85, True, True), (DAY2, 0.35, False, True)]
    for at, conf, sure, correct in served:
        tid = transactions.record(lib, at=at, run_id=child_id, status=200, predicted=classes[0], confidence=conf,
                                  top_k=json.dumps([[classes[0], conf]]), threshold=0.6, sure=sure, latency_ms=20.0 + conf,
                                  model_ms=15.0, sha256="0" * 64)
        if correct is not None:
            transactions.feedback(lib, tid, correct=correct)
    transactions.record(lib, at=DAY2, run_id=child_id, status=415, error="content type text/plain is not an image type",
                        latency_ms=1.0)
    lib.classes = classes
    return lib


def add_helper_run(lib, of: str = "child") -> str:
    """A finished suspects fold of run ``of``, newer than every run, with curves and a test
    evaluation of its own: what `curator suspects` leaves behind."""
    with lib.session() as s:
        run = s.scalar(select(Run).where(Run.name == of))
        fold = Run(name=f"suspects-{of}-fold1", purpose=SUSPECTS_PURPOSE, status="done", build_id=run.build_id,
                   model=run.model, classes=run.classes, folder="runs/fold1", created_at=datetime.now())
        s.add(fold)
        s.flush()
        s.add_all(RunEpoch(run_id=fold.id, epoch=e, train_loss=1.0 / e, train_acc=0.5, val_loss=1.0, val_acc=0.5,
                           lr=1e-3, seconds=1.0) for e in (1, 2, 3))
        s.add(Evaluation(run_id=fold.id, split="test", metrics=json.dumps(
            {"accuracy": 0.5, "n": 10, "per_class": [{"class": "x", "recall": 0.5, "support": 10}]})))
        return fold.name


def test_the_numbers_match_the_library(reported):
    data = report.gather(reported)
    with reported.session() as s:
        stored = {(e.run_id, e.split): json.loads(e.metrics) for e in s.scalars(select(Evaluation))}
        ids = {r.name: r.id for r in s.scalars(select(Run))}
    v = {r["run"]: r for r in data["versions"]}
    assert v["parent"]["test_accuracy"] == stored[ids["parent"], "test"]["accuracy"]
    assert v["child"]["test_accuracy"] == stored[ids["child"], "test"]["accuracy"]
    assert (v["child"]["production_accuracy"], v["child"]["production_reviewed"], v["child"]["requests"]) == (0.75, 4, 6)
    assert (v["child"]["production"], v["parent"]["production"], data["production"]) == (True, False, "child")
    assert data["usage"] == [
        {"date": "2026-11-20", "requests": 3, "answered": 3, "refused": 0, "not_sure": 1, "share_not_sure": 1 / 3,
         "p50_latency_ms": 20.92},
        {"date": "2026-11-21", "requests": 3, "answered": 2, "refused": 1, "not_sure": 1, "share_not_sure": 0.5,
         "p50_latency_ms": 20.6}]
    pc = data["per_class"]
    assert (pc["run"], pc["previous"]) == ("child", "parent")
    child_pc = {c["class"]: c for c in stored[ids["child"], "test"]["per_class"]}
    parent_pc = {c["class"]: c for c in stored[ids["parent"], "test"]["per_class"]}
    for row in pc["rows"]:
        assert row["accuracy"] == (child_pc[row["class"]]["recall"] if row["support"] else None)
        if row["class"] in parent_pc:
            assert row["change"] == pytest.approx(row["accuracy"] - parent_pc[row["class"]]["recall"])
        else:
            assert row["change"] is None  # a class the parent did not have
    assert sum(b["n"] for b in data["reliability"]["test"]) == stored[ids["child"], "test"]["n"]
    prod = {b["low"]: b for b in data["reliability"]["production"] if b["n"]}
    assert {k: (b["n"], b["accuracy"]) for k, b in prod.items()} == {0.3: (1, 1.0), 0.5: (1, 0.0), 0.8: (1, 1.0), 0.9: (1, 1.0)}
    assert [r for r in data["over_time"] if r["source"] == "production"] == [
        {"date": "2026-11-20", "run": "child", "source": "production", "accuracy": 0.5, "n": 2},
        {"date": "2026-11-21", "run": "child", "source": "production", "accuracy": 1.0, "n": 2}]
    assert {r["run"] for r in data["curves"]} == {"parent", "child"}
    later = report.gather(reported, since=DAY2 - timedelta(hours=1))
    assert [r["date"] for r in later["usage"]] == ["2026-11-21"]




def test_helper_runs_are_left_out(reported):
    helper = add_helper_run(reported)
    data = report.gather(reported)
    assert [v["run"] for v in data["versions"]] == ["parent", "child"]
    assert {r["run"] for r in data["curves"]} == {"parent", "child"}
    assert (data["per_class"]["run"], data["reliability"]["run"]) == ("child", "child")
    assert helper not in json.dumps(data) and helper not in report_page.html(data)


def test_a_class_without_test_images_is_named_not_drawn(trained_copy):
    """min40 has sky-weather, whose images are all staged: it has no test images."""
    lib = open_library(trained_copy)
    evaluation.evaluate(lib, "parent", "test")
    data = report.gather(lib)
    rows = {r["class"]: r for r in data["per_class"]["rows"]}
    assert (rows["sky-weather"]["support"], rows["sky-weather"]["accuracy"], rows["sky-weather"]["change"]) == (0, None, None)
    untested = sorted(c for c, r in rows.items() if not r["support"])
    page = report_page.html(data)
    assert f"<p class='note'>No test images, so not scored: {', '.join(untested)}.</p>" in page


def test_before_any_evaluation_the_page_names_the_run_to_evaluate(trained_copy):
    data = report.gather(open_library(trained_copy))
    page = report_page.html(data)
    assert page.count("No evaluated run yet: run <code>curator evaluate child --split test</code>.") == 4
    assert "No training curves yet" not in page and "id=\"chart-training_curves\"" in page


def test_cli_html_json_terminal(reported, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("CURATOR_DB", reported.url.removeprefix("sqlite:///"))
    out = tmp_path / "report.html"
    r = cli("report", "--out", out)
    assert r.exit_code == 0 and r.stdout.startswith(f"Wrote {out}")
    page = out.read_text()
    assert len(re.findall(r"<div id=\"chart-[a-z_]+\" class=\"plotly-graph-div\"", page)) == 6
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", page)  # self-contained
    links = dict(re.findall(r"download='([a-z_]+)\.csv' href='data:text/csv;base64,([^']*)'", page))
    usage = list(csv.DictReader(io.StringIO(base64.b64decode(links["usage"]).decode())))
    assert [(u["date"], u["requests"]) for u in usage] == [("2026-11-20", "3"), ("2026-11-21", "3")]
    assert set(links) == {"accuracy_by_version", "accuracy_over_time", "per_class", "reliability", "usage", "training_curves"}
    data = as_json(cli("report", "--json"))
    assert [v["run"] for v in data["versions"]] == ["parent", "child"]
    text = cli("report", "--terminal").stdout
    assert "Key numbers" in text and "reviewed production accuracy" in text and "0.750" in text
    assert error(cli("report", "--since", "last week")) == "Error: --since last week: write a date as YYYY-MM-DD"


def test_an_empty_library_still_reports(library, cli, tmp_path):
    r = cli("report", "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert cli("report", "--terminal").exit_code == 0
    assert as_json(cli("report", "--json"))["versions"] == []


def test_missing_folders_are_created(library, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("report", "--out", "missing-folder/deeper/r.html")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Wrote missing-folder/deeper/r.html (")
    assert (tmp_path / "missing-folder" / "deeper" / "r.html").stat().st_size > 1_000_000


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder this process cannot write in (root writes anywhere but in /sys)."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def test_where_the_page_cannot_go(library, cli, tmp_path, unwritable):
    (tmp_path / "notes.txt").write_text("a file")
    cases = {
        tmp_path / "notes.txt" / "r.html":
            f"Error: cannot write {tmp_path}/notes.txt/r.html: {tmp_path}/notes.txt is a file, not a folder; "
            f"choose another --out",
        tmp_path / "notes.txt" / "sub" / "r.html":
            f"Error: cannot write {tmp_path}/notes.txt/sub/r.html: {tmp_path}/notes.txt is a file, not a folder; "
            f"choose another --out",
        tmp_path: f"Error: {tmp_path} is a folder: name the page's file, e.g. --out {tmp_path}/report.html",
        unwritable / "r.html":
            f"Error: cannot write {unwritable}/r.html: permission denied; choose a folder you can write to with --out",
    }
    for out, message in cases.items():
        assert error(cli("report", "--out", out)) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["lib", "notes.txt"] + (
        [unwritable.name] if unwritable.parent == tmp_path else []))


# -- in a real browser ---------------------------------------------------------------------------

def render(lib, tmp_path: Path, name: str) -> dict:
    """Open the report of ``lib`` in headless Chromium at 1400 px: a full-page screenshot kept as
    NAME.png, and what the page shows."""
    out = report_page.write(report.gather(lib), tmp_path / f"{name}.html")
    with chromium_page() as page, page_errors(page) as errors:
        page.goto(out.as_uri())
        page.wait_for_function("[...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('.main-svg'))")
        shown = page.evaluate("""() => ({
          text: document.querySelector('main').innerText,
          headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
          charts: document.querySelectorAll('.plotly-graph-div').length,
          drawn: [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.getBoundingClientRect().width > 1100).length,
          how: document.querySelectorAll('section p.how').length,
          overflow: document.documentElement.scrollWidth > window.innerWidth})""")
        page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
    keep(tmp_path / f"{name}.png")
    return {**shown, "errors": errors, "text": " ".join(shown["text"].split())}


HEADINGS = ["Accuracy by model version", "Accuracy over time", "Accuracy by class",
            "Does the confidence mean what it says?", "Usage", "Training curves"]


@requires_browser
def test_the_empty_report_says_what_would_fill_it(library, tmp_path):
    shown = render(library, tmp_path, "report-empty")
    assert (shown["errors"], shown["charts"], shown["how"], shown["overflow"]) == ([], 0, 6, False)
    assert shown["headings"] == HEADINGS
    for text in ["No evaluated run yet: run curator evaluate RUN --split test.",
                 "No evaluation or reviewed answer yet: run curator evaluate RUN --split test;",
                 "No served requests yet: see curator serve.",
                 "No training curves yet: curator train --splits BUILD.",
                 "choose one: curator runs promote RUN",
                 "no answer reviewed yet: curator feedback"]:
        assert text in shown["text"]
    assert shown["text"].count("No evaluated run yet: run curator evaluate RUN --split test.") == 4  # 3 charts, 1 tile


@requires_browser
def test_the_report_of_a_trained_library(reported, tmp_path):
    helper = add_helper_run(reported)
    shown = render(reported, tmp_path, "report")
    assert (shown["errors"], shown["charts"], shown["drawn"], shown["how"], shown["overflow"]) == ([], 6, 6, 6, False)
    assert shown["headings"] == HEADINGS
    assert "No evaluated run yet" not in shown["text"] and "No served requests yet" not in shown["text"]
    assert "Newest evaluated run child evaluated on" in shown["text"]
    assert re.search(r"Its test accuracy [\d.]+% (up|down|level) [\d.]+ points on parent, its parent \([\d.]+%\)",
                     shown["text"])
    assert "Served requests 6 5 answered, 1 refused; 40% below the class threshold" in shown["text"]
    assert helper not in shown["text"]
