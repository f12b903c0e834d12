"""limitlab: where does a small transformer stop generalizing, and why?

The Python API, for a notebook or a script (the command line does the same through ``limitlab``)::

    import limitlab
    specs = limitlab.STUDIES["counting"].specs("smoke")              # a study's preset, or RunSpec(...) by hand
    store = limitlab.RunStore("limitlab-store")
    limitlab.train_sweep(specs, store)                                # stacked, resumable; finished runs skipped
    frame = store.to_dataframe("counting")                            # one row per run: spec, tags, results
    model = limitlab.load_model(store, frame.run_id[0])               # a trained model, back from the store
    limitlab.write_report("counting", store, "reports/counting")     # the study's page and results.json

Names are imported when first used, so ``import limitlab`` (and ``limitlab --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_NAMES = {  # public name -> (module, attribute)
    "RunSpec": ("limitlab.spec", "RunSpec"),
    "RunStore": ("limitlab.store", "RunStore"),
    "TrainOptions": ("limitlab.train.trainer", "TrainOptions"),
    "STUDIES": ("limitlab.studies", "STUDIES"),
    "TASKS": ("limitlab.tasks", "TASKS"),
    "prepare": ("limitlab.sweep", "prepare"),
    "train_sweep": ("limitlab.executors", "train_sweep"),
    "load_model": ("limitlab.models", "load_model"),
}
__all__ = [*_NAMES, "write_report"]


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'limitlab' has no attribute {name!r}")
    module, attribute = _NAMES[name]
    return getattr(importlib.import_module(module), attribute)


def write_report(study: str, store: Any, out: Any, force: bool = False, **options: Any) -> str:
    """Write ``study``'s report of ``store`` into the folder ``out``, published whole with its provenance (what
    ``limitlab report`` does); ``options`` are the study's report options (icl: ``eval_prompts=20000``); ``force``
    replaces a folder no report wrote. Returns the path of index.html."""
    from pathlib import Path

    from limitlab.provenance import write_report_provenance
    from limitlab.report.folder import check_destination, publishing
    from limitlab.studies import STUDIES

    chosen = STUDIES[study]
    if chosen.report is None:
        raise ValueError(f"study {study!r} has no report")
    if chosen.report_options is None and options:
        raise ValueError(f"the {study} report takes no options (got {', '.join(options)})")
    settings = chosen.report_options.model_validate(options) if chosen.report_options is not None else None
    check_destination(Path(out), force)
    with publishing(out) as tmp:
        index = chosen.report(store, tmp, settings) if settings is not None else chosen.report(store, tmp)
        write_report_provenance(store, chosen.name, tmp)
    return str(Path(out) / Path(index).relative_to(tmp))
