"""Seed sweeps on dask.distributed (fvjax.cluster, docs/cluster.md), the run-folder lock's heartbeat
that lets a lost worker's run be taken over, and the accelerator settings (fvjax.device)."""

import json
import math
import os
import socket
import time

import pytest

# a synthetic 16-neuron network, 8 iterations: a few seconds of work once compiled
TINY = {"simulation.n_frames": 120, "training.n_iter": 8, "simulation.network": "synthetic",
        "simulation.n_neurons": 16, "simulation.n_neuron_types": 2, "graph_model.signal_model_name": "dense",
        "graph_model.g_phi_positive": False, "graph_model.hidden_dim": 8, "graph_model.hidden_dim_update": 8,
        "training.steps_per_call": 4, "training.eval_every": 8,
        "training.hold_silent_sources": False,   # the recipe's hold and refit need an edge-list W
        "training.refit_at_end": False}
TINY_ARGS = ["--quiet"] + [a for k, v in TINY.items() for a in ("--set", f"{k}={str(v).lower()}")]
TIMES = ("training_time_min", "total_time_min", "data_dir")


def _same(a, b):   # NaN == NaN
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_local_cluster_seed_sweep_equals_sequential(tmp_path, capsys):
    """--cluster local:2 runs each seed's folder as a dask task in two worker processes: both folders
    complete, the gathered table has both seeds, and every metric equals the one of the same seed
    run in this process (run_many one after another, without plots to save time)."""
    from fvjax.config import load_config
    from fvjax.experiments.vrest import PRESETS, RECIPES, main, seed_config
    from fvjax.pipeline import run_many

    assert main(["--seeds", "1-2", "--cluster", "local:2", "--out", str(tmp_path / "c"), *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "dask cluster local:2" in out and "seed 1: connectivity_R2=" in out and "seed 2: connectivity_R2=" in out
    assert "connectivity_R2      " in out and "(n=2)" in out
    shared = str((tmp_path / "c" / "datasets").resolve())   # the cluster runs' dataset cache, reused
    cfg = load_config(None, {**PRESETS["default"], **RECIPES["fvjax"], **TINY, "simulation.data_cache": shared})
    tasks = [{"cfg": seed_config(cfg, s), "run_dir": tmp_path / "s" / f"seed{s}", "header": {"seed": s},
              "plots": False} for s in (1, 2)]
    run_many(tasks)
    for seed in (1, 2):
        run, ref = tmp_path / "c" / f"default_seed{seed}", tmp_path / "s" / f"seed{seed}"
        assert not (run / ".lock").exists() and (run / "plots" / "recovery.png").is_file()
        assert (run / "config.yaml").read_text() == (ref / "config.yaml").read_text()
        cluster, sequential = (json.loads((d / "metrics.json").read_text()) for d in (run, ref))
        assert cluster["seed"] == seed and cluster["iterations"] == 8
        assert set(cluster) == set(sequential)
        differ = {k: (cluster[k], sequential[k]) for k in cluster if k not in TIMES and not _same(cluster[k], sequential[k])}
        assert not differ
    summary = json.loads((tmp_path / "c" / "default_seeds1-2_summary.json").read_text())
    assert summary["seeds"] == [1, 2] and sorted(summary["runs"]) == ["1", "2"]
    assert summary["summary"]["connectivity_R2"]["n"] == 2


def test_local_workers_get_the_worker_env_and_this_fvjax(monkeypatch):
    """local:N worker processes have XLA_PYTHON_CLIENT_PREALLOCATE=false (set by the nanny before
    the worker starts, so before JAX could read it) and import the same fvjax as this process."""
    import fvjax
    from fvjax.cluster import ClusterSpec, open_client

    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    with open_client(ClusterSpec("local", 1)) as client:
        env = client.run(os.getenv, "XLA_PYTHON_CLIENT_PREALLOCATE")
        files = client.run(lambda: __import__("fvjax").__file__)
    assert list(env.values()) == ["false"] and list(files.values()) == [fvjax.__file__]


def _flaky(cfg, run_dir, header, progress):
    """Fails the first time it is called for a folder (a marker file remembers), then succeeds."""
    marker = run_dir / "attempts"
    run_dir.mkdir(parents=True, exist_ok=True)
    attempts = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempts))
    if attempts == 1 or cfg == "always":
        raise RuntimeError(f"worker lost in {run_dir.name}")
    return {"seed": header["seed"], "attempts": attempts}


