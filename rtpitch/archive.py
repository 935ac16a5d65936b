"""Transcribe an archive: many files on every core, or on a Ray cluster.

``rtpitch transcribe`` with several inputs, a folder, a glob or ``--out-dir``
calls :func:`transcribe_many`; a single file with ``-o`` keeps the one-file
path (:func:`rtpitch.cli.cmd_transcribe`).

Inputs
------
An explicit file is taken whatever its name; a folder is searched recursively
for audio files (:data:`AUDIO_EXTENSIONS`; hidden names such as macOS ``._x.wav``
are left out); a glob (``'lessons/**/*.flac'``, quoted so the shell leaves it)
gives the audio files it matches.  A path or pattern that finds nothing is a
:class:`~rtpitch.errors.ConfigError` before any work starts.

Outputs
-------
One ``.mid`` per input. With ``out_dir`` the input tree is mirrored below it,
relative to the deepest folder holding every input as given (a folder argument
counts as itself, a file as its folder, a glob as the folder before its first
wildcard): ``transcribe archive/ --out-dir mids`` writes
``archive/term1/a.wav`` to ``mids/term1/a.mid``.  Without ``out_dir`` each
``.mid`` goes beside its input.  Two inputs with one output (``a.wav`` and
``a.flac``) : the first in sorted order gets it, the other fails.

Work
----
One task per file.  Each worker process loads the model once (a per-process
cache, :func:`transcribe_one`), runs the same engine as the one-file path
(:func:`rtpitch.runner.transcribe_file`: a fresh :class:`~rtpitch.engine.Engine`
per file, so a file's notes do not depend on the process or on what ran
before) and returns the MIDI file as bytes; the main process writes each
output atomically (temporary file + rename) and appends its manifest row.
``jobs=1`` runs in the calling process; ``jobs>1`` uses a pool of spawned
processes, each given one file at a time; ``ray`` sends the tasks to a Ray
cluster (:mod:`rtpitch.archive_ray`).  A worker process that dies (killed, out
of memory) takes no other file with it: the pool is restarted, and each file
that was running then is run again alone; one that kills its worker alone
fails.
Ctrl-C or SIGTERM ends the workers at once.

Resuming
--------
An output that exists is skipped unless ``overwrite``; since outputs appear
only whole (renamed into place) and a failed file writes none, running the
same command again after a kill, a crash or failures does exactly what is left.

Manifest
--------
JSON lines, one object per input (:meth:`FileResult.to_json`): ``input``,
``output``, ``status`` (``done``, ``skipped``: output existed, ``failed``),
``duration_s`` (audio), ``notes``, ``wall_s`` and ``cpu_s`` (transcription
time in the worker, wall clock and CPU, model loading excluded), ``rtf``
(real-time factor, ``wall_s / duration_s``), ``error``
(one line or null).  Rows are appended as files finish (a killed run keeps
them); at the end the file is rewritten in input order.  A skipped file keeps
the figures of the row that made it, when the previous manifest has one.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .atomic_file import write_atomic
from .errors import ConfigError, RtpitchError
from .model import DEFAULT_MODEL

#: File name endings (lower case) searched for in folders and globs.
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                              ".aifc", ".au", ".snd", ".w64", ".rf64", ".caf"})

#: Default manifest name (in ``out_dir``, else in the current folder).
MANIFEST_NAME = "rtpitch-manifest.jsonl"

STATUSES = ("done", "skipped", "failed")


@dataclass(frozen=True)
class Settings:
    """How every file is transcribed (the same for all of them).

    ``model``: a shipped model's name, or an absolute path to its JSON;
    ``backend``: ``auto``, ``onnxruntime`` or ``tensorrt``; ``threads``: ONNX
    Runtime threads per worker; ``channel``: input channel (0-based) or None
    for the mix.
    """

    model: str = DEFAULT_MODEL
    backend: str = "auto"
    threads: int = 1
    channel: int | None = None


@dataclass(frozen=True)
class Task:
    """One input file and the ``.mid`` it becomes (paths as found, not resolved)."""

    input: str
    output: str


@dataclass(frozen=True)
class Transcript:
    """What a worker returns for one file.

    ``duration_s``: audio transcribed (s; None if the file could not be
    opened); ``wall_s`` and ``cpu_s``: wall-clock and CPU time the worker spent
    on it (s); ``midi``: the Standard MIDI File, or None when ``error`` is set.
    """

    duration_s: float | None = None
    notes: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    error: str | None = None
    midi: bytes | None = None

    @classmethod
    def failed(cls, error: str) -> Transcript:
        return cls(error=error)


@dataclass(frozen=True)
class FileResult:
    """One input's outcome: a manifest row (module docstring)."""

    input: str
    output: str
    status: str
    duration_s: float | None = None
    notes: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Not failed (done or skipped)."""
        return self.status != "failed"

    @property
    def rtf(self) -> float | None:
        """Real-time factor: transcription time / audio duration."""
        if self.wall_s is None or not self.duration_s:
            return None
        return self.wall_s / self.duration_s

    def to_json(self) -> dict:
        row = asdict(self)
        row["rtf"] = None if self.rtf is None else round(self.rtf, 5)
        for key in ("duration_s", "wall_s", "cpu_s"):
            if row[key] is not None:
                row[key] = round(row[key], 4)
        return {k: row[k] for k in ("input", "output", "status", "duration_s", "notes", "wall_s", "cpu_s", "rtf",
                                    "error")}

    @classmethod
    def from_json(cls, row: dict) -> FileResult:
        return cls(input=str(row["input"]), output=str(row["output"]), status=str(row["status"]),
                   duration_s=row.get("duration_s"), notes=row.get("notes"), wall_s=row.get("wall_s"),
                   cpu_s=row.get("cpu_s"), error=row.get("error"))


# -- finding the inputs ---------------------------------------------------------------------------
def _is_audio(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS and not name.startswith(".")


def _walk(folder: str) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(here, f) for f in sorted(files) if _is_audio(f)]
    return found


def _glob_root(pattern: str) -> str:
    """The folder before the pattern's first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.path.join(*fixed) if fixed else "."


