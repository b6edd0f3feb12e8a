"""Runs on dask.distributed (docs/cluster.md): a ``LocalCluster`` of N worker processes
(``--cluster local:N``), or workers submitted to a SLURM, LSF or PBS queue by dask-jobqueue
(``--cluster slurm --cluster-config FILE``). One task is one run folder: a failed task is retried and
resumes from the folder's last checkpoint, and the folders stay the truth if the client dies
(re-running the command resumes every unfinished run). Needs ``pip install -e ".[cluster]"``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import ConfigError, load_mapping

INSTALL = 'pip install -e ".[cluster]"'
# --cluster kind -> dask-jobqueue class
JOBQUEUE = {"slurm": "SLURMCluster", "lsf": "LSFCluster", "pbs": "PBSCluster"}
# every task asks for one unit of this worker resource: one run at a time per worker, whatever its cores
RESOURCE = "fvjax_run"

_STR, _INT, _LIST = (str,), (int,), (list,)
# --cluster-config keys (dask-jobqueue's keyword arguments) -> accepted types
COMMON_KEYS = {"cores": _INT, "memory": _STR, "processes": _INT, "n_workers": _INT, "walltime": _STR,
               "queue": _STR, "job_name": _STR, "interface": _STR, "local_directory": _STR,
               "log_directory": _STR, "shared_temp_directory": _STR, "python": _STR, "shebang": _STR,
               "death_timeout": (int, float), "job_extra_directives": _LIST, "job_directives_skip": _LIST,
               "job_script_prologue": _LIST, "worker_extra_args": _LIST, "scheduler_options": (dict,)}
KIND_KEYS = {"slurm": {"account": _STR, "job_cpu": _INT, "job_mem": _STR},
             "lsf": {"project": _STR, "ncpus": _INT, "mem": _INT, "lsf_units": _STR, "use_stdin": (bool,)},
             "pbs": {"project": _STR, "account": _STR, "resource_spec": _STR}}
REQUIRED = ("cores", "memory", "n_workers")


@dataclass(frozen=True)
class ClusterSpec:
    kind: str                          # "local" or a JOBQUEUE key
    n_workers: int = 0                 # local:N, or the file's n_workers (worker jobs submitted)
    options: tuple = ()                # validated (key, value) pairs of the cluster-config file, n_workers aside
    source: str = ""                   # the cluster-config file


def parse_cluster(text: str, config_file: str | None = None) -> ClusterSpec:
    """``local:N`` or ``slurm|lsf|pbs`` (with ``config_file``) -> ClusterSpec; anything else is a
    ConfigError naming the fix."""
    kind, _, count = text.partition(":")
    if kind == "local":
        if config_file:
            raise ConfigError(f"--cluster-config {config_file}: only for {', '.join(JOBQUEUE)}; local:N takes none")
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--cluster {text!r}: write local:N with N >= 1 worker processes, e.g. local:2")
        return ClusterSpec("local", int(count))
    if kind not in JOBQUEUE or count:
        raise ConfigError(f"--cluster {text!r}: expected local:N or one of {', '.join(JOBQUEUE)}")
    if not config_file:
        raise ConfigError(f"--cluster {kind} needs --cluster-config FILE (YAML with {', '.join(REQUIRED)}, ...; "
                          f"docs/cluster.md)")
    options = load_cluster_config(kind, config_file)
    n_workers = options.pop("n_workers")
    return ClusterSpec(kind, n_workers, tuple(sorted(options.items())), str(config_file))


def load_cluster_config(kind: str, path: str | Path) -> dict:
    """The dask-jobqueue keyword arguments in ``path``, checked: known keys of ``kind`` only, the
    required ones present, values of the right type (ConfigErrors naming the file and key)."""
    path = Path(path)
    data = load_mapping(path, "--cluster-config", "a mapping of dask-jobqueue options (docs/cluster.md)")
    known = {**COMMON_KEYS, **KIND_KEYS[kind]}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown key {key!r} for --cluster {kind}; "
                              f"known keys: {', '.join(sorted(known))}")
        types = known[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"{path}: {key} = {value!r} should be of type {' or '.join(t.__name__ for t in types)}")
        if types is _LIST and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: {key} should be a list of strings")
    for key in REQUIRED:
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r} (e.g. cores: 8, memory: 32GB, n_workers: 8; "
                              f"docs/cluster.md)")
    if min(data.get("cores", 1), data.get("processes", 1), data.get("n_workers", 1)) < 1:
        raise ConfigError(f"{path}: cores, processes and n_workers must be >= 1")
    return data


def _local(spec: ClusterSpec, env: dict):
    from distributed import LocalCluster

    # memory_limit 0: the nanny never kills a run for its memory (a run's size is set by its config;
    # memory-mapped datasets count towards a process's resident memory)
    return LocalCluster(n_workers=spec.n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        memory_limit=0, env=env, resources={RESOURCE: 1})


def _jobqueue(spec: ClusterSpec, env: dict):
    """The dask-jobqueue cluster, no job submitted yet (:func:`open_client` scales it)."""
    import dask_jobqueue

    kwargs = {"processes": 1, **dict(spec.options)}   # one worker per job: a run's JAX uses all its cores
    exports = [f"export {k}=${{{k}:-{v}}}" for k, v in env.items()]   # the job's own value wins
    kwargs["job_script_prologue"] = exports + list(kwargs.get("job_script_prologue", []))
    kwargs["worker_extra_args"] = list(kwargs.get("worker_extra_args", [])) + ["--resources", f"{RESOURCE}=1"]
    return getattr(dask_jobqueue, JOBQUEUE[spec.kind])(**kwargs)


BUILDERS = {"local": _local, **{kind: _jobqueue for kind in JOBQUEUE}}


def require_dask(spec: ClusterSpec) -> None:
    """A ConfigError with the install command when the packages ``spec`` needs are missing."""
    from importlib.util import find_spec

    needed = ["distributed"] + (["dask_jobqueue"] if spec.kind in JOBQUEUE else [])
    missing = [name for name in needed if find_spec(name) is None]
    if missing:
        raise ConfigError(f"--cluster {spec.kind} needs {', '.join(m.replace('_', '-') for m in missing)}, "
                          f"which is not installed: {INSTALL}")


def add_arguments(parser, task: str = "run") -> None:
    """--cluster, --cluster-config and --retries for a command line whose tasks are ``task``s."""
    parser.add_argument("--cluster", metavar="local:N|slurm|lsf|pbs",
                        help=f"run each {task}'s folder as a task on dask.distributed: a LocalCluster of N worker "
                             f"processes, or workers submitted to a queue (needs --cluster-config; docs/cluster.md)")
    parser.add_argument("--cluster-config", metavar="FILE", help="YAML of dask-jobqueue options (cores, memory, "
                                                                 "n_workers, ...)")
    parser.add_argument("--retries", type=int, default=2,
                        help=f"with --cluster: times a failed {task} is re-run (it resumes from its checkpoint)")


def from_arguments(args) -> ClusterSpec | None:
    """The --cluster/--cluster-config/--retries choice checked (ConfigError), or None without --cluster."""
    if args.cluster is None:
        if args.cluster_config:
            raise ConfigError(f"--cluster-config {args.cluster_config} needs --cluster {'|'.join(JOBQUEUE)}")
        return None
    if getattr(args, "jobs", 1) > 1:
        raise ConfigError("--jobs and --cluster exclude each other (--cluster local:N runs N at a time)")
    if args.retries < 0:
        raise ConfigError(f"--retries {args.retries}: must be >= 0")
    spec = parse_cluster(args.cluster, args.cluster_config)
    require_dask(spec)
    return spec


@contextmanager
def maybe_client(spec: ClusterSpec | None):
    """:func:`open_client` for a spec, None for no spec."""
    if spec is None:
        yield None
    else:
        with open_client(spec) as client:
            yield client


@contextmanager
def open_client(spec: ClusterSpec):
    """A dask ``Client`` on the cluster ``spec`` describes (started here, closed on exit). Worker
    processes get :func:`fvjax.device.worker_env`."""
    from distributed import Client

    from .device import worker_env

    require_dask(spec)
    with BUILDERS[spec.kind](spec, worker_env()) as cluster:
        cluster.scale(spec.n_workers)     # submits the jobs (a LocalCluster has its workers already)
        with Client(cluster) as client:
            yield client


def run_on_client(client, tasks: list[dict], fn: Callable, on_result=None, retries: int = 2) -> list[dict]:
    """``fn(**task, progress=False)`` for every task on the cluster, each retried up to ``retries``
    times after an error (a retry resumes from the run folder's checkpoint). Waits for all tasks;
    ``on_result(task, metrics)`` as each finishes. Returns the metrics in task order, or raises the
    first task's error once every task has finished or failed."""
    from uuid import uuid4

    from distributed import as_completed

    batch = uuid4().hex[:8]    # keys unique per call, readable on the dashboard
    futures = {client.submit(fn, **task, progress=False, retries=retries, pure=False, resources={RESOURCE: 1},
                             key=f"fvjax-{Path(str(task.get('run_dir', i))).name}-{batch}-{i}"): i
               for i, task in enumerate(tasks)}
    results, errors = {}, {}
    for fut in as_completed(futures):
        i = futures[fut]
        try:
            results[i] = fut.result()
        except Exception as err:   # the task's own error (RunMismatch, FloatingPointError, ...), or KilledWorker
            errors[i] = err
            print(f"   {tasks[i].get('run_dir', i)}: failed after {retries} retries: {err}", flush=True)
            continue
        if on_result:
            on_result(tasks[i], results[i])
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(len(tasks))]
