"""``limitlab bench``'s arguments: declared here (without importing torch, so ``limitlab --help`` stays fast) and
checked before any work: each bad value is refused with one line naming it and
what is allowed (a ``ValueError``; the command line prints it as ``limitlab: error: ...``, exit status 2).

>>> check_arguments(build_parser().parse_args(["bench", "--d", "8", "--heads", "3"]))   # doctest: +SKIP
ValueError: --heads 3: must divide every --d (8); allowed for 8: 1, 2, 4, 8
"""

from __future__ import annotations

import argparse
import math
import re

# flag: its least allowed value (bench's add_arguments defines the flags and their defaults)
_LEAST = {"models": 1, "batch": 1, "layers": 1, "heads": 1, "preset_stacks": 1, "preset_max_models": 0,
          "loop_models": 1, "repeat": 1, "threads": 1, "attn_d": 1, "attn_batch": 1, "attn_models": 1, "p_max": 1,
          "peak_flops": 0.0}
_EACH_LEAST = {"d": 1, "m": 1, "T": 1}  # list flags: every value at least this
_MODES = ("eager", "compiled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d", type=int, nargs="+", default=[16], help="embedding sizes d_model")
    parser.add_argument("--m", type=int, nargs="+", default=[10], help="counting vocabulary sizes (n = 10·m)")
    parser.add_argument("--models", type=int, default=32, help="models per stack (M)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--preset", default=None, help="STUDY/PRESET, e.g. counting/paper: measure + project it")
    parser.add_argument("--preset-stacks", type=int, default=4, help="stacks of the preset to measure")
    parser.add_argument("--preset-max-models", type=int, default=0,
                        help="measure at most this many models of a preset stack (0: 8 on CPU, all on CUDA)")
    parser.add_argument("--modes", default="auto", help="eager,compiled (auto: both on CUDA, eager on CPU)")
    parser.add_argument("--no-loop", action="store_true",
                        help="skip the one-model-at-a-time baselines (limitlab M=1 and the plain loop)")
    parser.add_argument("--loop-models", type=int, default=4, help="distinct single models timed for the loop")
    parser.add_argument("--vmap", action="store_true",
                        help="also time torch.func's ensemble recipe (stack_module_state + functional_call + vmap; "
                             "compiled in the compiled mode); --d/--m shapes only")
    parser.add_argument("--seconds", type=float, default=3.0, help="least timed seconds per side (stacked, loop)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="alternating rounds of every side; ratios: median of the same-round ratios")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--peak-flops", type=float, default=0.0, help="override the device peak for MFU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="machine-readable output only")
    cope = parser.add_argument_group("attention kernels (limitlab.bench_attention): one layer, CoPE vs SDPA")
    cope.add_argument("--attention", default=None,
                      help="time one attention layer instead: comma list of sdpa, cope-reference, cope-blocked "
                           "('cope' = both CoPE paths), e.g. --attention cope,sdpa --T 512 1024")
    cope.add_argument("--T", type=int, nargs="+", default=[128, 512, 1024], help="sequence lengths (--attention)")
    cope.add_argument("--attn-d", type=int, default=256, help="width d_model (--attention)")
    cope.add_argument("--attn-batch", type=int, default=4, help="batch per model (--attention)")
    cope.add_argument("--attn-models", type=int, default=1, help="models in the stack M (--attention)")
    cope.add_argument("--p-max", type=int, default=64, help="CoPE p_max (--attention)")


def check_arguments(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` (one line) for the first argument of ``args`` that no benchmark can use."""
    for flag, least in _LEAST.items():
        value = getattr(args, flag, least)
        if not (value >= least and math.isfinite(value)):  # also refuses NaN and infinity
            raise ValueError(f"{_name(flag)} {value}: must be >= {least}"
                             + (" (0: the device's table or a measured peak)" if flag == "peak_flops" else
                                " (0: automatic)" if least == 0 else ""))
    for flag, least in _EACH_LEAST.items():
        for value in getattr(args, flag, None) or []:
            if value < least:
                raise ValueError(f"{_name(flag)} {value}: every value must be >= {least}")
    seconds = getattr(args, "seconds", 1.0)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"--seconds {seconds}: must be a number of seconds > 0")
    device = getattr(args, "device", "auto")
    if not (device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", device)):
        raise ValueError(f"--device {device!r} is not supported; allowed: auto, cpu, cuda, cuda:N")
    modes = getattr(args, "modes", "auto")
    for mode in [] if modes == "auto" else [m.strip() for m in modes.split(",")]:
        if mode not in _MODES:
            raise ValueError(f"--modes {modes!r}: unknown mode {mode!r}; allowed: auto, or a comma list of "
                             f"{', '.join(_MODES)}")
    heads = getattr(args, "heads", 1)
    widths = [args.attn_d] if getattr(args, "attention", None) else [] if getattr(args, "preset", None) else args.d
    for d in widths:
        if d % heads:
            flag = "--attn-d" if getattr(args, "attention", None) else "--d"
            allowed = ", ".join(str(h) for h in range(1, d + 1) if d % h == 0)
            raise ValueError(f"--heads {heads}: must divide every {flag} ({d}); allowed for {d}: {allowed}")


def _name(flag: str) -> str:
    return "--" + flag.replace("_", "-")
