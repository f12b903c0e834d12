"""Registry of tasks: name -> Task class. A new task is one file plus one line here."""

from __future__ import annotations

from limitlab.tasks.base import Batch, Task
from limitlab.tasks.counting import CountingTask
from limitlab.tasks.modular_addition import ModularAdditionTask

TASKS: dict[str, type[Task]] = {
    "counting": CountingTask,
    "modular_addition": ModularAdditionTask,
}

__all__ = ["TASKS", "Batch", "Task", "CountingTask"]
