"""Package structure: no import cycles among fvjax's modules (imports run at import time), and
``import fvjax`` stays light (entry points load lazily)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fvjax"


def module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> fvjax modules it imports at module level (``from .x import y`` counts x.y when that
    is a module, else x)."""
    mods = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: set() for m in mods}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = module_graph()
    assert len(graph) > 30 and "fvjax.groundtruth.prior" in graph["fvjax.groundtruth"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_import_fvjax_is_light():
    code = "import sys, fvjax; print(sorted(m for m in sys.modules if m.startswith(('fvjax', 'jax', 'matplotlib'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fvjax']"
    code = "import fvjax; print(fvjax.load_run.__module__, fvjax.build_connectome.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["fvjax.runs", "fvjax.connectome.build"]


# network kinds and synthetic models are chosen once, by fvjax.networks.resolve (the lookup) and the
# config's validation; every other module calls the resolved Network's functions instead of comparing names
NAME_CHECK_EXEMPT = {"networks/__init__.py", "config.py"}


def network_names() -> set[str]:
    from fvjax.config import SYNTHETIC_MODELS
    from fvjax.networks import KINDS

    return set(KINDS) | set(SYNTHETIC_MODELS)


def name_comparisons(source: str, names: set[str]) -> list[int]:
    """Lines of ``source`` that compare against one of ``names``: ``x == "tanh"``, ``"flyvis" != x``,
    ``x is "PDE_N2"``, ``x in ("synthetic", ...)``, ``"tanh" in x``, or a ``case "flyvis":``."""
    def named(node):
        return isinstance(node, ast.Constant) and node.value in names

    def holds_name(node):
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(named(e) for e in node.elts)

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, sides, sides[1:]):
                if isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)) and (named(left) or named(right)):
                    lines.append(node.lineno)
                elif isinstance(op, (ast.In, ast.NotIn)) and (named(left) or holds_name(right)):
                    lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and named(node.value):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_name_scan_finds_planted_comparisons():
    names = {"flyvis", "tanh", "PDE_N2", "synthetic"}
    planted = ('if cfg.simulation.network == "flyvis":\n    pass\n'
               'ok = "PDE_N2" != sim.synthetic_model\n'
               'x = 1 if kind in ("tanh", "other") else 2\n'
               'match name:\n    case "synthetic":\n        pass\n'
               'fine = {"flyvis": 1}["flyvis"] and sim.signal_model_name == "flyvis_A"\n')
    assert name_comparisons(planted, names) == [1, 3, 4, 6]


def test_no_network_name_comparisons_outside_the_lookup():
    names = network_names()
    assert {"flyvis", "synthetic", "tanh", "PDE_N2"} <= names
    found = {str(path.relative_to(PACKAGE)): lines for path in sorted(PACKAGE.rglob("*.py"))
             if str(path.relative_to(PACKAGE)) not in NAME_CHECK_EXEMPT
             and (lines := name_comparisons(path.read_text(), names))}
    assert not found, (f"network/synthetic-model names compared in {found}; resolve the kind once with "
                       f"fvjax.networks.resolve and call its functions (or add a field to networks.Network)")


def option_names() -> dict[str, set[str]]:
    """Option values that select behaviour, per config key, besides the network kinds."""
    from fvjax.config import CONNECTIVITY_TYPES, VISUAL_INPUTS
    from fvjax.model import VARIANTS

    return {"simulation.visual_input_type": set(VISUAL_INPUTS), "graph_model.signal_model_name": set(VARIANTS),
            "simulation.connectivity_type": set(CONNECTIVITY_TYPES)}


def test_option_tables_cover_their_choices():
    """Every value the config accepts has its entry in the table that dispatches on it."""
    from fvjax.config import CONNECTIVITY_TYPES, VISUAL_INPUTS
    from fvjax.networks.synthetic import ENTRY_DRAWS
    from fvjax.stimulus.sources import CHOOSERS, RECORDED, SEQUENCES

    assert set(ENTRY_DRAWS) == set(CONNECTIVITY_TYPES)
    assert set(SEQUENCES) | set(CHOOSERS) | set(RECORDED) == set(VISUAL_INPUTS)
    assert not set(SEQUENCES) & set(CHOOSERS) and not (set(SEQUENCES) | set(CHOOSERS)) & set(RECORDED)


def test_no_option_value_comparisons_outside_config():
    """Stimulus kinds, GNN variants and W distributions are looked up in tables (fvjax.stimulus.sources,
    fvjax.model.VARIANTS, fvjax.networks.synthetic.ENTRY_DRAWS), never compared by name; config.py
    validates them at the edge."""
    names = set().union(*option_names().values())
    assert {"natural", "DAVIS", "mixed", "dense", "flyvis_B", "Lorentz"} <= names
    found = {str(path.relative_to(PACKAGE)): lines for path in sorted(PACKAGE.rglob("*.py"))
             if str(path.relative_to(PACKAGE)) != "config.py" and (lines := name_comparisons(path.read_text(), names))}
    assert not found, f"option values compared by name in {found}; add a table entry (or a field) instead"


def test_random_streams_are_named_not_seed_arithmetic():
    """Run 7's training stream differs from run 8's initialisation stream (they were the same key when
    training used PRNGKey(seed + 1)); the frames stream too; nothing in training derives a key or a
    numpy generator by adding to a seed."""
    import re

    import jax
    import numpy as np

    from fvjax.rng import STREAMS, stream_key, stream_rng

    keys = {(seed, name): np.asarray(jax.random.key_data(stream_key(seed, name))).tobytes()
            for seed in (7, 8) for name in STREAMS}
    assert len(set(keys.values())) == len(keys)
    assert not np.array_equal(stream_rng(7, "frames", 1).integers(0, 10**9, 8),
                              stream_rng(8, "frames", 0).integers(0, 10**9, 8))
    try:
        stream_key(0, "trainig")
    except ValueError as err:
        assert "unknown random stream 'trainig'" in str(err)
    else:
        raise AssertionError("a misspelt stream name was accepted")
    pattern = re.compile(r"(PRNGKey|RandomState|default_rng)\([^)]*\bseed\s*\+")
    offenders = [str(p) for p in (PACKAGE / "train").rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders


def test_evaluate_reexports_every_public_name_of_report():
    """``fvjax.evaluate`` lists the report's names by hand (so that importing it stays light); a name
    added to report.py and forgotten there fails here, and every listed name resolves."""
    import fvjax.evaluate as E

    tree = ast.parse((PACKAGE / "evaluate" / "report.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    public = {name for name in defined if not name.startswith("_")}
    assert public == set(E._REPORT)
    for name in E._REPORT:
        assert getattr(E, name) is not None
