"""Run notebooks and save their outputs in place, so that a reader sees the figures without running anything.

    python tools/execute_notebooks.py                      # every notebook under nbs/
    python tools/execute_notebooks.py nbs/06_score.ipynb   # just these
    python tools/execute_notebooks.py --check-budget       # only check the sizes

Each notebook runs in a fresh python3 kernel of this environment (nbclient), in its own folder, with
OMP_NUM_THREADS=1. The cells nbdev_test would skip are skipped the same way: `#| eval: false`, a cell that calls
nbdev_export, and the flags of settings.ini's `tst_flags` except `slow` (always run) and `cuda` (run where torch sees a
GPU). Then the outputs are trimmed to what a reader needs and nothing about this machine: stderr (progress bars,
warnings) and live widgets go, a figure keeps only its PNG, the repository, temporary and home folders in printed
text become <repo>, <tmp> and ~. Last, `nbdev_clean` writes the file in its own form, so `make sync` stays green, and
the sizes are checked against the budget below. A notebook that fails is reported and left as it was."""
import argparse, configparser, functools, json, os, re, subprocess, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The size budget. Outputs are committed, so every re-run of a notebook adds its figures to the git history again:
# a few figures of ~50-100 kB each per notebook is the scale meant here.
MAX_NOTEBOOK_BYTES = 1_500_000  # one notebook with its outputs
MAX_TOTAL_BYTES = 8_000_000     # all the notebooks under nbs/ together
KEEP = ('image/png', 'text/plain', 'text/html', 'text/markdown')  # output types kept; the rest is dropped
WIDGET = 'application/vnd.jupyter.widget-view+json'


def notebooks(nbs_dir: Path) -> list:
    "Every notebook under `nbs_dir`, leaving out folders named .x or _x (checkpoints), as nbdev does."
    return [p for p in sorted(nbs_dir.rglob('*.ipynb'))
            if not any(part.startswith(('.', '_')) for part in p.relative_to(nbs_dir).parts)]


def find_root(nb: Path) -> Path:
    "The project folder holding `nb`: the nearest parent with a settings.ini (nbdev's config)."
    return next((p for p in nb.resolve().parents if (p / 'settings.ini').exists()), ROOT)


def directives(cell) -> dict:
    "The cell's leading nbdev directives: `#| eval: false` gives {'eval': 'false'}, `#| slow` gives {'slow': ''}."
    out = {}
    for line in cell.source.splitlines():
        if not line.strip(): continue
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*)', line)
        if not m: break
        out[m.group(1)] = m.group(2).strip()
    return out


@functools.lru_cache
def skip_flags(root: Path) -> set:
    "Flags whose cells are not run: settings.ini's tst_flags, less `slow`, less `cuda` where a GPU is present."
    cfg = configparser.ConfigParser()
    cfg.read(root / 'settings.ini')
    flags = set(cfg.get('DEFAULT', 'tst_flags', fallback='').split()) - {'slow'}
    if 'cuda' in flags:
        gpu = subprocess.run([sys.executable, '-c', 'import torch; print(torch.cuda.is_available())'],
                             capture_output=True, text=True).stdout.strip() == 'True'
        if gpu: flags.discard('cuda')
    return flags


def runs(cell, skip: set) -> bool:
    "Whether `cell` is executed (the same choice as nbdev_test)."
    d = directives(cell)
    return d.get('eval', '').lower() != 'false' and 'nbdev_export(' not in cell.source and not skip & d.keys()


class FlaggedClient(NotebookClient):
    "nbclient's runner, leaving out the cells nbdev flags say not to run (their old outputs are cleared)."
    def __init__(self, nb, skip: set, **kw):
        super().__init__(nb, **kw)
        self.skip = skip

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.cell_index = cell_index  # to name the cell that failed
        if cell.cell_type == 'code' and not runs(cell, self.skip):
            cell.outputs = []
            return cell
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


