"""Registry of tasks: name -> Task class. A new task is one file plus one line here."""

from __future__ import annotations

from limitlab.tasks.base import Batch, Task
from limitlab.tasks.counting import CountingTask

TASKS: dict[str, type[Task]] = {
    "counting": CountingTask,
}

__all__ = ["TASKS", "Batch", "Task", "CountingTask"]
