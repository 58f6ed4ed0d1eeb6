"""The pip-installed library: the wheel holds the package and its data, and works in a brand-new venv outside the repo.

The tests marked `wheel` build the wheel and install it (about 2-3 minutes); skip them with `pytest -m "not wheel"`.
The steps live in tools/smoke_wheel.py, which also runs them from a shell."""
import importlib.util, json, subprocess, sys, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('smoke_wheel', ROOT / 'tools' / 'smoke_wheel.py')
sw = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(sw)

# ---------------------------------------------------------------- version and setup.py (fast)
def test_version_single_sourced():
    import mtlmad
    assert sw.init_version() == sw.settings_version() == mtlmad.__version__, 'run nbdev_export after changing settings.ini'


SETUP_KW = r'''
import json, runpy, setuptools
setuptools.setup = lambda **kw: print(json.dumps({k: kw.get(k) for k in
    ('version', 'long_description', 'long_description_content_type', 'install_requires', 'classifiers', 'packages')}))
runpy.run_path('setup.py')
'''

def _setup_kwargs(folder):
    "What setup.py in `folder` hands to setuptools.setup, without building anything."
    p = subprocess.run([sys.executable, '-c', SETUP_KW], cwd=folder, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_setup_reads_settings():
    kw = _setup_kwargs(ROOT)
    assert kw['version'] == sw.settings_version()
    assert kw['long_description'] == (ROOT / 'README.md').read_text(encoding='utf-8')
    assert any(r.startswith('torch') for r in kw['install_requires'])
    assert 'Development Status :: 3 - Alpha' in kw['classifiers']  # settings.ini: status = 3
    assert {'mtlmad', 'mtlmad.tasks', 'mtlmad.data'} <= set(kw['packages'])
    assert 'mtlmad.pretrained.demo' in kw['packages'], 'the shipped run folder must be listed, or setuptools warns it is left out'


def test_setup_without_readme(tmp_path):
    for f in ('setup.py', 'settings.ini'): (tmp_path / f).write_bytes((ROOT / f).read_bytes())
    kw = _setup_kwargs(tmp_path)
    desc = sw.ConfigParser(delimiters=['=']); desc.read(ROOT / 'settings.ini')
    assert kw['long_description'] == desc['DEFAULT']['description'] and kw['long_description_content_type'] == 'text/plain'

# ---------------------------------------------------------------- the built wheel
@pytest.fixture(scope='module')
def built(tmp_path_factory):
    whl, sdist = sw.build(tmp_path_factory.mktemp('dist'))
    zf = zipfile.ZipFile(whl)
    print(f'\n{whl.name}: {whl.stat().st_size / 1e6:.2f} MB')
    for i in zf.infolist(): print(f'  {i.file_size:>9}  {i.filename}')
    return whl, sdist


@pytest.mark.wheel
def test_wheel_contents(built):
    whl, _ = built
    assert sw.wheel_problems(whl, sw.settings_version()) == []
    names = zipfile.ZipFile(whl).namelist()
    assert not any(n.startswith(sw.REPO_ONLY) or n.endswith('.ipynb') for n in names)
    assert whl.stat().st_size < 5e6


@pytest.mark.wheel
def test_sdist_contents(built):
    assert sw.sdist_problems(built[1]) == []

# ---------------------------------------------------------------- a user's brand-new venv
@pytest.fixture(scope='module')
def user(built, tmp_path_factory):
    "A fresh venv with torch and the wheel; the user's working folder (cwd), far from the repository."
    work = tmp_path_factory.mktemp('user')
    assert ROOT not in work.parents
    venv, cwd = work / 'venv', work / 'home'; cwd.mkdir()
    for name, rc, out, sec in sw.make_venv(venv, built[0], cwd):
        print(f'[{sec:5.1f} s] {name}')
        assert rc == 0, f'{name} failed:\n{out[-3000:]}'
    return venv, cwd


def _step(user, name):
    venv, cwd = user
    steps = {n: (cmd, check) for n, cmd, check in sw.use_steps(venv, cwd, sw.settings_version())}
    rc, out, sec, problem = sw.run_step(venv, cwd, name, *steps[name])
    print(f'[{sec:5.1f} s] {name}\n{out[-2000:]}')
    assert problem is None, f'{name}: {problem}\n{out[-4000:]}'
    return out


@pytest.mark.wheel
def test_cli_version(user): _step(user, 'mtlmad --version')

@pytest.mark.wheel
def test_make_data(user): _step(user, 'mtlmad make-data demo_data')

@pytest.mark.wheel
def test_light_import_and_public_api(user):
    out = _step(user, 'light import, public API')
    assert str(user[0]) in json.loads(out.strip().splitlines()[-1])['file']

@pytest.mark.wheel
def test_shipped_run(user):
    rec = json.loads(_step(user, 'open the shipped run').strip().splitlines()[-1])
    assert rec['run_dir'].startswith(str(user[0])) and rec['run_dir'].endswith('pretrained/demo')

@pytest.mark.wheel
def test_demo_quick(user): _step(user, 'mtlmad demo --quick')