def machine_paths(root: Path) -> list:
    "(regex, placeholder) pairs for this machine's folders, most specific first; a match must end at a name boundary."
    tmp = re.escape(os.path.realpath(tempfile.gettempdir())) + r'/[^/\s\'"]+'  # the random folder under /tmp too
    pairs = [(re.escape(str(root)), '<repo>'), (tmp, '<tmp>'), (r'/tmp/[^/\s\'"]+', '<tmp>'),
             (re.escape(str(Path.home())), '~')]
    if not Path(sys.prefix).is_relative_to(root): pairs.insert(0, (re.escape(sys.prefix), '<venv>'))
    return [(re.compile(p + r'(?![\w.-])'), s) for p, s in pairs]


def _text(x): return ''.join(x) if isinstance(x, list) else x


def scrub(text: str, paths: list) -> tuple:
    "Text with this machine's folders replaced (and how many), progress lines rewritten with \\r as they ended."
    text = '\n'.join(line.rstrip('\r').rsplit('\r', 1)[-1] for line in text.split('\n'))
    n = 0
    for rx, sub in paths:
        text, k = rx.subn(sub, text)
        n += k
    return text, n


def trim_outputs(nb, paths: list, name: str) -> list:
    "Keep what a reader needs of each output (see KEEP), nothing machine-specific; returns notes on replaced paths."
    notes = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != 'code': continue
        kept, replaced = [], 0
        for o in cell.get('outputs', []):
            if o.output_type == 'stream':
                if o.name == 'stderr': continue  # progress bars, warnings: they differ from run to run
                o.text, n = scrub(_text(o.text), paths)
                replaced += n
                if o.text: kept.append(o)
                continue
            if o.output_type in ('display_data', 'execute_result'):
                data = o.data
                if WIDGET in data or 'image/png' in data:
                    # A live widget means nothing on a static page; a figure's text ('<Figure size ...>') neither.
                    data = {k: v for k, v in data.items() if k == 'image/png'}
                data = {k: v for k, v in data.items() if k in KEEP}
                if not data: continue
                for k in data:
                    if k.startswith('text/'):
                        data[k], n = scrub(_text(data[k]), paths)
                        replaced += n
                o.data = nbformat.from_dict(data)
                o.metadata = nbformat.from_dict({k: v for k, v in o.get('metadata', {}).items() if k in data})
            kept.append(o)
        if replaced: notes.append(f'{name}, cell {i}: printed {replaced} path(s) of this machine, now written as '
                                  f'<repo>, <tmp>, ~ or <venv>')
        cell.outputs = kept
    nb.metadata.pop('widgets', None)
    return notes


