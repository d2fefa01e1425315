"""The built site in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium.

The home page and an API page are served over HTTP from ``docs/_build/html`` (as a
user's browser or a docs host would see them), loaded, and checked for a rendered
heading and title, for no SEVERE entry in the browser console, and (on the
algorithms page) for MathJax having typeset the formulas from the bundled copy.

Skipped, with the reason, when the site is not built (``bash docs/build.sh``), when
Selenium, ``chromium`` or ``chromedriver`` is missing; set
``SOFTMAXLIB_REQUIRE_DOCS=1`` (as CI does) to make those a failure instead.
"""

import contextlib
import functools
import http.server
import os
import pathlib
import shutil
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "docs" / "_build" / "html"

pytestmark = pytest.mark.slow

PAGES = [
    ("index.html", "softmaxlib"),
    ("generated/api/softmaxlib.softmax.html", "softmaxlib.softmax"),
    ("algorithms.html", "The algorithms"),
]


def _unavailable(reason):
    if os.environ.get("SOFTMAXLIB_REQUIRE_DOCS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def site():
    if not (BUILD / "index.html").is_file():
        _unavailable(f"the docs are not built ({BUILD / 'index.html'} is absent): run `bash docs/build.sh`")
    handler = functools.partial(_QuietHandler, directory=str(BUILD))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[docs]')")
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if chromium is None or driver_path is None:
        _unavailable("chromium and chromedriver are needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is given explicitly, so Selenium Manager never goes to the network.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def _severe(entries):
    return [e for e in entries if e.get("level") == "SEVERE"]


@pytest.mark.parametrize(("page", "heading"), PAGES, ids=[p for p, _ in PAGES])
def test_page_loads_without_console_errors(browser, site, page, heading):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages left
    browser.get(site + page)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    h1 = browser.find_element(By.CSS_SELECTOR, "main h1, article h1")
    assert heading in h1.text
    assert "softmaxlib" in browser.title
    # The theme's navigation bar was built by its JavaScript and stylesheet.
    assert browser.find_elements(By.CSS_SELECTOR, ".bd-header, header")
    if page == "algorithms.html":
        WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "mjx-container"),
            "MathJax did not typeset the formulas",
        )
    errors = _severe(browser.get_log("browser"))
    assert not errors, f"console errors on {page}: {errors}"


def test_figures_load(browser, site):
    """Every image of the accuracy page was fetched and decoded."""
    browser.get(site + "accuracy.html")
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);"
    )
    assert browser.execute_script("return document.images.length") >= 2
    assert not broken
