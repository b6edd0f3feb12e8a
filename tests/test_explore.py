"""Exploration tree: the journal and its text view, the legacy log parser, UCB by hand, the runner
with a stand-in training function."""

import json
import math

import numpy as np
import pytest
import yaml

from fvjax.config import from_dict
from fvjax.explore import (ExploreSettings, FileProposer, JournalError, NeedProposals, Node, SweepProposer,
                           append_event, explore, format_entry, node_event, nodes_of, parse_log, read_events,
                           render_log, ucb_scores)

LOG = """# header text
## Iter 1: partial
Node: id=1, parent=root
Mutation: lr_W: 1E-3 -> 2E-3
Metrics: test_R2=-12.5, test_pearson=0.7, connectivity_R2=0.55, final_loss=1.2e-3
Next: parent=1

## Iter 2: converged
Mutation: coeff_W_L1: 1E-5 -> 3E-5
Metrics: connectivity_R2=0.95, tau_R2=nan
Next: parent=2

## Iter 3: failed
Node: id=3, parent=2
Metrics: connectivity_R2=0.05
Slot 0: connectivity_R2=0.07, tau_R2=0.5

## Iter 4: partial
Node: id=4, parent=0
Metrics: connectivity_R2=0.5

## Robustness of node 2: converged
Seed stats: mean_connectivity_R2=0.9, std=0.01
"""


def test_parse_log_rules():
    nodes = {n.id: n for n in parse_log(LOG)}
    assert sorted(nodes) == [1, 2, 3, 4]
    assert nodes[1].parent is None and nodes[1].mutation == "lr_W: 1E-3 -> 2E-3"
    assert nodes[1].metrics["test_R2"] == -12.5 and nodes[1].metrics["final_loss"] == 1.2e-3   # signs, exponents
    assert nodes[2].parent == 1                    # from "Next: parent=1" of iteration 1
    assert math.isnan(nodes[2].metrics["tau_R2"])
    assert nodes[3].parent == 2 and nodes[3].metrics["connectivity_R2"] == 0.07   # last reward line wins
    assert nodes[4].parent is None                 # parent=0 means root
    assert "mean_connectivity_R2" not in nodes[4].metrics   # other headings end an entry


def test_ucb_by_hand():
    nodes = [Node(1, None, {"connectivity_R2": 0.4}), Node(2, 1, {"connectivity_R2": 0.9}),
             Node(3, 2, {"connectivity_R2": float("nan")}), Node(4, None, {"connectivity_R2": 0.2})]
    # visits: 1 -> 3 (itself, 2, 3), 2 -> 2, 3 -> 1, 4 -> 1; N = 4; c = 1
    got = {s.node.id: (s.ucb, s.visits) for s in ucb_scores(nodes, c=1.0)}
    assert got[1] == (pytest.approx(0.4 + 2 / 4), 3)
    assert got[2] == (pytest.approx(0.9 + 2 / 3), 2)
    assert got[3] == (pytest.approx(0.0 + 2 / 2), 1)     # nan reward counts as 0
    assert got[4] == (pytest.approx(0.2 + 2 / 2), 1)
    assert [s.node.id for s in ucb_scores(nodes, c=1.0)] == [2, 4, 3, 1]
    ucb1 = {s.node.id: s.ucb for s in ucb_scores(nodes, c=1.0, formula="ucb1")}
    assert ucb1[1] == pytest.approx(0.4 + math.sqrt(math.log(4) / 3))
    # a block keeps its own nodes; node 3's parent (2) is outside -> no visits propagate
    block = {s.node.id: s.visits for s in ucb_scores(nodes, c=1.0, block=(3, 4))}
    assert block == {3: 1, 4: 1}


def test_entry_round_trip():
    node = Node(7, 3, {"connectivity_R2": 0.912, "test_pearson": 0.5, "effective_rank_99": 84,
                       "spectral_radius_true": 2.0}, "training.lr_W: 0.001 -> 0.002", strategy="exploit",
                config={"training.lr_W": 0.002})
    text = format_entry(node, next_parent=7)
    assert text.startswith("## Iter 7: converged\nNode: id=7, parent=3\n")
    assert "Activity: eff_rank=84, spectral_radius=2.000" in text
    back = parse_log(text)[0]
    assert back.id == 7 and back.parent == 3 and back.metrics["connectivity_R2"] == pytest.approx(0.912)
    assert back.mutation == node.mutation


