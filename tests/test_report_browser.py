"""Every study's report page opened in a real headless Chromium: every image loads, no console error or warning, no
failed request, and a full-page screenshot is saved.

Each study's ``smoke`` preset is trained through the CLI into a temporary store with ``train.steps=2`` (the run
list, tables and figures are the smoke preset's; the one figure lost against the preset's own steps is scaling's
``laws_markov-order1_nopt.png``, which needs a compute frontier that 2 steps do not give), its report is written,
the folder is served on localhost and checked by :mod:`tests.browser`. Screenshots go to the pytest tmp folder
and, when ``$LIMITLAB_SCREENSHOTS`` is set, are copied there too.

The checker itself is tested on small fake pages, each with one known fault, and on each real page again with one
figure deleted, so a broken page cannot pass.
Without Chromium or Playwright every test that needs the browser skips and says which is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from limitlab.cli import main
from limitlab.studies import STUDIES as REGISTRY
from tests.browser import Browser, PageCheck, chromium_path, problems, serve, unavailable

STUDIES = sorted(name for name, study in REGISTRY.items() if study.report is not None and "smoke" in study.presets)
SMOKE_STEPS = 2


@pytest.fixture(scope="module")
def browser():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with Browser() as b:
        yield b


def _save_shot(shot: Path) -> None:
    target = os.environ.get("LIMITLAB_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


# --- the checker on fake pages: each fault must be caught, and a clean page must pass -----------------------------


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fake_site")
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    fig.savefig(root / "good.png")
    plt.close(fig)
    (root / "not_a_png.png").write_text("this is text, not an image")
    pages = {
        "clean": '<img src="good.png" alt="ok"><p>fine</p>',
        "missing_image": '<img src="good.png"><img src="missing.png">',
        "undecodable_image": '<img src="not_a_png.png">',
        "console_error": '<img src="good.png"><script>console.error("boom from the page")</script>',
        "console_warning": '<img src="good.png"><script>console.warn("careful")</script>',
        "exception": '<img src="good.png"><script>null.nothing()</script>',
        "missing_script": '<img src="good.png"><script src="gone.js"></script>',
        "no_images": "<p>text only</p>",
    }
    for name, body in pages.items():
        (root / f"{name}.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title>"
                                           f"</head><body>{body}</body></html>")
    return root


@pytest.mark.parametrize("page, expected", [
    ("missing_image", ["image did not load: 'missing.png'", "missing.png (HTTP 404)"]),
    ("undecodable_image", ["image did not load: 'not_a_png.png'"]),
    ("console_error", ["console error: boom from the page"]),
    ("console_warning", ["console warning: careful"]),
    ("exception", ["uncaught exception:"]),
    ("missing_script", ["gone.js (HTTP 404)"]),
    ("no_images", ["the page has no <img>"]),
])
def test_checker_catches_each_fault(browser, fake_site, page, expected):
    with serve(fake_site) as base:
        found = problems(browser.check(base + f"{page}.html"))
    for text in expected:
        assert any(text in line for line in found), f"{text!r} not among {found}"


def test_checker_passes_a_clean_page_and_screenshots_it(browser, fake_site, tmp_path, monkeypatch):
    with serve(fake_site) as base:
        check = browser.check(base + "clean.html", screenshot=tmp_path / "clean.png")
    assert problems(check) == []
    assert check.images == [{"src": "good.png", "complete": True, "width": 200}]  # 2 in × 100 dpi
    assert (tmp_path / "clean.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setenv("LIMITLAB_SCREENSHOTS", str(tmp_path / "kept"))
    _save_shot(tmp_path / "clean.png")
    assert (tmp_path / "kept" / "clean.png").read_bytes() == (tmp_path / "clean.png").read_bytes()


def test_every_study_with_a_report_is_checked():
    assert set(STUDIES) >= {"counting", "icl", "arithmetic", "cope", "scaling"}


def test_problems_lists_every_kind_of_fault():
    check = PageCheck("u", images=[{"src": "a.png", "complete": True, "width": 0}],
                      console=[("info", "i"), ("warning", "w"), ("error", "e")], page_errors=["x"],
                      failed=["b.png (HTTP 404)"])
    assert problems(check) == ["image did not load: 'a.png' (complete=True, naturalWidth=0)", "console warning: w",
                               "console error: e", "uncaught exception: x", "request failed: b.png (HTTP 404)"]
    assert problems(PageCheck("u", images=[{"src": "a.png", "complete": True, "width": 5}])) == []


# --- the real report pages --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_report_page_in_browser(browser, study, tmp_path):
    store, folder, shot = tmp_path / "store", tmp_path / "report", tmp_path / f"report_{study}.png"
    assert main(["run", study, "--preset", "smoke", "--set", f"train.steps={SMOKE_STEPS}", "--store", str(store),
                 "--device", "cpu", "--quiet"]) == 0
    fast = ["--set", "eval_prompts=64"] if study == "icl" else []  # icl's report evaluates 1,280 prompts by default
    assert main(["report", study, "--store", str(store), "--out", str(folder), *fast]) == 0
    with serve(folder) as base:
        check = browser.check(base + "index.html", screenshot=shot)
    _save_shot(shot)
    assert problems(check) == [], f"{study} report page: " + "; ".join(problems(check))
    pngs = {p.name for p in folder.glob("*.png")}
    assert {i["src"] for i in check.images} == pngs  # every figure written is on the page, and nothing else
    assert shot.stat().st_size > 10_000
    gone = sorted(pngs)[0]  # the same page with one figure deleted must fail
    (folder / gone).unlink()
    with serve(folder) as base:
        found = problems(browser.check(base + "index.html"))
    assert any(f"image did not load: {gone!r}" in line for line in found), found


@pytest.mark.slow
def test_all_claims_page_in_browser(browser, tmp_path):
    """``limitlab report --all`` over a store holding the counting smoke runs: the page loads cleanly, and every
    claim link opens a study page that loads cleanly and has the linked section."""
    store, folder = tmp_path / "store", tmp_path / "all"
    assert main(["run", "counting", "--preset", "smoke", "--set", f"train.steps={SMOKE_STEPS}", "--store",
                 str(store), "--device", "cpu", "--quiet"]) == 0
    assert main(["report", "--all", "--store", str(store), "--out", str(folder)]) == 0
    with serve(folder) as base:
        check = browser.check(base + "index.html", screenshot=tmp_path / "report_all.png")
        assert [p for p in problems(check) if p != "the page has no <img>"] == []  # a page of tables
        targets = sorted({link for link in check.links if link.startswith(base)})
        assert any("counting/index.html#" in t for t in targets), targets
        for target in targets:
            page_url, _, anchor = target.partition("#")
            linked = browser.check(page_url)
            assert problems(linked) == [], f"{target}: {problems(linked)}"
            html = (folder / page_url[len(base):]).read_text()
            assert not anchor or f'id="{anchor}"' in html, f"{target}: no element with id {anchor!r}"
    _save_shot(tmp_path / "report_all.png")


def test_unavailable_names_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import of it raises ImportError
    assert "Playwright" in unavailable()
    monkeypatch.undo()
    monkeypatch.setenv("LIMITLAB_CHROMIUM", "/nonexistent/chromium")
    assert chromium_path() is None
    reason = unavailable()
    assert reason is not None and ("no chromium" in reason or "Playwright" in reason)
