"""The run shipped with mtlmad (`mtlmad/pretrained/demo`, rebuilt by `make pretrained`): it still gives its card's
figures, its card quotes its figures.json, it stays small, `demo` names it at every door, and a checkpoint from another
version (or architecture) is refused clearly."""
import contextlib, io, json, shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mtlmad
from mtlmad import checkpoint
from mtlmad.checkpoint import PRETRAINED_DIR, load_run, pretrained_runs, resolve_run
from mtlmad.cli import main
from mtlmad.core import MTLConfig
from mtlmad.jobs import DEMO_CONFIG, load_run_split, open_scorer
from mtlmad.zoo import FIGURE_TOLERANCE, FIGURES, model_card, run_figures

SHIPPED = PRETRAINED_DIR / 'demo'
REBUILD = 'the shipped run no longer matches its card: rebuild it with `make pretrained`'


@pytest.fixture(scope='module')
def card_figures():
    return json.loads((SHIPPED / 'figures.json').read_text())


def test_shipped_files_and_size():
    assert pretrained_runs() == {'demo': SHIPPED}
    assert sorted(p.name for p in SHIPPED.iterdir()) == ['MODEL_CARD.md', 'config.json', 'figures.json', 'model.pt', 'run.json']
    assert (SHIPPED / 'model.pt').stat().st_size < 1.8e6   # packed calibration (eight parts' reference maps since 0.2.13's mirror part), float16 weights: about 1.74 MB


def test_reproduces_card_figures(card_figures):
    figs, scores = run_figures('demo')
    assert (figs['images'], figs['anomalous']) == (card_figures['images'], card_figures['anomalous'])
    for name, now, card in [('fused', figs['fused'], card_figures['fused'])] + [(t, figs['tasks'][t], m) for t, m in card_figures['tasks'].items()]:
        for k in FIGURES:
            assert abs(now[k] - card[k]) <= FIGURE_TOLERANCE, f'{name} {k}: {now[k]:.2f} now, {card[k]:.2f} on the card; {REBUILD}'


def test_card_quotes_figures(card_figures):
    assert (SHIPPED / 'MODEL_CARD.md').read_text() == model_card(card_figures), 'MODEL_CARD.md is not the card of figures.json; ' + REBUILD
    assert card_figures['mtlmad_version'].split('.')[:2] == mtlmad.__version__.split('.')[:2], REBUILD
    assert card_figures['config'] == load_run('demo').cfg.to_dict()


def test_trained_with_todays_demo_schedule(card_figures):
    "The shipped run is the demo schedule of this mtlmad: a change of the defaults (tasks, steps, ...) calls for a rebuild."
    assert card_figures['config'] == MTLConfig(**DEMO_CONFIG).to_dict(), 'the demo schedule changed since; ' + REBUILD.split(': ')[1]


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    "A copy of the shipped run in a stand-in package folder: what a stale shipped run would look like."
    monkeypatch.setattr(checkpoint, 'PRETRAINED_DIR', tmp_path / 'pretrained')
    shutil.copytree(SHIPPED, tmp_path / 'pretrained' / 'demo')
    return tmp_path / 'pretrained' / 'demo'


def test_other_version_refused(shipped_copy):
    ck = torch.load(shipped_copy / 'model.pt', weights_only=True)
    major, minor = mtlmad.__version__.split('.')[:2]
    other = f'{major}.{int(minor) + 1}.0'
    torch.save({**ck, 'mtlmad_version': other}, shipped_copy / 'model.pt')
    with pytest.raises(ValueError, match=rf'written by mtlmad {other}, this is mtlmad .*rebuild it with `make pretrained`'): load_run('demo')


def test_other_architecture_refused(shipped_copy):
    ck = torch.load(shipped_copy / 'model.pt', weights_only=True)
    torch.save({**ck, 'config': {**ck['config'], 'width': ck['config']['width'] * 2}}, shipped_copy / 'model.pt')
    with pytest.raises(ValueError, match='the weights do not match the config'): load_run('demo')