def execute(nb_path: str, timeout: int) -> tuple:
    "Run one notebook, trim its outputs, write it and nbdev_clean it; returns (path, seconds, notes, error or None)."
    path, t0 = Path(nb_path).resolve(), time.monotonic()
    root = find_root(path)
    name = os.path.relpath(path, root)
    os.environ['OMP_NUM_THREADS'] = '1'  # the kernel inherits this environment
    os.environ['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'  # figures as outputs, whatever is set here
    client = None
    try:
        nb = nbformat.read(path, as_version=4)
        client = FlaggedClient(nb, skip_flags(root), timeout=timeout, kernel_name='python3', record_timing=False,
                               store_widget_state=False, resources={'metadata': {'path': str(path.parent)}})
        client.execute()
    except Exception as e:  # a failing cell, a timeout, a dead kernel, a notebook that does not parse: keep the file
        msg = re.sub(r'\x1b\[[0-9;]*m', '', str(e))  # the traceback without its terminal colours
        where = f', cell {client.cell_index}' if hasattr(client, 'cell_index') else ''
        return str(path), time.monotonic() - t0, [], f'{name}{where}: {msg}'
    notes = trim_outputs(nb, machine_paths(root), name)
    nbformat.write(nb, path)
    subprocess.run([str(BIN / 'nbdev_clean'), '--fname', str(path)], cwd=root, check=True)
    return str(path), time.monotonic() - t0, notes, None


def biggest_outputs(path: Path, n: int = 3) -> str:
    "The `n` largest outputs of a notebook, to say where its bytes are."
    nb = nbformat.read(path, as_version=4)
    sizes = sorted(((len(json.dumps(o)), i) for i, c in enumerate(nb.cells) for o in c.get('outputs', [])),
                   reverse=True)[:n]
    return ', '.join(f'cell {i}: {s / 1e3:.0f} kB' for s, i in sizes)


def check_budget(nbs_dir: Path) -> list:
    "Messages for every notebook under `nbs_dir` over MAX_NOTEBOOK_BYTES, and for the total over MAX_TOTAL_BYTES."
    files = notebooks(nbs_dir)
    errors = [f'{p.relative_to(nbs_dir.parent)} is {p.stat().st_size / 1e6:.2f} MB, over the per-notebook budget of '
              f'{MAX_NOTEBOOK_BYTES / 1e6:.1f} MB (largest outputs: {biggest_outputs(p)}); make its figures fewer '
              f'or smaller (figsize, dpi)' for p in files if p.stat().st_size > MAX_NOTEBOOK_BYTES]
    total = sum(p.stat().st_size for p in files)
    if total > MAX_TOTAL_BYTES:
        big = ', '.join(f'{p.name} {p.stat().st_size / 1e6:.2f} MB'
                        for p in sorted(files, key=lambda p: -p.stat().st_size)[:3])
        errors.append(f'the notebooks under {nbs_dir} total {total / 1e6:.2f} MB, over the budget of '
                      f'{MAX_TOTAL_BYTES / 1e6:.1f} MB (largest: {big})')
    return errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to run (default: every notebook under nbs/)')
    ap.add_argument('--timeout', type=int, default=1200, help='seconds one cell may run (default 1200)')
    ap.add_argument('--jobs', type=int, default=1, help='notebooks run at once (default 1)')
    ap.add_argument('--check-budget', action='store_true', help='only check the sizes, run nothing')
    ap.add_argument('--nbs', type=Path, default=ROOT / 'nbs', help='the notebook folder: run by default, budget checked')
    args = ap.parse_args(argv)
    nbs_dir = args.nbs.resolve()
    failed = []
    if not args.check_budget:
        argv0 = KernelSpecManager().get_kernel_spec('python3').argv[0]
        if argv0 not in ('python', 'python3', sys.executable):  # jupyter_client reads 'python' as this interpreter
            sys.exit(f'the python3 kernel runs {argv0}, not this environment: `{sys.executable} -m ipykernel install '
                     f'--sys-prefix` makes one, or remove the other kernelspec (jupyter kernelspec list)')
        nbs = args.notebooks or [str(p) for p in notebooks(nbs_dir)]
        with ProcessPoolExecutor(args.jobs) as pool:  # one kernel per notebook, whatever the number of jobs
            for path, secs, notes, err in pool.map(execute, nbs, [args.timeout] * len(nbs)):
                print(f'{"FAILED" if err else "ok":6} {secs:6.1f} s  {os.path.relpath(path)}', flush=True)
                for n in notes: print('       ', n)
                if err: failed.append(err)
        readme_nb = ROOT / 'nbs' / 'index.ipynb'
        if any(Path(p).resolve() == readme_nb for p in nbs):  # README.md carries index.ipynb's printed outputs
            subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py')], cwd=ROOT, check=True)
    over = check_budget(nbs_dir)
    for msg in failed: print(f'\nFAILED {msg}', file=sys.stderr)
    for msg in over: print(f'OVER BUDGET: {msg}', file=sys.stderr)
    if not over: print(f'size budget ok: {sum(p.stat().st_size for p in notebooks(nbs_dir)) / 1e6:.2f} MB '
                       f'under {nbs_dir.name}/ (at most {MAX_NOTEBOOK_BYTES / 1e6:.1f} MB a notebook, '
                       f'{MAX_TOTAL_BYTES / 1e6:.1f} MB in all)')
    sys.exit(1 if failed or over else 0)


if __name__ == '__main__':
    main()
