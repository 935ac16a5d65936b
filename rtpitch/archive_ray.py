"""``rtpitch transcribe --ray``: the archive's tasks on a Ray cluster (extra ``rtpitch[cluster]``).

One Ray task per file (:func:`rtpitch.archive.transcribe_one`, one CPU
each, or ``threads``); Ray reuses its worker processes, and each keeps the
model it loaded for its first file (the per-process cache of
:mod:`rtpitch.archive`), so the model is loaded once per worker, not per
file.  Tasks return the MIDI bytes and figures; the driver writes the outputs
and the manifest, so only the inputs must be readable on every node (a shared
file system mounted at the same path), and ``rtpitch`` with the same model
files must be installed there.  A task whose worker dies is retried once by
Ray (``max_retries=1``) before the file is reported failed.

At most four tasks per cluster CPU are in flight, so an archive of any size
costs the driver little memory and a progress bar that moves.  Ray is imported
only here, only when ``--ray`` is used.
"""

from __future__ import annotations

import os
from typing import Callable

from .archive import Settings, Transcript, transcribe_one
from .errors import ClusterError

INSTALL_HINT = "pip install 'rtpitch[cluster]'"


def import_ray():
    """The ``ray`` module, or a ClusterError that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _task(path: str, settings: Settings) -> Transcript:
    return transcribe_one(path, settings)


def _package_root() -> str:
    """The folder holding this ``rtpitch`` package (a local instance's workers import the same one)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def connect(ray, *, address: str | None, num_cpus: int | None) -> bool:
    """Connect to (``address``, or ``RAY_ADDRESS``) or start a Ray instance; True if this call started one."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
              "logging_level": "ERROR"}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # a new local instance: its workers import the rtpitch this driver runs
        paths = [_package_root()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
        raise ClusterError(f"cannot start or reach the Ray cluster ({where}): {' '.join(str(exc).split())[:300]}") \
            from None
    return True


def run_on_ray(work: list[tuple[int, str]], settings: Settings, finished: Callable[[int, Transcript], None],
               *, address: str | None = None, num_cpus: int | None = None) -> None:
    """Transcribe ``work`` ((index, absolute path) pairs) on Ray; ``finished(index, transcript)`` per file.

    ``address``: as ``ray.init(address=...)``; None: ``RAY_ADDRESS``, else a
    new local instance with ``num_cpus`` CPUs (default: all).  An instance
    already initialised in this process (``ray.init`` by the caller) is used
    as it is and left running; one this call started is shut down at the end.
    """
    ray = import_ray()
    started = connect(ray, address=address, num_cpus=num_cpus)
    running: dict = {}  # ObjectRef -> index
    try:
        remote = ray.remote(num_cpus=settings.threads, max_retries=1)(_task)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        limit = 4 * max(1, cpus // settings.threads)
        queue = list(reversed(work))
        while queue or running:
            while queue and len(running) < limit:
                i, path = queue.pop()
                running[remote.remote(path, settings)] = i
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                i = running.pop(ref)
                try:
                    tr = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died twice, or the task could not run
                    text = " ".join(str(exc).split())
                    tr = Transcript.failed(f"Ray task failed: {type(exc).__name__}: {text[:300]}")
                finished(i, tr)
    except BaseException:
        for ref in list(running):  # interrupted: the files in flight are redone on the next run
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
        raise
    finally:
        if started:
            ray.shutdown()
