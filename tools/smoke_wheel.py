"""Build mtlmad's wheel and try it the way a user gets it: a brand-new virtual environment far from the repository.

    python tools/smoke_wheel.py [--workdir DIR] [--wheel FILE] [--keep]

Builds the sdist and, from it, the wheel (`python -m build`); checks what they hold; makes a fresh venv
(no system site-packages), installs the pinned CPU torch first and then the wheel with plain pip; and, with the
working folder outside the repository as cwd, runs `mtlmad --version`, `mtlmad make-data`, the public API,
the import-weight check, the shipped run (`open_scorer('demo')`) and `mtlmad demo --quick`. Prints each step's time;
exits 1 if any step fails.
tests/test_wheel.py runs the same functions under pytest (marker `wheel`)."""
from __future__ import annotations
import argparse, json, os, re, shutil, subprocess, sys, tarfile, tempfile, time, zipfile
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = os.environ.get('TORCH_PIN', 'torch==2.13.0')  # the CPU build on local disk; CUDA users pick their own
DATA = ('mtlmad/data/brain_mri.npz', 'mtlmad/data/README.md', 'mtlmad/data/LICENSE-colin27.txt',
        *(f'mtlmad/pretrained/demo/{f}' for f in ('model.pt', 'config.json', 'run.json', 'figures.json', 'MODEL_CARD.md')))
REPO_ONLY = ('nbs/', 'tests/', 'tools/', 'bench/', '.ci/')  # never in the wheel or the sdist

# `import mtlmad` (and the non-drawing modules) must stay light: no widgets, no pyplot, no GUI backend.
LIGHT_CHECK = r'''
import os, sys, mtlmad
light = [m for m in ('ipywidgets', 'matplotlib.pyplot', 'IPython') if m in sys.modules]
import mtlmad.cli, mtlmad.core, mtlmad.datasets, mtlmad.moe, mtlmad.tasks
heavy = [m for m in ('ipywidgets', 'matplotlib.pyplot') if m in sys.modules]
import matplotlib, mtlmad.viz
backend = matplotlib.get_backend().lower()
print(dict(after_import_mtlmad=light, after_core_modules=heavy, backend_after_viz=backend))
assert not light and not heavy, (light, heavy)
assert backend == 'agg' or os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'), backend
'''
# Run inside the fresh venv, after LIGHT_CHECK: the public API on a tiny model, one training step per proxy task.
API_CHECK = r'''
import json, torch, torch.nn.functional as F
import mtlmad
from mtlmad.core import MTLConfig
from mtlmad.datasets import load_brain_mri
from mtlmad.moe import MTLModel
from mtlmad.tasks import make_task
mri = load_brain_mri()
assert mri.slices.ndim == 3 and mri.slices.shape == mri.masks.shape and 0 <= mri.slices.min() and mri.slices.max() <= 1
cfg = MTLConfig(image_size=32, width=8, n_experts=2)
imgs = F.interpolate(torch.from_numpy(mri.slices[60:64])[:, None], size=(32, 32), mode='bilinear', antialias=True).clamp(0, 1)
tasks = {n: make_task(n, cfg) for n in cfg.tasks}
model = MTLModel(cfg, {n: t.out_channels for n, t in tasks.items()})
g, out = torch.Generator().manual_seed(0), {}
for n, t in tasks.items():
    t.fit(imgs)
    b = t.make_batch(imgs, g)
    pred = model(b.input, n)
    loss = t.loss(pred, b); loss.backward()
    assert pred.shape == (4, t.out_channels, 32, 32) and torch.isfinite(loss), n
    with torch.no_grad(): err = t.error_map(imgs, [model(x, n) for x in t.inference_inputs(imgs)])
    assert err.shape == (4, 1, 32, 32) and t.score(err).shape == (4,), n
    out[n] = round(loss.item(), 4)
print(json.dumps(dict(file=mtlmad.__file__, slices=list(mri.slices.shape), losses=out)))
'''
# Run inside the fresh venv: the run shipped in the wheel opens by its name and scores a slice of the embedded MRI.
SHIPPED_CHECK = r'''
import json, math, time
from PIL import Image
from mtlmad.datasets import load_brain_mri
t = time.perf_counter()
from mtlmad.jobs import open_scorer, predict_files
scorer = open_scorer('demo', device='cpu')
opened = time.perf_counter() - t
Image.fromarray((load_brain_mri().slices[60] * 255).astype('uint8')).save('slice.png')
p = predict_files('demo', ['slice.png'], device='cpu')[0]
assert math.isfinite(p.score), p.score
print(json.dumps(dict(run_dir=str(scorer.run_dir), open_seconds=round(opened, 2), score=round(p.score, 3))))
'''


def settings_version(root: Path = ROOT) -> str:
    "The version in settings.ini, the project's single source."
    c = ConfigParser(delimiters=['=']); c.read(root / 'settings.ini', encoding='utf-8')
    return c['DEFAULT']['version']


