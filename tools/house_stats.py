"""How the house reads: modules (lines, purpose), who imports whom, notebook cell lengths, untested exports.

    python tools/house_stats.py [--json OUT.json]

Prints four markdown tables:
- every module of the package with its line count and the first line of its docstring (its purpose);
- the import graph inside the package (module -> the mtlmad modules it imports);
- per notebook: code cells, median code-cell length (lines, directives and blank lines not counted), exported cells,
  their median and longest length, and exported cells with nothing that
  shows or tests them right under them (the next code cell is exported too, or there is none, or it only calls
  `show_doc`);
- the totals.
"""
import argparse, ast, json, statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG, NBS = ROOT / 'mtlmad', ROOT / 'nbs'


def modules() -> list[dict]:
    "One row per generated module: name, lines, purpose (the first docstring line), the mtlmad modules it imports."
    rows = []
    for f in sorted(PKG.rglob('*.py')):
        if f.name == '_modidx.py': continue
        name = '.'.join(f.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__')
        tree = ast.parse(f.read_text())
        doc = (ast.get_docstring(tree) or '').strip().splitlines()
        pkg = name if f.name == '__init__.py' else name.rsplit('.', 1)[0]
        rows.append(dict(module=name, lines=len(f.read_text().splitlines()), purpose=doc[0] if doc else '',
                         imports=sorted(_imports(tree, name, pkg))))
    return rows


def _imports(tree, name, pkg) -> set:
    "The mtlmad modules a module imports (relative imports resolved against its package `pkg`)."
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split('.')[:len(pkg.split('.')) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else: mod = node.module or ''
            if mod.startswith('mtlmad'):
                names = [a.name for a in node.names]
                subs = [f'{mod}.{n}' for n in names if (PKG.parent / f'{mod}.{n}'.replace('.', '/')).with_suffix('.py').exists()]
                out.update(subs or [mod])
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith('mtlmad'))
    out.discard(name)
    return out


def notebooks() -> list[dict]:
    "One row per notebook: code cells, median code-cell length, exported cells, exported cells with no test/picture under them."
    rows = []
    for nb in sorted(NBS.rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb.parts: continue
        cells = [c for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
        src = [''.join(c['source']) for c in cells]
        lens = [len([l for l in s.splitlines() if l.strip() and not l.startswith('#|')]) for s in src]
        exported = [i for i, s in enumerate(src) if _is_export(s)]
        bare = [i for i in exported if i + 1 >= len(src) or _is_export(src[i + 1]) or _only_docs(src[i + 1])]
        med = lambda xs: statistics.median(xs) if xs else 0
        rows.append(dict(notebook=str(nb.relative_to(NBS)), code_cells=len(src), median_lines=med(lens),
                         median_exported_lines=med([lens[i] for i in exported]), longest_exported=max([lens[i] for i in exported], default=0),
                         exported=len(exported), exported_untested=len(bare)))
    return rows


def _is_export(s): return any(l.strip() in ('#| export', '#| exports', '#|export') for l in s.splitlines())
def _only_docs(s):
    body = [l for l in s.splitlines() if l.strip() and not l.startswith('#|')]
    return not body or all(l.startswith('show_doc(') for l in body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--json', help='also write the figures to this file')
    a = ap.parse_args()
    mods, nbs = modules(), notebooks()
    print('| module | lines | purpose |\n|---|---|---|')
    for m in mods: print(f"| `{m['module']}` | {m['lines']} | {m['purpose']} |")
    print('\n| module | imports (inside mtlmad) |\n|---|---|')
    for m in mods: print(f"| `{m['module']}` | {', '.join(i.removeprefix('mtlmad.') for i in m['imports']) or '-'} |")
    print('\n| notebook | code cells | median code-cell lines | exported cells | median / longest exported cell | exported, nothing under them |\n|---|---|---|---|---|---|')
    for n in nbs: print(f"| {n['notebook']} | {n['code_cells']} | {n['median_lines']:g} | {n['exported']} | {n['median_exported_lines']:g} / {n['longest_exported']} | {n['exported_untested']} |")
    allc = sum(n['exported'] for n in nbs); bare = sum(n['exported_untested'] for n in nbs)
    print(f"\nmodules: {len(mods)}, lines: {sum(m['lines'] for m in mods)}; exported cells: {allc}, with nothing under them: {bare}")
    if a.json: Path(a.json).write_text(json.dumps(dict(modules=mods, notebooks=nbs), indent=1))


if __name__ == '__main__': main()
