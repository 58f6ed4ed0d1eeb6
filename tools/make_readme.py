"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells fenced, hidden cells left out).

`--check` rewrites nothing and exits 1 when README.md differs from what the notebook gives."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = '<!-- README.md is generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook. -->\n\n'


def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def _outputs(cell):
    "The text a code cell printed, if it was saved with outputs."
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': out.append(''.join(o['text']))
        elif 'text/plain' in o.get('data', {}): out.append(''.join(o['data']['text/plain']))
    return ''.join(out).rstrip()


def render(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    "The README text for the notebook at `nb_path`."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = _src(cell)
        lines = src.splitlines()
        if any(l.strip().replace(' ', '') in ('#|hide', '#|exporti') for l in lines): continue
        if cell['cell_type'] == 'markdown': parts.append(src.strip())
        elif cell['cell_type'] == 'code':
            code = '\n'.join(l for l in lines if not l.lstrip().startswith('#|')).strip()
            if code: parts.append(f'```python\n{code}\n```')
            out = _outputs(cell)
            if out: parts.append(f'```\n{out}\n```')
    return HEADER + '\n\n'.join(p for p in parts if p) + '\n'


if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        same = readme.exists() and readme.read_text(encoding='utf-8') == text
        if not same: print('README.md is out of date with nbs/index.ipynb: run `make export`.')
        sys.exit(0 if same else 1)
    readme.write_text(text, encoding='utf-8')