def _fake_run(cfg, run_dir, data_dir=None, progress=True, header=None):
    """Reward peaks at lr_W = 1e-3; records what it was asked to run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    r = 1.0 - abs(math.log10(cfg.training.lr_W) + 3.0) / 3
    (run_dir / "seen.json").write_text(json.dumps({"lr_W": cfg.training.lr_W, "seed": cfg.training.seed,
                                                   "sim_seed": cfg.simulation.seed, "data_dir": str(data_dir)}))
    return {"connectivity_R2": r + 0.001 * cfg.training.seed, "effective_rank_99": 5, "spectral_radius_true": 1.0}


def test_explore_runs_resumes_and_checks_robustness(tmp_path):
    base = from_dict({"training": {"lr_W": 1e-2}})
    space = {"training.lr_W": [1e-4, 1e-3, 1e-2], "training.coeff_W_L1": {"lo": 1e-6, "hi": 1e-4, "log": True}}
    settings = ExploreSettings("t", n_iterations=4, n_parallel=2, n_iter_block=4, robustness_seeds=0)
    nodes = explore(base, tmp_path, SweepProposer(space, "ordered"), settings, run_fn=_fake_run, progress=False)
    assert [n.id for n in nodes] == [1, 2, 3, 4]
    assert nodes[0].parent is None and nodes[1].parent is None       # block start: root
    assert nodes[2].parent is not None                               # then the best UCB nodes
    seen = json.loads((tmp_path / "iter_002" / "seen.json").read_text())
    assert seen["lr_W"] == 1e-3 and seen["data_dir"] == str(tmp_path / "data")   # ordered sweep, shared data
    scores = (tmp_path / "t_ucb_scores.txt").read_text().splitlines()
    assert scores[0].startswith("=== UCB Scores (block 0, iters 1-4, N=4")
    assert scores[1].startswith("Node ")
    # resume: four more iterations in a new block, then robustness of the best node
    settings = ExploreSettings("t", n_iterations=8, n_parallel=2, n_iter_block=4, robustness_seeds=3)
    nodes = explore(base, tmp_path, SweepProposer(space, "random"), settings, run_fn=_fake_run, progress=False)
    assert [n.id for n in nodes] == list(range(1, 9))
    assert nodes[4].parent is None                                   # block 2 starts from root
    stats = json.loads((tmp_path / "robustness.json").read_text())
    assert stats["seeds"] == [1, 2, 3] and stats["std"] > 0
    best = max(nodes, key=lambda n: n.metrics["connectivity_R2"])
    assert stats["node"] == best.id
    assert "Mode/Strategy: robustness-test" in (tmp_path / "t_analysis.md").read_text()
    journal = nodes_of(read_events(tmp_path / "t_tree.jsonl"))
    assert [(n.id, n.parent, n.config, n.metrics) for n in journal] == [(n.id, n.parent, n.config, n.metrics) for n in nodes]
    # the text view is rendered from the journal and reads back as the same tree
    view = parse_log((tmp_path / "t_analysis.md").read_text())
    assert [(n.id, n.parent, n.status) for n in view] == [(n.id, n.parent, n.status) for n in journal]
    assert [n.metrics["connectivity_R2"] for n in view] == pytest.approx([n.metrics["connectivity_R2"] for n in journal], abs=5e-5)
    robust = [e for e in read_events(tmp_path / "t_tree.jsonl") if e["event"] == "robustness"]
    assert len(robust) == 1 and robust[0]["node"] == best.id


def test_regenerate_data_forces_seeds(tmp_path):
    settings = ExploreSettings("r", n_iterations=2, n_parallel=2, regenerate_data=True)
    explore(from_dict({}), tmp_path, SweepProposer({"training.lr_W": [1e-3]}), settings, run_fn=_fake_run,
            progress=False)
    seen = json.loads((tmp_path / "iter_002" / "seen.json").read_text())
    assert seen["sim_seed"] == 2001 and seen["seed"] == 2501 and seen["data_dir"] == "None"


def test_file_proposer_protocol(tmp_path):
    proposals = tmp_path / "next.yaml"
    settings = ExploreSettings("f", n_iterations=3, n_parallel=2)
    with pytest.raises(NeedProposals, match="0 proposal"):
        explore(from_dict({}), tmp_path, FileProposer(proposals), settings, run_fn=_fake_run, progress=False)
    proposals.write_text(yaml.safe_dump([{"parent": "root", "changes": {"training.lr_W": 1e-3}, "note": "a"},
                                         {"parent": "root", "changes": {"training.lr_W": 2e-3}},
                                         {"parent": 1, "changes": {"training.lr": 1e-4}}]))
    explore(from_dict({}), tmp_path, FileProposer(proposals), settings, run_fn=_fake_run, progress=False)
    with pytest.raises(NeedProposals, match="2 needed"):   # resumes at iteration 4: the file is empty
        explore(from_dict({}), tmp_path, FileProposer(proposals), ExploreSettings("f", n_iterations=5, n_parallel=2),
                run_fn=_fake_run, progress=False)
    nodes = nodes_of(read_events(tmp_path / "f_tree.jsonl"))
    assert [n.id for n in nodes] == [1, 2, 3]
    assert nodes[2].parent == 1
    cfg3 = json.loads((tmp_path / "configs" / "iter_003.json").read_text())["changes"]
    assert cfg3 == {"training.lr_W": 1e-3, "training.lr": 1e-4}         # inherits the parent's changes
    assert len(yaml.safe_load((tmp_path / "next.yaml.done").read_text())) == 3
    proposals.write_text(yaml.safe_dump([{"parent": 99, "changes": {}}] * 2))
    with pytest.raises(ValueError, match="parent 99"):
        explore(from_dict({}), tmp_path, FileProposer(proposals), ExploreSettings("f", n_iterations=5, n_parallel=2),
                run_fn=_fake_run, progress=False)


def test_sweep_space_validation_and_cli_errors(tmp_path):
    with pytest.raises(ValueError, match="lo < hi"):
        SweepProposer({"training.lr": {"lo": 1e-3, "hi": 1e-4, "log": True}})
    with pytest.raises(ValueError, match="expected a list"):
        SweepProposer({"training.lr": 3})
    values = {SweepProposer({"training.lr": {"lo": 1e-5, "hi": 1e-3, "log": True}})._sample("training.lr", np.random.default_rng(k))
              for k in range(20)}
    assert all(1e-5 <= v <= 1e-3 for v in values) and len(values) > 10
    from experiments.explore import main
    assert main(["--proposer", "file", "--out", str(tmp_path)]) == 2
    assert main(["--space", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2


def test_simulation_mutations_need_regenerated_data(tmp_path):
    from fvjax.config import ConfigError

    with pytest.raises(ConfigError, match="regenerate"):
        explore(from_dict({}), tmp_path, SweepProposer({"simulation.noise_model_level": [0.1]}),
                ExploreSettings("s", n_iterations=1), run_fn=_fake_run, progress=False)


def test_slots_in_worker_processes_match_sequential(tmp_path):
    """jobs = 2 runs a batch's two slots in pinned processes; the log equals the sequential one."""
    space = {"training.lr_W": [1e-4, 1e-3, 1e-2]}
    logs = {}
    for jobs in (1, 2):
        settings = ExploreSettings("p", n_iterations=4, n_parallel=2, jobs=jobs)
        explore(from_dict({}), tmp_path / str(jobs), SweepProposer(space, "ordered"), settings,
                run_fn=_fake_run, progress=False)
        logs[jobs] = [(n.id, n.parent, n.metrics["connectivity_R2"])
                      for n in nodes_of(read_events(tmp_path / str(jobs) / "p_tree.jsonl"))]
    assert logs[1] == logs[2] and len(logs[2]) == 4