def _cli(*args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out): rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def test_cli_evaluate_demo(tmp_path, monkeypatch, card_figures):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli('evaluate', '--run', 'demo', '--out', 'report', '--device', 'cpu')
    assert rc == 0, err
    fused = json.loads((tmp_path / 'report' / 'metrics.json').read_text())['fused']
    assert all(abs(fused[k] - card_figures['fused'][k]) <= FIGURE_TOLERANCE for k in FIGURES), (fused, card_figures['fused'])


@pytest.mark.parametrize('option', [('--top-parts', '0'), ('--groups', 'none'), ('--lookup-map', 'none')])
def test_cli_evaluate_another_fusion(tmp_path, monkeypatch, card_figures, option):
    """`--top-parts 0` fuses every part by their mean (as runs before 0.2.6), `--groups none` counts every part on its own
    (as runs before 0.2.7), `--lookup-map none` fuses the lookup part in the map like every part: the same parts, another fused figure."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli('evaluate', '--run', 'demo', '--out', 'report', '--device', 'cpu', *option)
    assert rc == 0, err
    got = json.loads((tmp_path / 'report' / 'metrics.json').read_text())
    for t, want in card_figures['tasks'].items():
        assert all(abs(got[t][k] - want[k]) <= FIGURE_TOLERANCE for k in FIGURES), (t, got[t], want)
    assert got['fused']['aupro'] != card_figures['fused']['aupro'], (got['fused'], card_figures['fused'])


def test_cli_evaluate_image_votes(tmp_path, monkeypatch, card_figures):
    """`--image-votes parts` (each image: its two largest votes, as runs before 0.2.21) changes the image scores only:
    the maps, so the pixel figures, and every part alone stay the shipped run's."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli('evaluate', '--run', 'demo', '--out', 'report', '--device', 'cpu', '--image-votes', 'parts')
    assert rc == 0, err
    got = json.loads((tmp_path / 'report' / 'metrics.json').read_text())
    for t, want in card_figures['tasks'].items():
        assert all(abs(got[t][k] - want[k]) <= FIGURE_TOLERANCE for k in FIGURES), (t, got[t], want)
    for k in ('pixel_auroc', 'aupro'):
        assert abs(got['fused'][k] - card_figures['fused'][k]) <= FIGURE_TOLERANCE, (k, got['fused'], card_figures['fused'])


def test_image_votes_change_the_scores_not_the_maps():
    kinds, parts = (open_scorer('demo', device='cpu', scoring=None if v is None else dict(image_votes=v)) for v in (None, 'parts'))
    assert (kinds.image_votes, parts.image_votes) == ('kinds', 'parts')   # the shipped run votes by kind
    x = load_run_split('demo', kinds.cfg, None, 'test').images[:12]
    a, b = kinds.score(x), parts.score(x)
    np.testing.assert_allclose(a.maps, b.maps)
    assert not np.allclose(a.scores, b.scores)


def test_cli_evaluate_refuses_a_group_of_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli('evaluate', '--run', 'demo', '--out', 'one', '--device', 'cpu', '--groups', 'inpaint')
    assert rc == 2 and 'two or more different parts' in err and 'Traceback' not in err, err
    assert not (tmp_path / 'one').exists()


def test_local_demo_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'demo').mkdir()   # not a run: it hides the shipped one, and the error says how to reach it
    rc, _, err = _cli('evaluate', '--run', 'demo', '--out', 'report', '--device', 'cpu')
    assert rc == 2 and 'it hides the run' in err and str(SHIPPED) in err, err
    shutil.copy(SHIPPED / 'model.pt', tmp_path / 'demo' / 'model.pt')   # a local run called demo wins
    assert resolve_run('demo') == Path('demo') and load_run('demo', device='cpu').path == Path('demo')