def init_version(root: Path = ROOT) -> str:
    "The `__version__` that nbdev_export wrote into mtlmad/__init__.py."
    m = re.search(r'''^__version__\s*=\s*['"]([^'"]+)['"]''', (root / 'mtlmad' / '__init__.py').read_text(), re.M)
    if not m: raise ValueError(f'{root / "mtlmad" / "__init__.py"}: no __version__ line')
    return m.group(1)


def run(cmd, cwd, env=None, timeout=600) -> tuple[int, str, float]:
    "Run `cmd`; return its exit status, stdout+stderr and seconds taken."
    t = time.perf_counter()
    try: p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return 124, f'timed out after {timeout} s\n{e.stdout or ""}{e.stderr or ""}', time.perf_counter() - t
    return p.returncode, p.stdout + p.stderr, time.perf_counter() - t


def build(outdir: Path) -> tuple[Path, Path]:
    "Build the sdist, then the wheel from it, into `outdir`; offline with the current env's setuptools, else isolated."
    outdir.mkdir(parents=True, exist_ok=True)
    for extra in (['--no-isolation'], []):
        rc, log, _ = run([sys.executable, '-m', 'build', *extra, '--outdir', outdir, ROOT], cwd=ROOT)
        if rc == 0: break
        print(f'python -m build {" ".join(extra)} failed:\n{log[-3000:]}', file=sys.stderr)
    else: raise RuntimeError('python -m build failed with and without build isolation')
    whl, = outdir.glob('mtlmad-*.whl'); sdist, = outdir.glob('mtlmad-*.tar.gz')
    return whl, sdist


def wheel_problems(whl: Path, version: str) -> list[str]:
    "What is wrong with the wheel: missing modules, data or licences, repository-only files, wrong version or script."
    names = zipfile.ZipFile(whl).namelist()
    info = f'mtlmad-{version}.dist-info/'
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'mtlmad').rglob('*.py') if '__pycache__' not in p.parts)
    need = [*modules, *DATA, info + 'licenses/LICENSE', info + 'METADATA', info + 'entry_points.txt']
    bad = [f'missing {n}' for n in need if n not in names]
    bad += [f'not part of the library: {n}' for n in names
            if not (n.startswith('mtlmad/') or n.startswith(info)) or n.endswith(('.ipynb', '.pyc')) or '__pycache__' in n]
    if info + 'METADATA' in names:
        meta = zipfile.ZipFile(whl).read(info + 'METADATA').decode()
        if f'\nVersion: {version}\n' not in meta: bad.append(f'METADATA does not say Version: {version}')
    if info + 'entry_points.txt' in names:
        eps = zipfile.ZipFile(whl).read(info + 'entry_points.txt').decode()
        if not re.search(r'^mtlmad\s*=\s*mtlmad\.cli:main$', eps, re.M): bad.append('no `mtlmad` console script')
    return bad


def sdist_problems(sdist: Path) -> list[str]:
    "What is wrong with the sdist: it must rebuild the wheel (setup.py, settings.ini, data) and hold no notebooks or tests."
    names = [n.split('/', 1)[1] for n in tarfile.open(sdist).getnames() if '/' in n]
    need = ['setup.py', 'settings.ini', 'README.md', 'LICENSE', 'mtlmad/__init__.py', *DATA]
    return ([f'missing {n}' for n in need if n not in names]
            + [f'repository-only file: {n}' for n in names if n.startswith(REPO_ONLY) or n.endswith('.ipynb')])


def tail(out: str, n: int) -> list[str]:
    "The last `n` lines of `out`, each as a terminal would leave it (progress bars redraw with carriage returns)."
    return [l.rsplit('\r', 1)[-1] for l in out.strip().splitlines()[-n:]]


def clean_env(venv: Path) -> dict:
    "The environment of a user who just made `venv`: its bin first, nothing pointing back at the repository."
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHONPATH', 'PYTHONHOME', 'CONDA_PREFIX')}
    env['PATH'] = f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}'
    return env


def make_venv(venv: Path, whl: Path, cwd: Path) -> list[tuple[str, int, str, float]]:
    "A brand-new venv with the pinned torch, then the wheel and its dependencies (plain pip, PyPI or the pip cache)."
    py, steps = venv / 'bin' / 'python', []
    shutil.rmtree(venv, ignore_errors=True)  # brand-new, even when a work folder is reused
    for name, cmd in (('venv', [sys.executable, '-m', 'venv', venv]),
                      ('pip install ' + TORCH_PIN, [py, '-m', 'pip', 'install', '-q', '--no-compile', TORCH_PIN]),
                      ('pip install ' + whl.name, [py, '-m', 'pip', 'install', '-q', '--no-compile', whl]),
                      ('pip check', [py, '-m', 'pip', 'check'])):
        rc, out, sec = run(cmd, cwd, env=clean_env(venv))
        steps.append((name, rc, out, sec))
        if rc: break
    return steps


