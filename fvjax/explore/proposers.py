"""Who decides the next configurations: a built-in sweep, or a file an external agent edits.

A proposer is any object with ``propose(nodes, scores, n, rng) -> list[Proposal]`` (``scores`` best
first, empty at a block start), ``consumed(n)`` (the batch finished) and ``describe() -> str``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

from .tree import Node, Score


@dataclass(frozen=True)
class Proposal:
    parent: int | None                          # None = the base configuration
    changes: dict = field(default_factory=dict)  # dotted key -> new value
    strategy: str = "exploit"
    rule: str = ""
    note: str = ""


class Proposer(Protocol):
    def propose(self, nodes: list[Node], scores: list[Score], n: int, rng: np.random.Generator) -> list[Proposal]: ...

    def describe(self) -> str: ...

    def consumed(self, n: int) -> None: ...


def parse_space(space: dict) -> dict:
    """``{key: [v1, v2, ...]}`` (choices) or ``{key: {lo, hi, log}}`` (a range) -> validated dict."""
    out = {}
    for key, spec in space.items():
        if isinstance(spec, (list, tuple)) and spec:
            out[key] = list(spec)
        elif isinstance(spec, dict) and {"lo", "hi"} <= set(spec):
            lo, hi = float(spec["lo"]), float(spec["hi"])
            if not lo < hi or (spec.get("log") and lo <= 0):
                raise ValueError(f"search space {key}: need 0 < lo < hi for log ranges, lo < hi otherwise")
            out[key] = {"lo": lo, "hi": hi, "log": bool(spec.get("log", False))}
        else:
            raise ValueError(f"search space {key}: expected a list of values or {{lo, hi, log}}, got {spec!r}")
    return out


@dataclass
class SweepProposer:
    """Mutate one parameter of a parent per slot. Parents: the best UCB scores in turn (root when
    there are none). ``mode='random'``: a random key and value; ``'ordered'``: keys and their listed
    values in order (ranges give 5 points), cycling."""

    space: dict
    mode: str = "random"
    _cursor: int = 0

    def __post_init__(self):
        self.space = parse_space(self.space)
        if self.mode not in ("random", "ordered"):
            raise ValueError(f"mode {self.mode!r}: expected 'random' or 'ordered'")

    def describe(self) -> str:
        return f"sweep ({self.mode}) over {', '.join(self.space)}"

    def consumed(self, n: int) -> None:
        pass

    def _values(self, key):
        spec = self.space[key]
        if isinstance(spec, list):
            return spec
        grid = np.geomspace(spec["lo"], spec["hi"], 5) if spec["log"] else np.linspace(spec["lo"], spec["hi"], 5)
        return [float(f"{x:.4g}") for x in grid]

    def _sample(self, key, rng):
        spec = self.space[key]
        if isinstance(spec, list):
            return spec[rng.integers(len(spec))]
        if spec["log"]:
            return float(f"{math.exp(rng.uniform(math.log(spec['lo']), math.log(spec['hi']))):.3g}")
        return float(f"{rng.uniform(spec['lo'], spec['hi']):.3g}")

    def propose(self, nodes, scores, n, rng):
        keys = list(self.space)
        out = []
        for slot in range(n):
            parent = scores[slot % len(scores)].node if scores else None
            current = parent.config if parent else {}
            if self.mode == "ordered":
                pairs = [(k, v) for k in keys for v in self._values(k)]
                key, value = pairs[self._cursor % len(pairs)]
                self._cursor += 1
            else:
                key = keys[rng.integers(len(keys))]
                value = self._sample(key, rng)
                for _ in range(10):   # avoid proposing the parent's own value
                    if current.get(key) != value:
                        break
                    value = self._sample(key, rng)
            rule = f"UCB rank {slot % len(scores) + 1}" if scores else "block start: root"
            out.append(Proposal(parent.id if parent else None, {key: value}, "exploit" if scores else "explore", rule))
        return out


@dataclass
class FileProposer:
    """Proposals written by an external agent into a YAML file, consumed in order::

        - parent: 3            # node id, or root
          changes: {training.lr_W: 8.0e-4}
          strategy: exploit
          note: why

    Entries of a finished batch are moved to ``<file>.done`` (a crashed batch keeps them). With too few entries the run stops and says so;
    running it again resumes."""

    path: Path

    def describe(self) -> str:
        return f"proposals from {self.path}"

    def propose(self, nodes, scores, n, rng):
        path = Path(self.path)
        entries = yaml.safe_load(path.read_text()) if path.exists() else None
        entries = entries or []
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of proposals (see fvjax.explore.FileProposer)")
        if len(entries) < n:
            raise NeedProposals(f"{path} holds {len(entries)} proposal(s), {n} needed for the next batch; "
                                f"add entries (parent, changes, strategy, note) and run again to resume")
        known = {node.id for node in nodes}
        out = []
        for e in entries[:n]:
            parent = e.get("parent", "root")
            parent = None if parent in (None, "root", 0) else int(parent)
            if parent is not None and parent not in known:
                raise ValueError(f"{path}: parent {parent} is not a node of the tree (known: {sorted(known)})")
            if not isinstance(e.get("changes", {}), dict):
                raise ValueError(f"{path}: 'changes' must map dotted config keys to values, got {e.get('changes')!r}")
            out.append(Proposal(parent, dict(e.get("changes", {})), e.get("strategy", "exploit"),
                                "external proposer", e.get("note", "")))
        return out

    def consumed(self, n: int) -> None:
        """Called once a batch has finished: move its n entries to ``<file>.done``."""
        path = Path(self.path)
        entries = yaml.safe_load(path.read_text()) or []
        with open(path.with_name(path.name + ".done"), "a") as f:
            yaml.safe_dump(entries[:n], f, sort_keys=False)
        path.write_text(yaml.safe_dump(entries[n:], sort_keys=False) if entries[n:] else "[]\n")


class NeedProposals(RuntimeError):
    """The file proposer has too few entries for the next batch."""
