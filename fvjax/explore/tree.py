"""The exploration tree: nodes, the text view of a node (the seeds' form), and UCB scores.

The journal (:mod:`fvjax.explore.journal`) is the record; ``format_entry`` renders its text view.
``parse_log`` reads text logs back only to import explorations from before the journal.

An iteration is a node; its parent is the node whose configuration it mutated (``root`` = the base
configuration). Entries look like (seed 003)::

    ## Iter 4: partial
    Node: id=4, parent=2
    Mode/Strategy: exploit
    Config: training.lr_W=0.0008, training.time_step=4
    Metrics: test_R2=0.41, test_pearson=0.73, connectivity_R2=0.62, cluster_accuracy=0.80, ...
    Activity: eff_rank=84, spectral_radius=2.000
    Mutation: training.lr_W: 0.001 -> 0.0008
    Parent rule: highest UCB
    Observation: ...
    Next: parent=4
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_ITER = re.compile(r"^##+\s*Iter\s+(\d+)\s*:\s*(.*)$")
_NODE = re.compile(r"^Node:\s*id=(\d+)\s*,\s*parent=(\w+)")
_NEXT = re.compile(r"^Next:\s*parent=(\w+)")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf"
_KEYVAL = re.compile(rf"(\w+)=({_NUMBER})(?=[,\s]|$)")


@dataclass
class Node:
    id: int
    parent: int | None                  # None = root
    metrics: dict = field(default_factory=dict)
    mutation: str = ""
    status: str = ""
    strategy: str = ""
    config: dict = field(default_factory=dict)   # dotted key -> value, the full changes from the base


def classify(value: float, converged: float = 0.9, failed: float = 0.1) -> str:
    """The seeds' classes for the reward: converged > 0.9 >= partial >= 0.1 > failed."""
    if not math.isfinite(value) or value < failed:
        return "failed"
    return "converged" if value > converged else "partial"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_entry(node: Node, *, next_parent: int | None = None, rule: str = "", observation: str = "",
                 reward_key: str = "connectivity_R2") -> str:
    m = node.metrics
    metric_keys = ("test_R2", "test_pearson", "connectivity_R2", "tau_R2", "V_rest_R2", "cluster_accuracy", "field_R2",
                   "final_loss", "training_time_min")
    lines = [f"## Iter {node.id}: {node.status or classify(m.get(reward_key, float('nan')))}",
             f"Node: id={node.id}, parent={'root' if node.parent is None else node.parent}",
             f"Mode/Strategy: {node.strategy or 'exploit'}",
             "Config: " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(node.config.items())),
             "Metrics: " + ", ".join(f"{k}={m[k]:.4f}" for k in metric_keys if isinstance(m.get(k), float)),
             f"Activity: eff_rank={m.get('effective_rank_99', 'nan')}, "
             f"spectral_radius={m.get('spectral_radius_true', float('nan')):.3f}",
             f"Mutation: {node.mutation or 'none'}",
             f"Parent rule: {rule or 'highest UCB'}",
             f"Observation: {observation or '-'}",
             f"Next: parent={'root' if next_parent is None else next_parent}"]
    return "\n".join(lines) + "\n\n"


def parse_log(text: str) -> list[Node]:
    """Nodes of a text log (rules of the reference's parser, with signed/exponent numbers); used to
    import explorations from before the journal and to read the reference's logs.

    ``Next: parent=P`` of entry n sets the parent of n + 1 when that entry has no Node line; a line
    with ``connectivity_R2=`` (any reward line) fills the metrics, the last such line winning."""
    nodes: list[Node] = []
    next_parent: dict[int, int | None] = {}
    cur: Node | None = None
    for line in text.splitlines():
        line = line.strip()
        if (m := _ITER.match(line)):
            cur = Node(int(m.group(1)), next_parent.get(int(m.group(1))), status=m.group(2).strip())
            nodes.append(cur)
        elif line.startswith("#"):     # any other heading ends the current entry
            cur = None
        elif cur is None:
            continue
        elif (m := _NODE.match(line)):
            cur.id, cur.parent = int(m.group(1)), _parent(m.group(2), int(m.group(1)))
        elif (m := _NEXT.match(line)):
            next_parent[cur.id + 1] = _parent(m.group(1), cur.id + 1)
        elif line.startswith("Mutation:"):
            cur.mutation = line.split(":", 1)[1].strip()
        elif line.startswith("Mode/Strategy:"):
            cur.strategy = line.split(":", 1)[1].strip()
        elif line.startswith("Metrics:") or "connectivity_R2=" in line:
            cur.metrics.update({k: float(v) for k, v in _KEYVAL.findall(line)})
    return nodes


def _parent(text: str, own: int) -> int | None:
    if text in ("root", "None", "0") or not text.isdigit() or int(text) == own:
        return None
    return int(text)


@dataclass(frozen=True)
class Score:
    node: Node
    ucb: float
    visits: int


def ucb_scores(nodes: list[Node], c: float = 1.414, reward_key: str = "connectivity_R2",
               block: tuple[int, int] | None = None, formula: str = "puct") -> list[Score]:
    """Scores, best first. visits(n) = 1 + descendants; N = nodes considered.

    ``puct`` (what the reference computes): R + c sqrt(N) / (1 + visits).
    ``ucb1`` (what its documentation describes): R + c sqrt(ln N / visits).
    ``block = (first, last)`` keeps those iterations only; parents outside become root."""
    if formula not in ("puct", "ucb1"):
        raise ValueError(f"formula {formula!r}: expected 'puct' or 'ucb1'")
    if block is not None:
        nodes = [n for n in nodes if block[0] <= n.id <= block[1]]
    by_id = {n.id: n for n in nodes}
    visits = {n.id: 1 for n in nodes}
    for n in nodes:
        seen, p = {n.id}, n.parent
        while p in by_id and p not in seen:
            visits[p] += 1
            seen.add(p)
            p = by_id[p].parent
    total = len(nodes)
    scores = []
    for n in nodes:
        r = n.metrics.get(reward_key, float("nan"))
        r = 0.0 if not math.isfinite(r) else r
        bonus = (c * math.sqrt(total) / (1 + visits[n.id]) if formula == "puct"
                 else c * math.sqrt(math.log(max(total, 1)) / visits[n.id]))
        scores.append(Score(n, r + bonus, visits[n.id]))
    return sorted(scores, key=lambda s: -s.ucb)


def format_scores(scores: list[Score], header: str, reward_key: str = "connectivity_R2") -> str:
    lines = [header]
    listed = {x.node.id for x in scores}
    for s in scores:
        n = s.node
        parent = n.parent if n.parent in listed else "root"
        extra = "".join(f", {k}={n.metrics[k]:.3f}" for k in ("tau_R2", "V_rest_R2", "test_pearson", "cluster_accuracy")
                        if k in n.metrics and k != reward_key)
        lines.append(f"Node {n.id}: UCB={s.ucb:.3f}, parent={parent}, visits={s.visits}, "
                     f"R2={n.metrics.get(reward_key, float('nan')):.3f}{extra}, Mutation={n.mutation}")
    return "\n".join(lines) + "\n"
