"""Registry of tasks: name -> Task class. A new task is one file plus one line here."""

from __future__ import annotations

from limitlab.tasks.arithmetic import ArithmeticTask
from limitlab.tasks.base import Batch, Task
from limitlab.tasks.counting import CountingTask
from limitlab.tasks.flip_flop import FlipFlopTask
from limitlab.tasks.flipped_icl import FlippedICLTask
from limitlab.tasks.icl_linear import ICLLinear
from limitlab.tasks.icl_mixture import ICLMixture
from limitlab.tasks.icl_relu import ICLReLU
from limitlab.tasks.icl_sine import ICLSine
from limitlab.tasks.icl_tree import ICLTree
from limitlab.tasks.markov_lm import MarkovLMTask
from limitlab.tasks.modular_addition import ModularAdditionTask
from limitlab.tasks.selective_copy import SelectiveCopyTask
from limitlab.tasks.sparse_parity import SparseParityTask
from limitlab.tasks.text_lm import TextLMTask
from limitlab.tasks.variable_counting import VariableCountingTask

TASKS: dict[str, type[Task]] = {
    "counting": CountingTask,
    "flipped_icl": FlippedICLTask,
    "arithmetic": ArithmeticTask,
    "modular_addition": ModularAdditionTask,
    "flip_flop": FlipFlopTask,
    "selective_copy": SelectiveCopyTask,
    "variable_counting": VariableCountingTask,
    "text_lm": TextLMTask,
    "icl_linear": ICLLinear,
    "icl_relu": ICLReLU,
    "icl_tree": ICLTree,
    "icl_sine": ICLSine,
    "icl_mixture": ICLMixture,
    "markov_lm": MarkovLMTask,
    "sparse_parity": SparseParityTask,
}

__all__ = ["TASKS", "Batch", "Task", "CountingTask"]
