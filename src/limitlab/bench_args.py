"""``limitlab bench``'s arguments checked before any work: each bad value is refused with one line naming it and
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