def use_steps(venv: Path, cwd: Path, version: str) -> list[tuple[str, list, callable]]:
    "The user's first commands, each with a check of its output (returns a problem or None)."
    def check_version(out): return None if out.strip() == f'mtlmad {version}' else f'expected "mtlmad {version}"'
    def check_data(out):
        d = cwd / 'demo_data'
        need = ['dataset.json', 'train/good', 'valid/good/img', 'valid/Ungood/img', 'valid/Ungood/label',
                'test/good/img', 'test/Ungood/img', 'test/Ungood/label']
        miss = [n for n in need if not (d / n).exists()]
        if miss: return f'missing {miss}'
        empty = [n for n in need[1:] if not any((d / n).glob('*.png'))]
        return f'no PNG in {empty}' if empty else None
    def check_api(out):
        if "'after_import_mtlmad': []" not in out: return 'import mtlmad pulled in widgets or pyplot'
        return None if f'{venv}' in out and '"losses"' in out else 'mtlmad not imported from the venv'
    def check_shipped(out):
        rec = json.loads(out.strip().splitlines()[-1])
        return None if rec['run_dir'].startswith(str(venv)) else f"the shipped run opened from {rec['run_dir']}, not from the venv"
    def check_demo(out):
        d = cwd / 'demo_out'
        if not any(d.rglob('model.pt')): return f'no model.pt under {d}'
        metrics = sorted(d.rglob('metrics.json'))
        return None if metrics and 'fused' in json.loads(metrics[0].read_text()) else f'no metrics.json with "fused" under {d}'
    py = venv / 'bin' / 'python'
    return [('mtlmad --version', [venv / 'bin' / 'mtlmad', '--version'], check_version),
            ('mtlmad make-data demo_data', [venv / 'bin' / 'mtlmad', 'make-data', 'demo_data'], check_data),
            ('light import, public API', [py, '-c', LIGHT_CHECK + API_CHECK], check_api),
            ('open the shipped run', [py, '-c', SHIPPED_CHECK], check_shipped),
            ('mtlmad demo --quick', [venv / 'bin' / 'mtlmad', 'demo', '--quick', '--out', 'demo_out'], check_demo)]


def run_step(venv: Path, cwd: Path, name: str, cmd: list, check, timeout=240) -> tuple[int, str, float, str | None]:
    "Run one user step from `cwd` in the venv's environment; return status, output, seconds and the check's verdict."
    # 240 s: the quick demo takes about a minute on two CPU cores; a full schedule would run for an hour
    rc, out, sec = run(cmd, cwd, env=clean_env(venv), timeout=timeout)
    return rc, out, sec, (check(out) if rc == 0 else f'exit status {rc}')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workdir', type=Path, help='folder for the build, the venv and the runs (default: a new temp folder)')
    p.add_argument('--wheel', type=Path, help='try this wheel instead of building one')
    p.add_argument('--keep', action='store_true', help='keep the work folder')
    a = p.parse_args(argv)
    work = (a.workdir or Path(tempfile.mkdtemp(prefix='mtlmad-wheel-'))).resolve()
    if work == ROOT or ROOT in work.parents: p.error(f'{work}: the work folder must lie outside the repository')
    work.mkdir(parents=True, exist_ok=True)
    t0, failed, version = time.perf_counter(), [], settings_version()
    print(f'work folder {work}; settings.ini version {version}; mtlmad/__init__.py {init_version()}')
    if init_version() != version: failed.append('version')
    try:
        if a.wheel: whl, sdist = a.wheel.resolve(), None
        else:
            t = time.perf_counter(); whl, sdist = build(work / 'dist')
            print(f'[{time.perf_counter() - t:5.1f} s] build: {whl.name}, {sdist.name}')
        zf = zipfile.ZipFile(whl)
        print(f'wheel {whl.name}: {whl.stat().st_size / 1e6:.2f} MB, {len(zf.namelist())} files')
        for i in zf.infolist(): print(f'  {i.file_size:>9}  {i.filename}')
        for what, bad in (('wheel', wheel_problems(whl, version)), ('sdist', sdist_problems(sdist) if sdist else [])):
            for b in bad: print(f'  {what} problem: {b}')
            if bad: failed.append(what)
        venv, cwd = work / 'venv', work / 'user'
        shutil.rmtree(cwd, ignore_errors=True); cwd.mkdir()
        installed = make_venv(venv, whl, cwd)
        for name, rc, out, sec in installed:
            print(f'[{sec:5.1f} s] {name}: {"ok" if rc == 0 else f"FAILED ({rc})"}')
            if rc: print(out[-3000:]); failed.append(name)
        if all(rc == 0 for _, rc, _, _ in installed):
            for name, cmd, check in use_steps(venv, cwd, version):
                rc, out, sec, problem = run_step(venv, cwd, name, cmd, check)
                print(f'[{sec:5.1f} s] {name}: {"ok" if problem is None else "FAILED: " + problem}')
                print('    ' + '\n    '.join(tail(out, 6 if problem is None else 40)))
                if problem: failed.append(name)
    finally:
        print(f'total {time.perf_counter() - t0:.1f} s; ' + (f'FAILED: {failed}' if failed else 'all steps passed'))
        if not a.keep and not a.workdir: shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
