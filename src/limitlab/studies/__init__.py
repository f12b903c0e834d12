"""Registry of studies: name -> Study."""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.counting import STUDY as COUNTING

STUDIES: dict[str, Study] = {
    COUNTING.name: COUNTING,
}

__all__ = ["STUDIES", "Study"]