def test_failed_task_is_retried_and_errors_wait_for_the_others(tmp_path):
    from distributed import Client, LocalCluster

    from fvjax.cluster import RESOURCE
    from fvjax.pipeline import run_many

    tasks = [{"cfg": None, "run_dir": tmp_path / f"s{s}", "header": {"seed": s}} for s in (1, 2)]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                      resources={RESOURCE: 2}) as cluster, Client(cluster) as client:
        seen = []
        out = run_many(tasks, client=client, fn=_flaky, on_result=lambda t, m: seen.append(m["seed"]), retries=1)
        assert out == [{"seed": 1, "attempts": 2}, {"seed": 2, "attempts": 2}] and sorted(seen) == [1, 2]
        tasks = [{"cfg": "always", "run_dir": tmp_path / "bad", "header": {"seed": 3}},
                 {"cfg": None, "run_dir": tmp_path / "good", "header": {"seed": 4}}]
        seen.clear()
        with pytest.raises(RuntimeError, match="worker lost in bad"):
            run_many(tasks, client=client, fn=_flaky, on_result=lambda t, m: seen.append(m["seed"]), retries=2)
        assert seen == [4] and (tmp_path / "bad" / "attempts").read_text() == "3"


def test_explore_slots_as_dask_tasks_match_sequential(tmp_path):
    """explore with a dask client: the slots and the robustness seeds run as tasks; the log and the
    robustness statistics equal the sequential ones."""
    from distributed import Client, LocalCluster

    from fvjax.cluster import RESOURCE
    from fvjax.config import from_dict
    from fvjax.explore import ExploreSettings, SweepProposer, explore
    from fvjax.explore.tree import parse_log
    from tests.test_explore import _fake_run

    settings = ExploreSettings("p", n_iterations=4, n_parallel=2, robustness_seeds=2)
    space = {"training.lr_W": [1e-4, 1e-3, 1e-2]}
    logs = {}
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                      resources={RESOURCE: 2}) as cluster, Client(cluster) as client:
        for name, c in (("dask", client), ("sequential", None)):
            explore(from_dict({}), tmp_path / name, SweepProposer(space, "ordered"), settings, run_fn=_fake_run,
                    progress=False, client=c)
            logs[name] = [(n.id, n.parent, n.metrics["connectivity_R2"])
                          for n in parse_log((tmp_path / name / "p_analysis.md").read_text())]
    assert logs["dask"] == logs["sequential"] and len(logs["dask"]) == 4
    robust = [json.loads((tmp_path / name / "robustness.json").read_text()) for name in ("dask", "sequential")]
    assert robust[0] == robust[1] and robust[0]["seeds"] == [1, 2]


