"""The documentation site in a real browser: math typeset, every image loaded, no console errors.

Headless Chromium (Debian packages ``chromium`` and ``chromium-driver``) is driven with Selenium
(the ``docs`` extra). Selenium because the checks need the *rendered* page: JavaScript run in
it (has MathJax finished, did each ``<img>`` decode) and its console log, which Chromium's
``--dump-dom`` cannot give; Playwright would have to download its own browser build, which an
offline machine cannot. The driver is the Debian ``chromedriver``, named explicitly, so
Selenium never tries to fetch one.

The site is served from ``127.0.0.1`` by ``http.server``, and Chromium resolves every other
host to nothing: a page that needs the network (a CDN script, web fonts) fails the test through
the console errors it causes.

Which site: ``$MINIGAN_DOCS_SITE`` when set (CI builds the site once with every lesson
executed, see ``docs/hooks.py``); otherwise one built here in a temporary folder, with lesson 3
executed in small mode (it has figures and math) and the other lessons without outputs.

Every page is checked. Skips, with the reason, when Chromium, chromedriver, Selenium or the
docs packages are missing.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTED_LESSON = "03_activations"  # executed for a site built here: figures and math
MATH_TIMEOUT_S = 60

# Run in the page: what the checks need, as one JSON-able object.
PAGE_STATE_JS = r"""
const mathNodes = [...document.querySelectorAll('.arithmatex')];
const clone = document.body.cloneNode(true);
clone.querySelectorAll('pre, code, script, style').forEach(e => e.remove());
return {
  broken_images: [...document.images]
    .filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => i.getAttribute('src')),
  images: document.images.length,
  math: mathNodes.length,
  math_typeset: mathNodes.filter(e => e.querySelector('mjx-container')).length,
  math_errors: document.querySelectorAll('mjx-merror').length,
  raw_tex: (clone.textContent.match(/\\\(|\\\[/g) || []).length,
  mathjax_done: document.documentElement.getAttribute('data-mathjax') === 'done',
};
"""


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or skip saying what is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "headless Chromium is not installed (apt-get install chromium chromium-driver): "
            f"chromium {browser or 'missing'}, chromedriver {driver or 'missing'}"
        )
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium is not installed (pip install -e '.[docs]')")
    return browser, driver


def _build_site(tmp: Path) -> Path:
    for mod in ("mkdocs", "material", "mkdocstrings", "jupytext", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[docs,dev]')")
    notebooks, site = tmp / "notebooks", tmp / "site"
    env = {**os.environ, "MINIGAN_LESSON_MODE": "small", "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "lessons" / "run_lessons.py"),
            "--blas-threads",
            "1",
            "--output-dir",
            str(notebooks),
            str(ROOT / "lessons" / f"{EXECUTED_LESSON}.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**env, "MINIGAN_DOCS_NOTEBOOKS": str(notebooks)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _chromium()  # skip before spending minutes on a build
    given = os.environ.get("MINIGAN_DOCS_SITE")
    if given:
        path = Path(given)
        assert (path / "index.html").is_file(), f"MINIGAN_DOCS_SITE={given} holds no built site"
        return path
    return _build_site(tmp_path_factory.mktemp("docs"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # no network but ours
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _pages(site: Path) -> list[str]:
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if p.name != "404.html" and "assets" not in p.relative_to(site).parts
    )


def _check_page(driver, url: str) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, MATH_TIMEOUT_S).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    if driver.execute_script("return document.querySelectorAll('.arithmatex').length"):
        try:
            WebDriverWait(driver, MATH_TIMEOUT_S).until(
                lambda d: d.execute_script(
                    "return document.documentElement.getAttribute('data-mathjax') === 'done'"
                )
            )
        except Exception:  # the state below says what is missing
            pass
    state = driver.execute_script(PAGE_STATE_JS)
    state["console_errors"] = [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
    ]
    return state


def test_site_renders_in_chromium(site, base_url, browser):
    pages = _pages(site)
    assert "math/index.html" in pages and any(p.startswith("lessons/") for p in pages), pages
    problems, states = [], {}
    for page in pages:
        state = states[page] = _check_page(browser, base_url + page)
        if state["broken_images"]:
            problems.append(f"{page}: images not loaded: {state['broken_images']}")
        if state["math"] and not state["mathjax_done"]:
            problems.append(f"{page}: MathJax did not finish within {MATH_TIMEOUT_S} s")
        if state["math_typeset"] < state["math"]:
            problems.append(f"{page}: {state['math'] - state['math_typeset']} formulas not typeset")
        if state["math_errors"]:
            problems.append(f"{page}: {state['math_errors']} formulas with TeX errors")
        if state["raw_tex"]:
            problems.append(f"{page}: {state['raw_tex']} raw \\( or \\[ left in the text")
        for message in state["console_errors"]:
            problems.append(f"{page}: console error: {message}")
    assert not problems, "\n".join(problems)

    # Not vacuous: math was typeset, and an executed lesson showed its figures.
    assert states["math/index.html"]["math_typeset"] > 10, states["math/index.html"]
    lesson_images = sum(states[p]["images"] for p in pages if p.startswith("lessons/"))
    assert lesson_images > 0, "no figure on any lesson page: were the lessons executed?"
    print(
        f"\n{len(pages)} pages: {sum(s['math_typeset'] for s in states.values())} formulas "
        f"typeset, {sum(s['images'] for s in states.values())} images loaded, no console errors"
    )
