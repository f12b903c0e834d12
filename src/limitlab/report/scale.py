"""What scale a report's runs are, against the study's paper preset: the banner a small-scale page starts with.

A smoke or quick run can show that the pipeline works end to end and the direction of large effects; it cannot show
the paper's effects at the paper's own scale. So a page made from runs smaller than the study's ``paper`` preset
says so at the top. The scale is read from the runs themselves: which preset's run ids they are (a run trained with
``--set`` overrides matches none, and the banner names the overrides from its ``set`` tag), and their largest
training steps, largest width and number of seeds, each beside the paper preset's.

>>> import pandas as pd
>>> from limitlab.studies import STUDIES
>>> quick = STUDIES["counting"].specs("quick")
>>> runs = pd.DataFrame({"run_id": [s.run_id for s in quick], "train.steps": [s.train.steps for s in quick],
...                      "model.d_model": [s.model.d_model for s in quick], "seed": [s.seed for s in quick]})
>>> print(scale_note(STUDIES["counting"], runs))  # doctest: +ELLIPSIS
Scale: these runs are the quick preset: up to 3,000 training steps (paper preset: 100,000), width d_model up to 16 \
(paper preset: 128), 3 seed(s) (paper preset: 3). ... need the paper preset (`limitlab run counting --preset paper`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["add_scale_banner", "scale_note"]

_SMALLER = ("smoke", "quick")


def scale_note(study: Any, runs: pd.DataFrame) -> str | None:
    """The banner text for ``runs`` (the store's frame of the runs a report uses: ``run_id``, ``train.steps``,
    ``model.d_model``, ``seed``) of ``study``, or None when there are no runs, the study has no ``paper`` preset,
    or the runs are at least the paper preset's size in steps, width and seeds."""
    needed = ("run_id", "train.steps", "model.d_model", "seed")
    if runs is None or len(runs) == 0 or "paper" not in study.presets or any(c not in runs for c in needed):
        return None
    paper = study.specs("paper")
    ours = {"steps": int(runs["train.steps"].max()), "width": int(runs["model.d_model"].max()),
            "seeds": int(runs["seed"].nunique())}
    theirs = {"steps": max(s.train.steps for s in paper), "width": max(s.model.d_model for s in paper),
              "seeds": len({s.seed for s in paper})}
    ids = set(runs["run_id"])
    if ids <= {s.run_id for s in paper} or all(ours[k] >= theirs[k] for k in ours):
        return None
    which = next((f"the {p} preset" for p in _SMALLER if p in study.presets
                  and ids <= {s.run_id for s in study.specs(p)}), None)
    changed = sorted({str(v) for v in runs["tags.set"].dropna()}) if "tags.set" in runs else []
    custom = f"a preset's grid trained with --set {'; '.join(changed)}" if changed else "custom settings"
    which = which or f"smaller than the paper preset (they match no preset: {custom})"
    return (f"Scale: these runs are {which}: up to {ours['steps']:,} training steps (paper preset: "
            f"{theirs['steps']:,}), width d_model up to {ours['width']} (paper preset: {theirs['width']}), "
            f"{ours['seeds']} seed(s) (paper preset: {theirs['seeds']}). At this scale the page shows that the "
            "pipeline runs end to end and the direction of large effects, with wide intervals; its verdicts are "
            "about these small models only. It cannot confirm or refute the paper's effects at the paper's own "
            f"scale: those need the paper preset (`limitlab run {study.name} --preset paper`).")


def add_scale_banner(page: Any, study: Any, raw: pd.DataFrame) -> str | None:
    """Put :func:`scale_note` for the finished runs of ``raw`` (the store's frame of the study) at the top of
    ``page``; returns the text (None: no banner). ``study``: a Study or a registered study's name."""
    if isinstance(study, str):
        from limitlab.studies import STUDIES

        study = STUDIES[study]
    done = raw[raw["status"] == "done"] if "status" in raw else raw
    note = scale_note(study, done)
    if note:
        page.banner(note)
    return note
