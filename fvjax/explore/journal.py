"""The exploration's journal: JSON Lines, the source of truth; the text log is rendered from it.

One JSON object per line, appended with one write, then flush and fsync, so that a crash leaves
whole lines and at most an incomplete last one (dropped, with a message, when an exploration
resumes). Events (``"event"`` key):

* ``node``: ``id, parent (null = root), status, strategy, mutation, config (dotted key -> value,
  all changes from the base), metrics, rule, observation, time``;
* ``robustness``: the statistics of robustness.json;
* ``legacy_log``: ``file, text``: a text log of an exploration started before the journal existed,
  kept verbatim (its nodes follow as ``node`` events with ``"imported": true``).

Non-finite numbers are written as ``null`` (strict JSON) and metrics read back as NaN.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .tree import Node, classify, format_entry


class JournalError(ValueError):
    """A journal line that is not a JSON object."""


def plain(value):
    """``value`` as strict-JSON data: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def append_event(path: Path, event: dict) -> None:
    """Append ``event`` as one line: one write, flush, fsync."""
    line = json.dumps(plain(event), allow_nan=False, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_events(path: Path, repair: bool = False) -> list[dict]:
    """The events of a journal. An incomplete last line (a write cut by a crash) is skipped; with
    ``repair`` it is also cut from the file (with a message) so that the next append starts clean."""
    raw = Path(path).read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        if repair:
            print(f"{path}: dropped an incomplete last line (a write cut short); that entry runs again",
                  file=sys.stderr)
            with open(path, "r+b") as f:
                f.truncate(end)
        raw = raw[:end]
    events = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as err:
            raise JournalError(f"{path}, line {number}: not JSON ({err}); fix or delete that line") from None
        if not isinstance(event, dict) or "event" not in event:
            raise JournalError(f"{path}, line {number}: expected an object with an \"event\" key")
        events.append(event)
    return events


def node_event(node: Node, rule: str = "", observation: str = "", reward_key: str = "connectivity_R2",
               **extra) -> dict:
    status = node.status or classify(_number(node.metrics.get(reward_key)))
    return {"event": "node", "id": node.id, "parent": node.parent, "status": status, "strategy": node.strategy,
            "mutation": node.mutation, "config": node.config, "metrics": node.metrics, "rule": rule,
            "observation": observation, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def _number(value) -> float:
    return float("nan") if value is None else value


def node_from_event(event: dict) -> Node:
    metrics = {k: _number(v) for k, v in event.get("metrics", {}).items()}
    return Node(event["id"], event.get("parent"), metrics, event.get("mutation", ""), event.get("status", ""),
                event.get("strategy", ""), dict(event.get("config", {})))


def nodes_of(events: list[dict]) -> list[Node]:
    """The tree's nodes in journal order (a node logged twice: the later entry wins)."""
    by_id = {e["id"]: node_from_event(e) for e in events if e["event"] == "node"}
    return list(by_id.values())


def _robustness_text(stats: dict, reward_key: str) -> str:
    s = {k: _number(stats.get(k)) for k in ("mean", "std", "cv_percent", "min", "max")}
    return (f"## Robustness of node {stats.get('node')}: {classify(s['mean'])}\n"
            f"Mode/Strategy: robustness-test\n"
            f"Seed stats: mean_{reward_key}={s['mean']:.4f}, std={s['std']:.4f}, "
            f"CV={s['cv_percent']:.2f}%, min={s['min']:.4f}, max={s['max']:.4f}\n\n")


def render_log(events: list[dict], reward_key: str = "connectivity_R2") -> str:
    """The text log (the seeds' form, see :mod:`fvjax.explore.tree`) of a journal."""
    parts = []
    for e in events:
        if e["event"] == "legacy_log":
            parts.append(e["text"])
        elif e["event"] == "node" and not e.get("imported"):
            parts.append(format_entry(node_from_event(e), rule=e.get("rule", ""),
                                      observation=e.get("observation", ""), reward_key=reward_key))
        elif e["event"] == "robustness":
            parts.append(_robustness_text(e, e.get("reward_key", reward_key)))
    return "".join(parts)
