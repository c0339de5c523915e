"""The FiftyOne app in a real browser: the server on loopback, Debian's headless Chromium
(through Playwright's client) opens a saved view of a library's dataset. Screenshots are kept
(``browser.keep``) for a person to look at."""

from __future__ import annotations

from browser import app_server, chromium_page, keep, open_view, requires_browser
from curator import fiftyone_sync as fs

pytestmark = requires_browser

def test_the_low_confidence_view_shows_its_samples(known, tmp_path):
    fs.sync(known)
    dataset = fs.open_dataset(known, create=False)
    expected = dataset.load_saved_view("low-confidence")
    labels = sorted(f"predictions: {label}" for label in expected.values("predictions.label"))
    assert len(expected) == 3
    with app_server(dataset) as session, chromium_page() as page:
        shown = open_view(page, session.server_port, dataset.name, "low-confidence")
        page.screenshot(path=tmp_path / "low-confidence.png")
        keep(tmp_path / "low-confidence.png")
        assert (shown.count, shown.view, shown.tiles) == (3, "low-confidence", 3)
        assert sorted(label for label in shown.labels if label.startswith("predictions: ")) == labels
        session.view = None  # the whole dataset: every active image
        whole = open_view(page, session.server_port, dataset.name)
        assert (whole.count, whole.view) == (18, None)


def test_curator_browse_serves_the_view_until_ctrl_c(known, db, tmp_path):
    """The real command in its own process: it joins this library's database (started here),
    serves the app, and stops cleanly on Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    import psutil

    from browser import free_port

    fs.sync(known)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CURATOR_DB": db, "PYTHONFAULTHANDLER": "1"}
    env.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
    proc = subprocess.Popen([sys.executable, "-m", "curator", "browse", "--remote", "--port", str(port),
                             "--view", "look-alike-kangaroo"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "The FiftyOne app is serving" in line:
                break
        url = f"http://127.0.0.1:{port}/datasets/curator?view=look-alike-kangaroo"
        assert lines and lines[-1].strip() == f"The FiftyOne app is serving {url}", "".join(lines)
        # Keep reading: a full pipe would block the command's next write, and then its exit.
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
        with chromium_page() as page:
            shown = open_view(page, port, "curator", "look-alike-kangaroo")
            page.screenshot(path=tmp_path / "look-alike-kangaroo.png")
            keep(tmp_path / "look-alike-kangaroo.png")
        assert (shown.count, shown.view) == (2, "look-alike-kangaroo")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # where is it stuck? (faulthandler prints every thread)
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=10)
            code = "still running 60 s after Ctrl-C"
        out = "".join(lines)
        (tmp_path / "browse.log").write_text(out)
        keep(tmp_path / "browse.log")
        stacks = out[out.find("Fatal Python error"):out.find("Extension modules")] if "Fatal Python" in out else out[-3000:]
        assert code == 0, stacks
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not [p for p in alive if "server" in " ".join(p.cmdline())]
    finally:
        if proc.poll() is None:
            proc.kill()
