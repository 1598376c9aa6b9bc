"""Facts any reader can check from the imports: the layers the README draws, no cycles,
torch only where folding happens, short functions, one way to import the library."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

LIB = REPO / "scripts/foldatlas"
HEAVY = ("torch", "transformers", "esm")
#: Rule shims of the CPU stages: none of them may load torch.
CPU_SHIMS = (
    "read_fasta.py", "plan_bucket.py", "plan_chunks.py", "assemble_atlas.py", "check_bucket.py", "check_accounting.py", "atlas_report.py",
    "foldseek_createdb.py", "foldseek_cluster.py", "foldseek_search.py", "mmseqs_cluster.py",
)  # fmt: skip
MAX_FUNCTION_LINES = 60


def layers() -> dict[str, tuple[int, str]]:
    """module -> (layer, stage) from the README's layer table."""
    text = (REPO / "README.md").read_text()
    table = text.split("<!-- BEGIN LAYERS -->\n")[1].split("<!-- END LAYERS -->")[0]
    out = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        m = re.match(r"(\d)(?: stage (\w+)| \w+)", cells[0])
        assert m, row
        for module in re.findall(r"`(\w+)`", cells[1]):
            out[module] = (int(m.group(1)), m.group(2) or "")
    return out


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(foldatlas modules imported anywhere, heavy packages imported at module level)."""
    tree = ast.parse(path.read_text())
    internal: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            internal.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("foldatlas"):
            internal.add((node.module.split(".") + ["__init__"])[1])
    heavy = set()
    for node in tree.body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        heavy.update(n.split(".")[0] for n in names if n.split(".")[0] in HEAVY)
    return {"__init__" if m == "__version__" else m for m in internal}, heavy


GRAPH = {p.stem: imports(p) for p in LIB.glob("*.py")}


def test_every_module_is_in_the_readme_layer_table():
    assert sorted(layers()) == sorted(GRAPH)


def test_no_module_imports_a_higher_layer_or_another_stage():
    table = layers()
    wrong = []
    for module, (deps, _) in GRAPH.items():
        layer, stage = table[module]
        for dep in deps - {module}:
            dlayer, dstage = table[dep]
            if dlayer > layer or (dlayer == 2 and dstage != stage):
                wrong.append(f"{module} (layer {layer} {stage}) imports {dep} (layer {dlayer} {dstage})")
    assert wrong == []


def test_no_import_cycles():
    seen: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if seen.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [m]))
        if seen.get(m) == 2:
            return
        seen[m] = 1
        for d in sorted(GRAPH[m][0] - {m}):
            visit(d, path + [m])
        seen[m] = 2

    for m in sorted(GRAPH):
        visit(m, [])


def test_torch_is_imported_at_module_level_only_in_the_fold_stage():
    table = layers()
    offenders = {m: sorted(h) for m, (_, h) in GRAPH.items() if h and table[m][1] != "fold"}
    assert offenders == {}


@pytest.mark.parametrize("shim", CPU_SHIMS)
def test_cpu_stage_entry_modules_do_not_load_torch(shim):
    """Import every foldatlas module a CPU rule shim imports, in a fresh interpreter."""
    tree = ast.parse((REPO / "scripts" / shim).read_text())
    modules = sorted({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("foldatlas")})
    assert modules
    code = "import importlib, json, sys\n" f"for m in {modules!r}: importlib.import_module(m)\n" "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'transformers', 'esm'))))\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [], f"{shim} loads {json.loads(res.stdout)[:3]}"


def test_no_function_is_longer_than_60_lines():
    lengths = []
    for path in LIB.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths.append((node.end_lineno - node.lineno + 1, f"{path.name}:{node.lineno} {node.name}"))
    longest = sorted(lengths, reverse=True)[:10]
    assert [f for f in longest if f[0] > MAX_FUNCTION_LINES] == [], longest


def test_one_way_to_import_the_library():
    """Tests and benchmarks import the installed package; none edits sys.path."""
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("tests", "bench", "scripts")
        for p in (REPO / folder).rglob("*.py")
        if "sys.path.insert" in p.read_text() and p.name != "test_architecture.py"
    ]
    assert offenders == []
    import foldatlas

    assert Path(foldatlas.__file__).resolve() == (LIB / "__init__.py").resolve()


def test_shims_are_short():
    for shim in (REPO / "scripts").glob("*.py"):
        body = [ln for ln in shim.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith(("#", '"""'))]
        assert len(body) <= 25, shim.name
