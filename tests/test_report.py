"""`curator report`: the numbers match the library; the HTML page renders in headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from browser import chromium_page, requires_browser
from conftest import as_json, error
from curator import evaluation, report, transactions
from curator.library import open_library
from curator.library.models import Evaluation, Run

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
        assert row["accuracy"] == child_pc[row["class"]]["recall"]
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


def test_cli_html_json_terminal(reported, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("CURATOR_DB", reported.url.removeprefix("sqlite:///"))
    out = tmp_path / "report.html"
    r = cli("report", "--out", out)
    assert r.exit_code == 0 and r.stdout.startswith(f"Wrote {out}")
    page = out.read_text()
    assert len(re.findall(r"<img alt='[^']+' src='data:image/png;base64,", page)) == 6
    assert "http://" not in page and "https://" not in page  # self-contained
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


@requires_browser
def test_the_report_renders_in_chromium(reported, tmp_path):
    from test_browser import keep

    out = tmp_path / "report.html"
    out.write_text(report.html(report.gather(reported)))
    with chromium_page() as page:
        page.goto(out.as_uri())
        page.wait_for_function("[...document.images].every(i => i.complete)")
        drawn = page.evaluate("[...document.images].filter(i => i.naturalWidth > 300).length")
        headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
        page.screenshot(path=tmp_path / "report.png", full_page=True)
    keep(tmp_path / "report.png")
    assert drawn == 6
    assert headings == ["Accuracy by model version", "Accuracy over time", "Per-class accuracy and change",
                        "Reliability diagram", "Usage", "Training curves"]