def _diverging_run(cfg, run_dir, data_dir=None, progress=True, header=None):
    if cfg.training.lr_W > 5e-3:
        raise FloatingPointError("training diverged")
    return _fake_run(cfg, run_dir, data_dir, progress, header)


def test_failed_runs_are_logged_not_fatal(tmp_path):
    nodes = explore(from_dict({}), tmp_path, SweepProposer({"training.lr_W": [1e-2, 1e-3]}, "ordered"),
                    ExploreSettings("d", n_iterations=2, n_parallel=2), run_fn=_diverging_run, progress=False)
    assert nodes[0].status == "failed" and math.isnan(nodes[0].metrics["connectivity_R2"])
    assert "run failed: FloatingPointError: training diverged" in (tmp_path / "d_analysis.md").read_text()
    failed = read_events(tmp_path / "d_tree.jsonl")[0]
    assert failed["status"] == "failed" and failed["metrics"] == {"connectivity_R2": None}
    assert nodes[1].metrics["connectivity_R2"] > 0.9


def _strict(line: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")
    return json.loads(line, parse_constant=refuse)


def test_journal_round_trip(tmp_path):
    path = tmp_path / "j.jsonl"
    node = Node(3, 1, {"connectivity_R2": np.float32(0.75), "tau_R2": float("nan"), "effective_rank_99": np.int64(84),
                       "per_seed": np.array([0.5, np.inf])}, "training.lr: 1e-3 -> 2e-3", strategy="explore",
                config={"training.lr": 2e-3, "training.note": "é"})
    append_event(path, node_event(node, rule="UCB rank 1", observation="ok"))
    append_event(path, node_event(Node(4, None, {"connectivity_R2": 0.95}), rule="root"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(_strict(x)["event"] == "node" for x in lines)   # strict JSON, one line each
    back = nodes_of(read_events(path))
    assert [(n.id, n.parent, n.strategy, n.mutation, n.config) for n in back] == [
        (3, 1, "explore", node.mutation, node.config), (4, None, "", "", {})]
    m = back[0].metrics
    assert m["connectivity_R2"] == pytest.approx(0.75) and m["effective_rank_99"] == 84
    assert math.isnan(m["tau_R2"]) and m["per_seed"] == [0.5, None]     # non-finite -> null -> NaN (scalars)
    assert [n.status for n in back] == ["partial", "converged"]


def test_rendered_view_is_the_seeds_form(tmp_path):
    nodes = [Node(1, None, {"connectivity_R2": 0.5}, "a: 1 -> 2", config={"a": 2}),
             Node(2, 1, {"connectivity_R2": float("nan")}, "b: 1 -> 3", status="failed", config={"a": 2, "b": 3})]
    events = [node_event(n, rule=f"rule {n.id}", observation=f"obs {n.id}") for n in nodes]
    events.append({"event": "robustness", "reward_key": "connectivity_R2", "node": 1, "mean": 0.5, "std": 0.01,
                   "cv_percent": 2.0, "min": 0.49, "max": 0.51})
    text = render_log(events)
    assert text == (format_entry(nodes[0], rule="rule 1", observation="obs 1")
                    + format_entry(nodes[1], rule="rule 2", observation="obs 2")
                    + "## Robustness of node 1: partial\nMode/Strategy: robustness-test\n"
                      "Seed stats: mean_connectivity_R2=0.5000, std=0.0100, CV=2.00%, min=0.4900, max=0.5100\n\n")
    assert "## Iter 2: failed\nNode: id=2, parent=1\n" in text and "Observation: obs 2\n" in text


def test_incomplete_last_line_is_dropped_and_bad_lines_named(tmp_path, capsys):
    path = tmp_path / "j.jsonl"
    append_event(path, node_event(Node(1, None, {"connectivity_R2": 0.5})))
    with open(path, "a") as f:
        f.write('{"event": "node", "id": 2, "par')          # a write cut by a crash
    assert [n.id for n in nodes_of(read_events(path))] == [1]
    assert path.read_text().count("\n") == 1 and not path.read_text().endswith("\n")   # reading alone changes nothing
    read_events(path, repair=True)
    assert path.read_text().endswith("\n") and "incomplete last line" in capsys.readouterr().err
    append_event(path, node_event(Node(2, 1, {"connectivity_R2": 0.6})))
    assert [n.id for n in nodes_of(read_events(path))] == [1, 2]
    path.write_text(path.read_text().replace('"id": 2', '"id": 2,,'))
    with pytest.raises(JournalError, match=r"j.jsonl, line 2: not JSON"):
        read_events(path)


def test_resume_of_a_text_log_folder(tmp_path):
    """A folder written before the journal: its log is imported once, kept verbatim in the view."""
    old = [Node(1, None, {"connectivity_R2": 0.4}, "training.lr_W: 0.01 -> 0.001"),
           Node(2, 1, {"connectivity_R2": 0.7}, "training.lr_W: 0.001 -> 0.002")]
    legacy = "".join(format_entry(n, rule="old rule", observation="old note") for n in old)
    (tmp_path / "configs").mkdir()
    (tmp_path / "t_analysis.md").write_text(legacy)
    for n, lr in ((1, 1e-3), (2, 2e-3)):
        (tmp_path / "configs" / f"iter_{n:03d}.json").write_text(json.dumps({"parent": None, "changes": {"training.lr_W": lr}}))
    settings = ExploreSettings("t", n_iterations=4, n_parallel=2, n_iter_block=12)
    nodes = explore(from_dict({}), tmp_path, SweepProposer({"training.lr_W": [1e-4]}, "ordered"), settings,
                    run_fn=_fake_run, progress=False)
    assert [n.id for n in nodes] == [1, 2, 3, 4] and nodes[1].parent == 1
    assert nodes[1].config == {"training.lr_W": 2e-3}               # from configs/iter_002.json
    events = read_events(tmp_path / "t_tree.jsonl")
    assert [e["event"] for e in events] == ["legacy_log", "node", "node", "node", "node"]
    assert [e.get("imported", False) for e in events[1:]] == [True, True, False, False]
    view = (tmp_path / "t_analysis.md").read_text()
    assert view.startswith(legacy) and view.count("Observation: old note") == 2 and "## Iter 4:" in view
    assert len(parse_log(view)) == 4
    nodes = explore(from_dict({}), tmp_path, SweepProposer({"training.lr_W": [1e-4]}, "ordered"), settings,
                    run_fn=_fake_run, progress=False)            # finished: no new node, no second import
    assert len(nodes) == 4 and len(read_events(tmp_path / "t_tree.jsonl")) == 5
