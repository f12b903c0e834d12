"""The shared report page as a reader meets it: a table of contents on long pages, figures captioned by a sentence
(the file name only as a small link), one unit per column choice, and the scale banner of small runs."""

from __future__ import annotations

import pandas as pd
import pytest

from limitlab.report.html import TOC_MIN_SECTIONS, Page
from limitlab.report.scale import scale_note
from limitlab.studies import STUDIES


def _page(sections: int) -> Page:
    page = Page("t", "subtitle")
    for k in range(sections):
        page.heading(f"Section {k} × d", anchor="claims" if k == 0 else None)
        page.paragraph("text")
    return page


def test_long_page_gets_a_table_of_contents_linking_every_section():
    text = _page(TOC_MIN_SECTIONS + 1).render()
    assert text.count('<nav class="toc">') == 1
    assert 'href="#claims"' in text and 'href="#section-1-d"' in text and 'id="section-1-d"' in text
    assert text.index('<nav class="toc">') < text.index("<h2")  # before the first section
    assert '<nav class="toc">' not in _page(TOC_MIN_SECTIONS).render()


def test_headings_with_the_same_text_get_distinct_anchors():
    page = Page("t")
    for _ in range(TOC_MIN_SECTIONS + 1):
        page.heading("Results")
    text = page.render()
    assert 'id="results"' in text and 'id="results-2"' in text and 'href="#results-4"' in text


def test_figure_caption_is_a_sentence_and_the_file_name_a_small_link():
    page = Page("t")
    page.figure("mthr_qc.png", "QC: m_thr vs d")
    text = page.render()
    assert 'alt="QC: m_thr vs d"' in text and '<a class="file" href="mthr_qc.png">mthr_qc.png</a>' in text
    for slug in ("mthr_qc.png", "mthr_qc", "", None):
        with pytest.raises(ValueError, match="caption"):
            page.figure("mthr_qc.png", slug)


def test_percent_columns_show_fractions_as_percentages():
    page = Page("t")
    page.table([{"acc": 0.7256, "n": 3, "other": 0.5}], percent=["acc"])
    text = page.render()
    assert ">72.6%<" in text and ">0.5<" in text and ">3<" in text


def test_banner_goes_under_the_title_and_keeps_the_contents_links():
    page = _page(TOC_MIN_SECTIONS + 1)
    page.banner("small runs")
    text = page.render()
    assert text.index("subtitle") < text.index('class="scale"') < text.index('<nav class="toc">') < \
        text.index("<h2")


def _frame(specs) -> pd.DataFrame:
    return pd.DataFrame({"run_id": [s.run_id for s in specs], "train.steps": [s.train.steps for s in specs],
                         "model.d_model": [s.model.d_model for s in specs], "seed": [s.seed for s in specs]})


def test_scale_note_names_the_preset_and_the_paper_presets_size():
    study = STUDIES["counting"]
    note = scale_note(study, _frame(study.specs("quick")))
    assert note and "the quick preset" in note and "100,000" in note and "--preset paper" in note
    custom = scale_note(study, _frame(study.specs("smoke", {"train.steps": 2})))
    assert custom and "match no preset" in custom and "up to 2 training steps" in custom
    smoke2 = study.specs("smoke", {"train.steps": 2})
    named = scale_note(study, _frame(smoke2).assign(**{"tags.set": [s.tags.get("set") for s in smoke2]}))
    assert named and "trained with --set train.steps=2" in named
    assert scale_note(study, _frame(study.specs("paper"))) is None
    assert scale_note(study, _frame([])) is None


def test_cope_error_figure_marks_the_papers_numbers_once_in_the_legend():
    from limitlab.studies.cope.figures import error_figure

    row = {"pe": "cope", "seeds": 2}
    for split, paper in (("test", 0.0), ("sparse", 4.9), ("dense", None)):
        row[split] = {"mean": 10.0, "low": 5.0, "high": 15.0, "per_seed": [8.0, 12.0], "paper": paper}
    ax = error_figure([row], ("test", "sparse", "dense"), "Flip-flop").axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.count("paper") == 1
    marks = [line for line in ax.lines if line.get_label() == "paper" or line.get_marker() == "D"]
    assert sorted(float(m.get_ydata()[0]) for m in marks) == pytest.approx([0.0, 4.9])


def test_arithmetic_digit_maps_have_a_colour_bar():
    from limitlab.report.sections import Section
    from limitlab.studies.arithmetic.experiments import _digit_figures

    maps = [{"experiment": "add", "position": p, "slots": 3, "n": [1, 2], "seeds": 1,
             "accuracy": [[1.0, 0.5, 0.2], [0.9, 0.4, 0.1]]} for p in ("learned", "abacus")]
    sec = Section("absolute", "t")
    _digit_figures(sec, maps)
    fig = sec.figures["absolute_digits_add.png"]
    assert len(fig.axes) == 3 and fig.axes[-1].get_ylabel() == "digit accuracy"


def test_cope_counting_figure_overlays_the_papers_numbers():
    from limitlab.studies.cope.figures import counting_figure

    rows = [{"n_vars": n, "pe": pe, "n": 2, "mean": 10.0, "low": 9.0, "high": 11.0, "per_seed": [9.5, 10.5],
             "paper": paper}
            for n, pe, paper in ((1, "absolute", 5.3), (1, "cope", 0.0), (3, "cope", 1.2), (3, "rope", None))]
    ax = counting_figure(rows).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.count("paper") == 1 and {"absolute", "cope", "rope"} <= set(labels)
    marks = sorted(float(y[0]) for y in (line.get_ydata() for line in ax.lines if line.get_marker() == "D") if len(y))
    assert marks == pytest.approx([0.0, 1.2, 5.3])
