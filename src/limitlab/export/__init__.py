"""Export a finished run's model to other libraries, with the same logits (tested).

Both need the run's weights (``limitlab run --save-weights``) and export the run at its own sizes (a run trained
in a padded stack loses the padding rows and columns).

* ``--to hf`` (:mod:`limitlab.export.hf`): a Hugging Face ``GPT2ForTokenClassification`` directory, for GPT-2-shaped
  runs (learned positions, pre-LN, causal, bias).
* ``--to transformer-lens`` (:mod:`limitlab.export.lens`): a ``HookedTransformerConfig`` (JSON) and a
  ``HookedTransformer`` state dict, loaded by :func:`load_transformer_lens`; learned, sinusoidal, no, rotary and
  ALiBi positions, pre-LN or no LayerNorm, causal or bidirectional.

:func:`export_run` (``limitlab export``) exports finished runs only, into a folder that is new, empty, or written
by an earlier export (``force`` writes into any folder).
"""

from limitlab.export.hf import check_exportable, export_hf, gpt2_state
from limitlab.export.lens import check_lens_exportable, export_transformer_lens, lens_state, load_transformer_lens
from limitlab.export.run import export_run

__all__ = ["check_exportable", "check_lens_exportable", "export_hf", "export_run", "export_transformer_lens",
           "gpt2_state", "lens_state", "load_transformer_lens"]
