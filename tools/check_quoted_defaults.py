"""Fail when the prose quotes a default of `MTLConfig` that the code no longer has.

    python tools/check_quoted_defaults.py [--list]

Reads the markdown cells of nbs/*.ipynb and nbs/tutorials/*.ipynb, and README.md, finds the few ways the defaults
are quoted there and compares each quote with `MTLConfig()` and `mtlmad.core.ALL_TASKS`:

- the figures inside "defaults (...)", "the default schedule (...)" or "the default settings (...)": "N steps" (the
  schedule on the demo's 84 training slices; it grows with the data),
  "SxS" or "S px" (image size), "width N";
- the phrases of SENTENCES: "N default tasks", "N proxy tasks" (the tasks a run trains), "every task but X",
  "the default N experts", "top-N routing", "MTLConfig(): S px";
- the task table (header `| proxy task | ... | default |`): one row per task mtlmad ships, "on" for the default ones.

Exits 1 naming every quote that differs (`--list` prints every quote checked). A new way of quoting a default belongs
in FIGURES or SENTENCES, with a case in tests/test_quoted_defaults.py.
"""
import argparse, json, re, sys
from itertools import takewhile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mtlmad.core import ALL_TASKS, MTLConfig  # noqa: E402

WORDS = {w: i for i, w in enumerate('zero one two three four five six seven eight nine ten eleven twelve'.split())}
N = r'(\d[\d,]*|' + '|'.join(WORDS) + ')'


class Quote(NamedTuple):
    "A default as the prose quotes it, and as the code has it."
    where: str
    what: str
    quoted: object
    expected: object

    @property
    def ok(self) -> bool: return self.quoted == self.expected


def number(s: str) -> int:
    "'300', '1,000' or 'five' as a number."
    s = s.lower().replace(',', '')
    return int(s) if s.isdigit() else WORDS[s]


def _size(m) -> object:
    "The image size an 'SxS' or 'S px' quotes ('SxT' when the sides differ)."
    a, b = m.group(1), m.group(2) or m.group(1)
    return int(a) if a == b else f'{a}x{b}'


DEMO_IMAGES = 84   # the demo's training slices: a quoted default schedule is the demo's (the schedule grows with the data)
IN_DEFAULTS = re.compile(r'\bdefaults?(?: schedule| settings)? \(([^()]*)\)', re.I)
FIGURES = (   # what a figure inside IN_DEFAULTS quotes: name, pattern, the quoted value, the value in the config
    ('steps', r'\b(\d[\d,]*) (?:optimiser )?steps\b', lambda m: number(m.group(1)), lambda c: c.total_steps(DEMO_IMAGES)),
    ('image size', r'\b(\d+)(?: ?x ?(\d+)| ?px)\b', _size, lambda c: c.image_size),
    ('width', r'\bwidth[ =]*(\d+)', lambda m: int(m.group(1)), lambda c: c.width),
)
SENTENCES = (   # phrases that quote a default wherever they stand
    ('default task count', rf'\b{N} default (?:proxy )?tasks\b', lambda m: number(m.group(1)), lambda c: len(c.tasks)),
    ('default task count', rf'\b{N} proxy tasks\b', lambda m: number(m.group(1)), lambda c: len(c.tasks)),
    ('tasks off by default', r'\bevery task but\s+`?(\w+)`?', lambda m: m.group(1),
     lambda c: ', '.join(t for t in ALL_TASKS if t not in c.tasks)),
    ('experts per block', rf'\bdefault {N} experts\b', lambda m: number(m.group(1)), lambda c: c.n_experts),
    ('top-k routing', r'\btop-(\d+) routing\b', lambda m: int(m.group(1)), lambda c: c.top_k),
    ('image size', r'MTLConfig\(\):? (\d+) ?px\b', lambda m: int(m.group(1)), lambda c: c.image_size),
)


def figure_quotes(text: str, cfg: MTLConfig, where: str = '') -> list:
    "The figures quoted inside 'defaults (...)' and the like."
    out = []
    for inside in IN_DEFAULTS.finditer(text):
        for what, pat, quoted, expected in FIGURES:
            out += [Quote(where, what, quoted(m), expected(cfg)) for m in re.finditer(pat, inside.group(1))]
    return out


def sentence_quotes(text: str, cfg: MTLConfig, where: str = '') -> list:
    "The defaults quoted by the phrases of SENTENCES."
    return [Quote(where, what, quoted(m), expected(cfg))
            for what, pat, quoted, expected in SENTENCES for m in re.finditer(pat, text, re.I)]


def _cells(line: str) -> list:
    return [c.strip().strip('`').strip() for c in line.strip().strip('|').split('|')]


def table_quotes(text: str, cfg: MTLConfig, where: str = '') -> list:
    "The task table (`| proxy task | ... | default |`): its rows are the tasks mtlmad ships, 'on' the default ones."
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        head = _cells(line) if line.lstrip().startswith('|') else []
        if not head or head[0].lower() != 'proxy task' or head[-1].lower() != 'default': continue
        rows = [_cells(l) for l in takewhile(lambda l: l.lstrip().startswith('|'), lines[i + 2:])]
        out.append(Quote(where, 'task table: tasks', sorted(r[0] for r in rows), sorted(ALL_TASKS)))
        on = sorted(r[0] for r in rows if r[-1].lower().startswith('on'))
        out.append(Quote(where, 'task table: on by default', on, sorted(cfg.tasks)))
    return out


def quotes(text: str, where: str = '', cfg: MTLConfig | None = None) -> list:
    "Every quote of a default in `text` (markdown), each with the value the code has."
    cfg = cfg or MTLConfig()
    return figure_quotes(text, cfg, where) + sentence_quotes(text, cfg, where) + table_quotes(text, cfg, where)


def documents(root: Path = ROOT) -> list:
    "(where, markdown) for every markdown cell of the notebooks and the tutorials, and README.md."
    out = []
    for nb in sorted(root.glob('nbs/*.ipynb')) + sorted(root.glob('nbs/tutorials/*.ipynb')):
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        out += [(f'{nb.relative_to(root)} cell {i}', ''.join(c['source']))
                for i, c in enumerate(cells) if c['cell_type'] == 'markdown']
    return out + [('README.md', (root / 'README.md').read_text(encoding='utf-8'))]


def check(root: Path = ROOT) -> list:
    "Every quote of a default in the notebooks' prose and the README."
    return [q for where, text in documents(root) for q in quotes(text, where)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--list', action='store_true', help='print every quote checked, not only the ones that differ')
    a = ap.parse_args(argv)
    found = check()
    bad = [q for q in found if not q.ok]
    for q in (found if a.list else bad):
        flag = '' if q.ok else '   <- differs'
        print(f'{q.where}: {q.what}: quoted {q.quoted!r}, the code has {q.expected!r}{flag}')
    print(f'{len(found)} quotes of the defaults checked, {len(bad)} differ from MTLConfig()')
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main())