def is_pattern(arg: str) -> bool:
    """A glob pattern (has wildcards and is not itself an existing path)."""
    return glob.has_magic(arg) and not os.path.exists(arg)


def find_inputs(args: Iterable) -> tuple[list[str], str]:
    """Expand files, folders and globs into audio files; return them and their root.

    Returns
    -------
    (files, root)
        ``files``: paths as found, in argument order, each folder's sorted,
        each file once; ``root``: absolute path of the deepest folder holding
        every argument (module docstring, "Outputs").

    Raises
    ------
    ConfigError
        An argument that is neither a file, a folder with audio files, nor a
        glob that matches any.
    """
    files: list[str] = []
    roots: list[str] = []
    seen: set[str] = set()
    for arg in args:
        arg = os.fspath(arg)
        if os.path.isdir(arg):
            found, root = _walk(arg), arg
            if not found:
                raise ConfigError(f"{arg}: no audio files in this folder "
                                  f"(looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        elif os.path.exists(arg):
            found, root = [arg], os.path.dirname(arg) or "."
        elif glob.has_magic(arg):
            found = []
            for match in sorted(glob.glob(arg, recursive=True)):
                if os.path.isdir(match):
                    found += _walk(match)
                elif _is_audio(os.path.basename(match)):
                    found.append(match)
            root = _glob_root(arg)
            if not found:
                raise ConfigError(f"{arg}: no audio files match this pattern")
        else:
            raise ConfigError(f"{arg}: no such file or folder")
        roots.append(os.path.abspath(root))
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    root = os.path.commonpath(roots) if roots else os.getcwd()
    return files, root


def plan(args: Iterable, *, out_dir=None) -> list[Task]:
    """The tasks for ``args`` (see :func:`find_inputs`): one output per input.

    ``out_dir``: mirror the inputs' tree below this folder; None: each
    ``.mid`` beside its input.
    """
    files, root = find_inputs(args)
    tasks = []
    for path in files:
        if out_dir is None:
            out = os.path.splitext(path)[0] + ".mid"
        else:
            rel = os.path.relpath(os.path.abspath(path), root)
            out = os.path.join(os.fspath(out_dir), os.path.splitext(rel)[0] + ".mid")
        tasks.append(Task(path, out))
    return tasks


# -- the work of one file (in a worker) -----------------------------------------------------------
_MODELS: dict = {}  # Settings -> (spec, backend): one model per worker process


def _loaded(settings: Settings):
    """The model and backend for ``settings``, loaded once per process."""
    if settings not in _MODELS:
        from .backends import make_backend
        from .model import load_model_spec

        from .engine import Engine
        from .runner import warm_up

        spec = load_model_spec(settings.model)
        backend = make_backend(settings.backend, spec, threads=settings.threads)
        # first-call costs (numba cache loads, the runtime's first runs) now, not in the first file's time
        warm_up(Engine(spec, backend, source_rate=44100))
        _MODELS.clear()
        _MODELS[settings] = (spec, backend)
    return _MODELS[settings]


def _strip_name(message: str, path: str) -> str:
    """Errors from a source start with the file's base name; the manifest row names it already."""
    prefix = os.path.basename(path) + ": "
    return message[len(prefix):] if message.startswith(prefix) else message


def transcribe_one(path: str, settings: Settings) -> Transcript:
    """Transcribe one file; never raises (a fault is the Transcript's ``error``).

    The same run as ``rtpitch transcribe FILE -o OUT``: its MIDI bytes are
    those that command writes.
    """
    from .runner import transcribe_file
    from .sinks.midi_file import midi_file_bytes

    try:
        spec, backend = _loaded(settings)
        cpu0 = time.process_time()
        summary = transcribe_file(path, spec, backend, channel=settings.channel, raise_errors=False)
        cpu = time.process_time() - cpu0
    except RtpitchError as exc:
        return Transcript.failed(_strip_name(" ".join(str(exc).split()), path))
    except Exception as exc:  # noqa: BLE001 - one file's bug must not end the archive run
        return Transcript.failed(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")
    errors = summary.errors + summary.sink_errors
    figures = {"duration_s": summary.audio_s, "notes": summary.notes, "wall_s": summary.wall_s, "cpu_s": cpu}
    if errors:
        return Transcript(**figures, error=_strip_name(errors[0], path))
    return Transcript(**figures, midi=midi_file_bytes(summary.events + summary.pedal_events))


def _init_worker(settings: Settings) -> None:
    """Pool worker start: Ctrl-C is the main process's to handle; load the model now."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _loaded(settings)
    except RtpitchError:
        pass  # each file then reports it


# -- the main process ------------------------------------------------------------------------------
def default_jobs() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _write_atomic(path: str, data: bytes) -> None:
    """:func:`~rtpitch.atomic_file.write_atomic`, its folder made first (an --out-dir tree)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_atomic(path, data)


def format_hours(seconds: float) -> str:
    """Audio time for people: ``'2.41 h'``, or ``'3.5 min'`` below an hour."""
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


class _Manifest:
    """The manifest file: previous rows read at start, rows appended as files finish."""

    def __init__(self, path: str | None):
        self.path = path
        self.previous: dict[str, FileResult] = {}
        self._fh = None
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = FileResult.from_json(json.loads(line))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a kill
                    self.previous[row.input] = row
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(f"cannot read manifest {path}: {exc.strerror or exc}") from None

    def start(self, rows: list[FileResult]) -> None:
        if self.path is None:
            return
        self.rewrite(rows)
        try:
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write manifest {self.path}: {exc.strerror or exc}") from None

    def append(self, row: FileResult) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(row.to_json()) + "\n")
            self._fh.flush()

    def rewrite(self, rows: list[FileResult]) -> None:
        if self.path is None:
            return
        self.close()
        try:
            _write_atomic(self.path, "".join(json.dumps(r.to_json()) + "\n" for r in rows).encode())
        except OSError as exc:
            raise ConfigError(f"cannot write manifest {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Progress:
    """Files done, audio hours done, speed (audio time per wall time).

    On a terminal a tqdm bar; elsewhere (a batch job's log file) one line each
    ``LOG_EVERY_S`` seconds through ``log``.
    """

    LOG_EVERY_S = 60.0

    def __init__(self, total: int, *, enabled: bool, log: Callable[[str], None] | None):
        self.audio_s = 0.0
        self.files = 0
        self.total = total
        self.t0 = time.monotonic()
        self._next_line = self.t0 + self.LOG_EVERY_S
        self._log = log
        self.bar = None
        self.lines = False
        if enabled and total:
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} files [{elapsed}<{remaining}{postfix}]")
            else:
                self.lines = True

    def _status(self) -> str:
        speed = self.audio_s / max(time.monotonic() - self.t0, 1e-9)
        return f"{format_hours(self.audio_s)} of audio, {speed:.1f}x real time"

    def done(self, result: FileResult) -> None:
        self.audio_s += result.duration_s or 0.0
        self.files += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._status(), refresh=False)
            self.bar.update(1)
        elif self.lines and time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + self.LOG_EVERY_S
            self.log(f"progress: {self.files}/{self.total} files, {self._status()}")

    def log(self, line: str) -> None:
        if self._log is None:
            return
        if self.bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            self._log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def transcribe_many(inputs: Sequence, *, out_dir=None, jobs: int | None = None, model: str = DEFAULT_MODEL,
                    backend: str = "auto", threads: int = 1, channel: int | None = None,
                    overwrite: bool = False, manifest=None, ray: bool | str = False,
                    progress: bool = False, log: Callable[[str], None] | None = None) -> list[FileResult]:
    """Transcribe files, folders and globs to one MIDI file each (module docstring).

    Parameters
    ----------
    inputs : sequence of str or os.PathLike
        Files, folders (searched recursively) and glob patterns.
    out_dir : str or os.PathLike, optional
        Mirror the inputs' tree below this folder (created if needed); None:
        each ``.mid`` beside its input.
    jobs : int, optional
        Worker processes (default: the cores this process may use; with
        ``ray``: the CPUs of a local Ray instance it starts).
    model, backend, threads, channel :
        As for ``rtpitch transcribe`` (:class:`Settings`).
    overwrite : bool
        Transcribe again files whose output exists (default: skip them).
    manifest : str or os.PathLike, optional
        The JSON-lines manifest to write (None: none).
    ray : bool or str
        False: local processes. True: a Ray cluster (``RAY_ADDRESS`` if set,
        else a new local instance); a string: the cluster's address
        (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``).
    progress : bool
        Show a progress bar on stderr.
    log : callable, optional
        Gets a line for each failed file (``"rtpitch: error: INPUT: ..."``).

    Returns
    -------
    list of FileResult
        One per input, in input order.

    Raises
    ------
    ConfigError
        An input that finds nothing, bad settings, an output folder that
        cannot be made.
    ModelError, BackendError
        The model cannot be loaded (checked once, before any file).
    ClusterError
        ``ray`` without Ray installed, or a cluster that cannot be reached.
    """
    from .backends import resolve_backend
    from .model import load_model_spec, resolve_model_path

    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if threads < 1:
        raise ConfigError(f"onnxruntime: threads must be >= 1, got {threads}")
    # a path to a model travels to the workers as an absolute path (their cwd differs on Ray)
    model_arg = os.path.abspath(resolve_model_path(model)) if Path(model).suffix in (".json", ".onnx") else model
    settings = Settings(model=model_arg, backend=backend, threads=threads, channel=channel)
    load_model_spec(settings.model)
    resolve_backend(backend)
    if ray:
        from .archive_ray import import_ray

        import_ray()  # missing: the error that names the extra, before anything is written
    else:
        _loaded(settings)  # the model loads here or its error is raised once, before any file
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    tasks = plan(inputs, out_dir=out_dir)
    if out_dir is not None:
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot make output folder {out_dir}: {exc.strerror or exc}") from None
    book = _Manifest(None if manifest is None else os.fspath(manifest))

    results: dict[int, FileResult] = {}
    to_run: list[int] = []
    owner: dict[str, str] = {}
    for i, task in enumerate(tasks):
        key = os.path.normcase(os.path.abspath(task.output))
        if key in owner:
            results[i] = FileResult(task.input, task.output, "failed",
                                    error=f"same output as {owner[key]}; rename one of them")
        elif not overwrite and os.path.exists(task.output):
            old = book.previous.get(task.input)
            if old is not None and old.output == task.output and old.status != "failed":
                results[i] = FileResult(task.input, task.output, "skipped", old.duration_s, old.notes, old.wall_s,
                                        old.cpu_s)
            else:
                results[i] = FileResult(task.input, task.output, "skipped")
        else:
            to_run.append(i)
        owner.setdefault(key, task.input)
    bar = _Progress(len(to_run), enabled=progress, log=log)
    for i, r in results.items():
        if r.status == "failed":
            bar.log(f"rtpitch: error: {r.input}: {r.error}")
    book.start([results[i] for i in sorted(results)])

    def finished(i: int, tr: Transcript) -> None:
        task = tasks[i]
        error = tr.error
        if error is None:
            try:
                _write_atomic(task.output, tr.midi)
            except OSError as exc:
                error = f"cannot write {task.output}: {exc.strerror or exc}"
        result = FileResult(task.input, task.output, "failed" if error else "done",
                            tr.duration_s, tr.notes, tr.wall_s, tr.cpu_s, error)
        results[i] = result
        book.append(result)
        bar.done(result)
        if error:
            bar.log(f"rtpitch: error: {task.input}: {error}")

    try:
        if not to_run:
            pass
        elif ray:
            from .archive_ray import run_on_ray

            run_on_ray([(i, os.path.abspath(tasks[i].input)) for i in to_run], settings, finished,
                       address=None if ray is True else str(ray), num_cpus=jobs)
        else:
            _run_local([(i, tasks[i].input) for i in to_run], settings, finished,
                       jobs=min(jobs or default_jobs(), len(to_run)))
    finally:
        bar.close()
        book.close()
    out = [results[i] for i in range(len(tasks))]
    book.rewrite(out)
    return out


