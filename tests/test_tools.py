"The development tools' own logic: the sync check compares notebooks by their sources."
import importlib.util, json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'tools' / f'{name}.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m


def _nb(path, source, outputs=(), count=None):
    cell = {'cell_type': 'code', 'execution_count': count, 'metadata': {}, 'outputs': list(outputs), 'source': [source]}
    path.write_text(json.dumps({'cells': [cell], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    return path


def test_sync_check_compares_notebook_sources(tmp_path):
    sync = _tool('check_sync')
    a = _nb(tmp_path / 'a.ipynb', 'x = 1')
    ran = _nb(tmp_path / 'b.ipynb', 'x = 1', outputs=[{'output_type': 'stream', 'name': 'stdout', 'text': ['1']}], count=3)
    edited = _nb(tmp_path / 'c.ipynb', 'x = 2')
    assert sync._digest(a, True) == sync._digest(ran, True)        # a run changes outputs, not sources
    assert sync._digest(a, False) != sync._digest(ran, False)      # byte for byte it differs (reported as tidied)
    assert sync._digest(a, True) != sync._digest(edited, True)     # a changed source is a real difference
    assert sync._digest(tmp_path / 'missing.ipynb', True) is None
