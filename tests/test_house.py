"""The shape of the house: mtlmad's import graph, drawn statically (ast, imports inside functions included), has no
circle; the data layer (`mtlmad.data`) sits at the bottom and imports only `mtlmad.core`, `mtlmad.ops` and itself; no
function hides an import of an mtlmad module (optional dependencies such as nibabel go through one helper each)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / 'mtlmad'
DATA_MAY_IMPORT = ('mtlmad.core', 'mtlmad.ops', 'mtlmad.data')


def module_name(f: Path) -> str:
    return '.'.join(f.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__')


def _target(node, name: str, is_pkg: bool) -> list[str]:
    "The mtlmad modules an import node names (relative imports resolved; `from pkg import mod` gives pkg.mod)."
    if isinstance(node, ast.Import): return [a.name for a in node.names if a.name.split('.')[0] == 'mtlmad']
    if node.level:
        base = name.split('.') if is_pkg else name.split('.')[:-1]
        base = base[:len(base) - node.level + 1]
        mod = '.'.join(base + ([node.module] if node.module else []))
    else: mod = node.module or ''
    if mod.split('.')[0] != 'mtlmad': return []
    subs = [f'{mod}.{a.name}' for a in node.names if (ROOT / f'{mod}.{a.name}'.replace('.', '/')).with_suffix('.py').exists()
            or (ROOT / f'{mod}.{a.name}'.replace('.', '/') / '__init__.py').exists()]
    return subs or [mod]


def import_graph() -> tuple[dict, list]:
    "{module: set of mtlmad modules it imports}, and every (module, line, target) import found inside a function."
    graph, hidden = {}, []
    for f in sorted(PKG.rglob('*.py')):
        if f.name == '_modidx.py': continue
        name, tree = module_name(f), ast.parse(f.read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)): deps.update(_target(node, name, f.name == '__init__.py'))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)): continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    hidden += [(name, node.lineno, t) for t in _target(node, name, f.name == '__init__.py')]
        deps.discard(name)
        graph[name] = {d for d in deps if d != 'mtlmad'}   # `import mtlmad` (for its version) adds no edge
    return graph, hidden


def circles(graph: dict) -> list[list[str]]:
    "Every strongly connected group of modules (Tarjan), as a sorted list; a circle is a group of more than one."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in graph: continue
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            grp = []
            while True:
                w = stack.pop(); on.discard(w); grp.append(w)
                if w == v: break
            if len(grp) > 1: out.append(sorted(grp))
    for v in sorted(graph):
        if v not in index: visit(v)
    return out


def upward_from_data(graph: dict) -> list[tuple[str, str]]:
    "Imports from the data layer of anything but core, ops and the data layer itself."
    return sorted((m, d) for m, deps in graph.items() if m == 'mtlmad.data' or m.startswith('mtlmad.data.') for d in deps
                  if not any(d == ok or d.startswith(ok + '.') for ok in DATA_MAY_IMPORT))


def test_graph_is_drawn():
    graph, _ = import_graph()
    assert 'mtlmad.data.images' in graph and 'mtlmad.core' in graph['mtlmad.data.images']
    assert 'mtlmad.data.folders' in graph['mtlmad.datasets']
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]   # the detector finds a circle


def test_no_circle():
    graph, _ = import_graph()
    assert circles(graph) == [], f'import circles in mtlmad: {circles(graph)}'


def test_data_layer_at_the_bottom():
    graph, _ = import_graph()
    assert upward_from_data(graph) == [], f'the data layer imports from above it: {upward_from_data(graph)}'


def test_no_import_hidden_in_a_function():
    _, hidden = import_graph()
    assert hidden == [], 'imports of mtlmad modules inside functions (move them to the top of the module): ' + \
        ', '.join(f'{m}:{line} -> {t}' for m, line, t in hidden)


if __name__ == '__main__':
    g, h = import_graph()
    print('circles:', circles(g)); print('upward from data:', upward_from_data(g)); print('hidden:', h)
