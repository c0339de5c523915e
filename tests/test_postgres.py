"""The library on PostgreSQL: a private server per test session (tests/postgres.py), a fresh
database per test. The CLI end to end with real images. (Migrations on PostgreSQL:
tests/test_migrations.py; two sessions labelling at once: tests/test_concurrency.py; the whole
suite: CURATOR_TEST_BACKEND=postgresql.)"""

from __future__ import annotations


import pytest

from curator.library import schema

from conftest import as_json


@pytest.fixture
def pg_cli(cli, pg_url, monkeypatch, tmp_path):
    """`cli`, pointed at a fresh PostgreSQL database (the library's folder under tmp_path)."""
    monkeypatch.setenv("CURATOR_DB", pg_url)
    monkeypatch.setenv("CURATOR_HOME", str(tmp_path / "home"))
    return cli


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_cli_init_and_db_current(pg_cli, pg_url):
    head = schema.head_revision()
    assert flat(pg_cli("init").stdout) == f"Created library {pg_url} (schema {head})."
    assert flat(pg_cli("db", "current").stdout) == f"library: {head} expected: {head}"
    assert flat(pg_cli("init").stdout) == f"Library {pg_url} is up to date (schema {head})."
    assert as_json(pg_cli("stats", "--json"))["library"] == pg_url


def test_import_label_relabel_history_round_trip(pg_cli, make_tree):
    root = make_tree({"emu/e1.png": 1, "emu/e2.png": 2, "loose.png": 3})
    pg_cli("init")
    assert as_json(pg_cli("import", root, "--labels-from-folders", "--json"))["added"] == 3
    loose = str(root / "loose.png")
    assert as_json(pg_cli("label", loose, "--class", "wombat", "--create", "--json"))["changed"]
    assert as_json(pg_cli("relabel", "--of", "emu", "--class", "kangaroo/joey", "--create",
                          "--json"))["unchanged"] == 0
    assert as_json(pg_cli("relabel", loose, "--class", "emu", "--json"))["changed"]
    assert [(e["action"], e["old"], e["new"], e["actor"])
            for e in as_json(pg_cli("history", loose, "--json"))] == [
        ("import", None, "unlabelled", "tester"),
        ("label", "unlabelled", "wombat", "tester"),
        ("relabel", "wombat", "emu", "tester"),
    ]
    e1 = as_json(pg_cli("show", root / "emu" / "e1.png", "--json"))
    assert (e1["label"], [e["new"] for e in e1["history"]]) == ("kangaroo/joey", ["emu", "kangaroo/joey"])
    stats = as_json(pg_cli("stats", "--json"))
    assert (stats["images"], stats["labelled"], stats["classes"], stats["history_rows"]) == (3, 3, 3, 7)


def test_an_unreachable_server_is_one_line(cli):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("stats", "--db", f"postgresql+psycopg://curator@127.0.0.1:{port}/nowhere")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.startswith("Error: the library's database failed: connection failed: ")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
