"""Registry of tasks: name -> Task class. A new task is one file plus one line here."""

from __future__ import annotations

from limitlab.tasks.addition_lm import AdditionLMTask
from limitlab.tasks.arithmetic import ArithmeticTask
from limitlab.tasks.base import Batch, Task
from limitlab.tasks.counting import CountingTask
from limitlab.tasks.flipped_icl import FlippedICLTask
from limitlab.tasks.modular_addition import ModularAdditionTask

TASKS: dict[str, type[Task]] = {
    "addition_lm": AdditionLMTask,
    "counting": CountingTask,
    "flipped_icl": FlippedICLTask,
    "arithmetic": ArithmeticTask,
    "modular_addition": ModularAdditionTask,
}

__all__ = ["TASKS", "Batch", "Task", "CountingTask"]