@pytest.mark.parametrize("argv, says", [
    (["--cluster", "local"], "write local:N"),
    (["--cluster", "local:0"], "write local:N"),
    (["--cluster", "sge"], "expected local:N or one of slurm, lsf, pbs"),
    (["--cluster", "slurm"], "needs --cluster-config"),
    (["--cluster-config", "x.yaml"], "needs --cluster slurm|lsf|pbs"),
    (["--cluster", "local:2", "--jobs", "2"], "--jobs and --cluster exclude each other"),
    (["--cluster", "local:2", "--retries", "-1"], "--retries -1"),
    (["--cluster", "lsf", "--cluster-config", "{dir}/missing.yaml"], "missing.yaml does not exist"),
])
@pytest.mark.parametrize("program", ["vrest", "explore"])
def test_cluster_arguments_are_checked(tmp_path, capsys, argv, says, program):
    from importlib import import_module

    main = import_module(f"fvjax.experiments.{program}").main
    argv = [a.format(dir=tmp_path) for a in argv]
    assert main([*argv, "--out", str(tmp_path / "runs")]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, says", [
    ("cores: 8\nmemory: 32GB\nn_workers: 2\ncpus: 4\n", "unknown key 'cpus' for --cluster slurm"),
    ("cores: 8\nmemory: 32GB\nn_workers: 2\nncpus: 4\n", "unknown key 'ncpus' for --cluster slurm"),   # an LSF key
    ("memory: 32GB\nn_workers: 2\n", "missing key 'cores'"),
    ("cores: 8\nmemory: 32GB\n", "missing key 'n_workers'"),
    ("cores: '8'\nmemory: 32GB\nn_workers: 2\n", "cores = '8' should be of type int"),
    ("cores: 8\nmemory: 32GB\nn_workers: 2\njob_extra_directives: --gres=gpu:1\n",
     "job_extra_directives = '--gres=gpu:1' should be of type list"),
    ("cores: 8\nmemory: 32GB\nn_workers: 0\n", "must be >= 1"),
    ("cores: 8\nmemory: 32GB\nn_workers: true\n", "n_workers = True should be of type int"),
    ("- cores\n", "top level must be a mapping"),
    ("cores: 8\ncores: 4\nmemory: 32GB\n", "'cores' appears twice"),
])
def test_cluster_config_errors_name_file_and_key(tmp_path, capsys, text, says):
    from fvjax.experiments.vrest import main

    path = tmp_path / "slurm.yaml"
    path.write_text(text)
    assert main(["--cluster", "slurm", "--cluster-config", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "slurm.yaml" in err and says in err


def test_missing_dask_jobqueue_says_how_to_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    from fvjax.experiments.vrest import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dask_jobqueue" else real(name, *a))
    path = tmp_path / "lsf.yaml"
    path.write_text("cores: 8\nmemory: 32GB\nn_workers: 2\nproject: flyvis\n")
    assert main(["--cluster", "lsf", "--cluster-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "dask-jobqueue" in err and 'pip install -e ".[cluster]"' in err


def test_jobqueue_job_script_has_worker_env_and_one_run_per_worker(tmp_path, monkeypatch):
    """The LSF job script dask-jobqueue would submit (rendered, not submitted): the user's options, the
    GPU-sharing default exported unless the job sets it, and the one-run-per-worker resource."""
    from fvjax.cluster import BUILDERS, RESOURCE, parse_cluster
    from fvjax.device import worker_env

    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    path = tmp_path / "lsf.yaml"
    path.write_text("cores: 8\nmemory: 32GB\nn_workers: 3\nproject: flyvis\nqueue: gpu_a100\nwalltime: '04:00'\n"
                    "job_script_prologue: [source ~/venv/bin/activate]\n")
    spec = parse_cluster("lsf", str(path))
    assert spec.n_workers == 3 and "n_workers" not in dict(spec.options)
    with BUILDERS["lsf"](spec, worker_env()) as cluster:
        script = cluster.job_script()
    assert "#BSUB -q gpu_a100" in script and '#BSUB -P "flyvis"' in script and "#BSUB -n 8" in script
    assert "--nworkers" not in script or "--nworkers 1 " in script     # processes: 1 unless the file says
    export = "export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
    assert export in script and script.index(export) < script.index("source ~/venv/bin/activate")
    assert f"--resources {RESOURCE}=1" in script


def test_worker_env_keeps_the_users_value():
    from fvjax.device import worker_env

    assert worker_env({}) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert worker_env({"XLA_PYTHON_CLIENT_PREALLOCATE": "true"}) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "true"}


def test_matmul_precision_pinned_on_gpu_only(monkeypatch):
    import jax

    from fvjax.device import configure_jax

    before = jax.config.jax_default_matmul_precision
    try:
        monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
        assert configure_jax() is None and jax.config.jax_default_matmul_precision == before
        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
        assert configure_jax() == "highest" and jax.config.jax_default_matmul_precision == "highest"
    finally:
        jax.config.update("jax_default_matmul_precision", before)


def test_lock_of_a_lost_host_is_taken_over_after_its_heartbeat_stops(tmp_path, capsys, monkeypatch):
    """A lock written on another host is live while its mtime is fresh, stale once older than
    LOCK_STALE_S; the holder's heartbeat keeps its own lock fresh."""
    from fvjax import pipeline

    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": socket.gethostname() + "-other", "pid": 1}))
    with pytest.raises(pipeline.RunLocked, match="-other"):
        with pipeline.run_lock(tmp_path):
            pass
    old = time.time() - pipeline.LOCK_STALE_S - 60
    os.utime(lock, (old, old))
    monkeypatch.setattr(pipeline, "LOCK_HEARTBEAT_S", 0.01)
    with pipeline.run_lock(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        os.utime(lock, (old, old))
        deadline = time.time() + 30
        while lock.stat().st_mtime < time.time() - 60 and time.time() < deadline:
            time.sleep(0.01)
        assert lock.stat().st_mtime > time.time() - 60      # refreshed by the heartbeat
    assert "taking over" in capsys.readouterr().out and not lock.exists()
