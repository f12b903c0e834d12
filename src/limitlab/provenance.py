"""Where a number came from: the code that computed it and the machine it ran on.

Every finished run keeps ``provenance.json`` beside its result, and every report folder keeps one for itself
(with the code versions of the runs it read). The code is identified by :func:`code_version`: a hash of the
package's own source files (it changes with any edit, installed or not) plus, in a git checkout, ``git describe``.
A run id covers the spec, not the code, so a store can hold runs made by older code; ``limitlab status`` counts
them (:func:`other_code`), and their provenance names the version.

>>> sorted(code_version())
['git', 'limitlab', 'source']
>>> len(code_version()["source"])
12
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent


@functools.cache
def code_version() -> dict[str, str | None]:
    """{"limitlab": package version, "source": hash of every .py file of the package, "git": describe or None}."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        release = version("limitlab")
    except PackageNotFoundError:
        release = "unknown"
    return {"limitlab": release, "source": digest.hexdigest()[:12], "git": _git_describe()}


def _git_describe() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str) -> dict[str, Any]:
    """The machine a run trained on: device, CPU, threads and the versions that change float rounding."""
    import numpy
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else _cpu_model()
    return {"device": device, "device_name": name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version(), "platform": platform.platform()}


def record(device: str) -> dict[str, Any]:
    """A run's provenance: :func:`code_version`, :func:`environment` and the time (UTC)."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"code": code_version(), "machine": environment(device), "finished": now}


def write_provenance(store: Any, run_id: str, made: dict[str, Any]) -> None:
    """Keep ``made`` as ``runs/<id>/provenance.json`` (written before the run's result)."""
    import json

    from limitlab.store_files import _atomic_write

    _atomic_write(store._dir(run_id) / "provenance.json", json.dumps(made, indent=1).encode())


def read_provenance(store: Any, run_id: str) -> dict | None:
    """A run's provenance, or None (made before runs kept one, or unreadable)."""
    import json

    from limitlab.store_files import StoreError, _read_regular

    try:
        blob = _read_regular(store._dir(run_id) / "provenance.json")
        made = json.loads(blob) if blob is not None else None
    except (OSError, ValueError, StoreError):
        return None
    return made if isinstance(made, dict) else None


def write_report_provenance(store: Any, study: str, folder: Path) -> Path:
    """``folder/provenance.json``: this code and machine, the time, and how many of the study's finished runs
    each code version made (``"unknown"``: runs made before runs kept their provenance)."""
    import json

    frame = store.to_dataframe(study)
    done = frame.loc[frame["status"] == "done", "run_id"].tolist() if len(frame) else []
    versions: dict[str, int] = {}
    for run_id in done:
        made = read_provenance(store, run_id)
        source = (made or {}).get("code", {}).get("source") or "unknown"
        versions[source] = versions.get(source, 0) + 1
    path = Path(folder) / "provenance.json"
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # where a report that evaluates models runs them
    path.write_text(json.dumps({**record(device), "runs_by_code": versions, "store": str(store.root)}, indent=1))
    return path


def other_code(records: dict[str, dict | None]) -> list[str]:
    """The run ids (of ``{run_id: provenance or None}``) whose code is not this code (None: unknown, also listed)."""
    here = code_version()["source"]
    return sorted(r for r, p in records.items() if not (p and p.get("code", {}).get("source") == here))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
