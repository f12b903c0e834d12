"""Registry of studies: name -> Study."""

from __future__ import annotations

from limitlab.studies.arithmetic import STUDY as ARITHMETIC
from limitlab.studies.base import Study
from limitlab.studies.cope import STUDY as COPE
from limitlab.studies.counting import STUDY as COUNTING
from limitlab.studies.icl import STUDY as ICL
from limitlab.studies.scaling import STUDY as SCALING
from limitlab.studies.tasks import STUDY as TASKS

STUDIES: dict[str, Study] = {
    COUNTING.name: COUNTING,
    COPE.name: COPE,
    SCALING.name: SCALING,
    ARITHMETIC.name: ARITHMETIC,
    ICL.name: ICL,
    TASKS.name: TASKS,
}

__all__ = ["STUDIES", "Study"]