def _run_local(work: list[tuple[int, str]], settings: Settings, finished: Callable[[int, Transcript], None],
               *, jobs: int) -> None:
    """Run ``work`` ((index, path) pairs) here (``jobs == 1``) or in ``jobs`` spawned processes."""
    if jobs <= 1:
        for i, path in work:
            finished(i, transcribe_one(path, settings))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    died = ("the worker process died while transcribing this file alone (out of memory? killed? a crash in a "
            "native library?)")
    paths = dict(work)
    queue = [i for i, _ in reversed(work)]
    suspects: list[int] = []  # files that were running when a worker died: each is run again alone
    while queue or suspects:  # a new pool after each death
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(settings,))
        running: dict = {}  # future -> index; never more than `jobs`, so every one is being worked on
        lost: list[int] = []
        alone = None  # the suspect running by itself
        try:
            while (queue or suspects or running) and not lost:
                if suspects:
                    if not running:  # the others have finished: the next suspect runs alone
                        alone = suspects.pop()
                        running[pool.submit(transcribe_one, paths[alone], settings)] = alone
                else:
                    while queue and len(running) < jobs:
                        i = queue.pop()
                        running[pool.submit(transcribe_one, paths[i], settings)] = i
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        tr = fut.result()
                    except BrokenProcessPool:
                        lost.append(i)
                        continue
                    finished(i, tr)
        except BaseException:
            _stop_pool(pool)
            raise
        lost += running.values()
        pool.shutdown(wait=True)
        if lost == [alone]:
            finished(alone, Transcript.failed(died))
        else:
            suspects += sorted(lost, reverse=True)


def _stop_pool(pool) -> None:
    """Interrupted: drop queued files and end the workers now (their files are redone on the next run)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public way before Python 3.14
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
