"""Browser tests of the FiftyOne app: its server on loopback, Debian's headless Chromium driven
by Playwright (never a browser Playwright downloads). Helpers only: pytest collects nothing here.

    pytestmark = requires_browser

    with app_server(dataset) as session, chromium_page() as page:
        shown = open_view(page, session.server_port, dataset.name, "low-confidence")
        assert (shown.count, shown.view) == (5, "low-confidence")

Connect FiftyOne to the test's own database before `app_server`: the server process reuses it
through FIFTYONE_PRIVATE_DATABASE_PORT. Starting the server takes ~6 s and stopping it ~4 s
(hypercorn's graceful shutdown), so share one server across a module's tests where possible.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

from pathlib import Path

import psutil
import pytest

CHROMIUM = "/usr/bin/chromium"  # apt-get install chromium
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # git-ignored


def missing() -> str | None:
    """Why a browser test cannot run here, or None."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "no Playwright client (pip install playwright; never `playwright install`)"
    if importlib.util.find_spec("fiftyone") is None:
        return "no fiftyone"
    return None


# .ci/run sets CURATOR_REQUIRE_BROWSER=1: there a missing browser fails the tests, never skips them.
requires_browser = pytest.mark.skipif(missing() is not None and os.environ.get("CURATOR_REQUIRE_BROWSER") != "1",
                                      reason=missing() or "")


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_processes(port: int) -> list[psutil.Process]:
    """This process's FiftyOne server wrapper (service/main.py) for `port` and everything under it."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "server" in cmd and "--51-service" in cmd and str(port) in cmd:
            found += [child, *child.children(recursive=True)]
    return found


@contextmanager
def app_server(dataset, view=None, *, port: int | None = None, timeout_s: float = 30):
    """Serve the app on ``dataset`` (optionally a view of it) at 127.0.0.1; yields FiftyOne's
    Session (``session.server_port``). Its state is shared by every page: a page opened at
    ``?view=SLUG`` selects that view, and a later page opened without ``?view`` shows it too
    unless ``session.view = None`` is set first.

    On exit the session is closed and the server's processes are waited for (killed after
    ``timeout_s``), so none outlives the test.
    """
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    if fo.config.database_uri is None:
        # The server process finds the database through this variable; without it (or with a
        # stale value from a parent) it starts or joins *any* FiftyOne database of this user.
        os.environ["FIFTYONE_PRIVATE_DATABASE_PORT"] = str(fod.get_db_client().address[1])
    port = port or free_port()
    session = fo.launch_app(dataset, view=view, port=port, address="127.0.0.1", remote=True, auto=False)
    procs = _server_processes(port)
    try:
        _wait_connected(session, timeout_s)
        yield session
    finally:
        session._disable_wait_warning = True  # no "keep your script alive" banner on a quick close
        fo.close_app()
        _, alive = psutil.wait_procs(procs, timeout=timeout_s)
        for p in alive:
            p.kill()
        psutil.wait_procs(alive, timeout=5)
        assert not alive, f"FiftyOne server processes outlived their session: {alive}"


def _wait_connected(session, timeout_s: float) -> None:
    """Wait for the session's event stream to the server, which setting ``session.view`` needs.

    The session pings the server once at launch; on a loaded machine the server may not answer
    yet, and the session then tries again only after 10 seconds ("Could not connect session"),
    during which ``session.view = ...`` raises "Client is not connected".
    """
    client = session._client
    deadline = time.monotonic() + timeout_s
    while not getattr(client, "_connected", True):
        assert time.monotonic() < deadline, f"FiftyOne's session did not connect to its server in {timeout_s} s"
        time.sleep(0.1)


@contextmanager
def chromium_page(viewport: dict = VIEWPORT):
    """A Playwright page in headless Debian Chromium; requests beyond 127.0.0.1 are refused."""
    import re

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=viewport)
            # What FiftyOne's own Playwright tests set: no analytics, no Enterprise popover
            # covering the grid, no query-performance toasts.
            context.add_init_script("window.IS_PLAYWRIGHT = true")
            context.route(re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)[:/])"), lambda route: route.abort())
            yield context.new_page()
        finally:
            browser.close()


def keep(path: Path) -> Path:
    """Copy a test's artefact (a screenshot) where a person can look at it after the run:
    $CURATOR_TEST_ARTIFACTS when set, else test-artifacts/ at the repository's top (git-ignored)."""
    folder = Path(os.environ.get("CURATOR_TEST_ARTIFACTS") or ARTIFACTS)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / path.name))


@contextmanager
def page_errors(page):
    """Yields a list that fills with what went wrong on ``page`` meanwhile: console errors,
    uncaught exceptions and failed requests (a refused request beyond 127.0.0.1 included)."""
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:200]}"))
    yield errors


@dataclass
class Shown:
    """What the app's grid shows once rendered."""

    count: int  # the N of "N samples" above the grid: the whole view, not just the rendered tiles
    text: str  # that line as shown: "5 samples", "3 of 12 samples" (filtered in the sidebar)
    view: str | None  # the saved view's name in the view selector, None for the whole dataset
    tiles: int  # rendered sample tiles: the grid is virtualised, so at most a screenful
    labels: list[str]  # each rendered tile's label tags as "field: label", in grid order


_STATE = """() => {
  const text = sel => document.querySelector(sel)?.textContent.trim() ?? null;
  const tiles = [...document.querySelectorAll('[data-cy=fo-grid] [data-cy=looker]')];
  // the count's span: entry-count-all ("5") or entry-count-part ("5", "3 of 12"); none while loading
  return {count: text('[data-cy=entry-counts] [data-cy^=entry-count-]'), text: text('[data-cy=entry-counts]'),
          view: text('[data-cy=saved-views-selection] p'),
          tiles: tiles.length, loaded: tiles.filter(t => t.querySelector('canvas[canvas-loaded=true]')).length,
          labels: tiles.flatMap(t => [...t.querySelectorAll('[data-cy^=tag-]')].map(e => e.title))};
}"""


def _state(page) -> dict:
    """The page's grid as it is now (any field may still be missing)."""
    return page.evaluate(_STATE)


def open_view(page, port: int, dataset: str, view: str | None = None, timeout_s: float = 60) -> Shown:
    """Open ``/datasets/DATASET?view=SLUG`` and wait until the count is shown, the saved view
    (if any) is selected and every rendered tile's image has been drawn."""
    from fiftyone.core.utils import to_slug
    from playwright.sync_api import TimeoutError

    url = f"http://127.0.0.1:{port}/datasets/{to_slug(dataset)}" + (f"?view={to_slug(view)}" if view else "")
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
    ready = f"""view => {{
      const s = ({_STATE})();
      if (s.count === null || (view && s.view !== view)) return null;
      return (/^0( |$)/.test(s.count) || (s.tiles > 0 && s.loaded === s.tiles)) ? s : null;
    }}"""
    try:
        s = page.wait_for_function(ready, arg=view, timeout=timeout_s * 1000, polling=100).json_value()
    except TimeoutError:
        raise AssertionError(f"{url} not rendered in {timeout_s:g} s; the page shows {_state(page)}") from None
    chosen = None if s["view"] in (None, "Unsaved view") else s["view"]  # the selector's placeholder
    count = int(s["count"].split(" of ")[0].replace(",", ""))
    return Shown(count=count, text=" ".join(s["text"].split()), view=chosen, tiles=s["tiles"], labels=s["labels"])
