"""Registry of studies: name -> Study, and :func:`find_study` for a study that lives outside the package.

A study of your own is a module (or a ``.py`` file) that defines ``STUDY = Study(...)`` (:mod:`.base`). The command
line finds it by module path or file path (``limitlab run mylab.studies.induction``, ``limitlab run
./induction.py``), and an installed package can register it under the entry-point group ``limitlab.studies``.
Its runs are stored under ``STUDY.name``.
"""

from __future__ import annotations

from limitlab.studies.arithmetic import STUDY as ARITHMETIC
from limitlab.studies.base import Study
from limitlab.studies.cope import STUDY as COPE
from limitlab.studies.counting import STUDY as COUNTING
from limitlab.studies.icl import STUDY as ICL
from limitlab.studies.leaderboard import STUDY as LEADERBOARD
from limitlab.studies.scaling import STUDY as SCALING
from limitlab.studies.tasks import STUDY as TASKS

STUDIES: dict[str, Study] = {
    COUNTING.name: COUNTING,
    COPE.name: COPE,
    SCALING.name: SCALING,
    ARITHMETIC.name: ARITHMETIC,
    ICL.name: ICL,
    TASKS.name: TASKS,
    LEADERBOARD.name: LEADERBOARD,
}

__all__ = ["STUDIES", "Study", "find_study"]


def find_study(name: str) -> Study:
    """The study called ``name``: a registered one, one from an installed ``limitlab.studies`` entry point, or the
    ``STUDY`` of the module or ``.py`` file ``name`` (loaded, then registered under its own name). ValueError in
    one line when there is none."""
    import importlib
    import importlib.util
    from importlib.metadata import entry_points
    from pathlib import Path

    if name in STUDIES:
        return STUDIES[name]
    for point in entry_points(group="limitlab.studies"):
        if point.name == name:
            return _register(point.load(), name)
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"study file {name!r} does not exist")
        spec = importlib.util.spec_from_file_location(f"limitlab_user_study_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return _register(getattr(module, "STUDY", None), name)
    if all(part.isidentifier() for part in name.split(".")) and "." in name:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            module = None
        if module is not None:
            return _register(getattr(module, "STUDY", None), name)
    raise ValueError(f"unknown study {name!r}; allowed: {', '.join(STUDIES)}, a module or .py file defining STUDY, "
                     "or an installed limitlab.studies entry point")


def _register(study: object, where: str) -> Study:
    if not isinstance(study, Study):
        raise ValueError(f"{where!r} defines no STUDY = Study(...)")
    return STUDIES.setdefault(study.name, study)
