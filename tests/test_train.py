"Tests of mtlmad.train with tiny configs and small stand-in tasks (fast, independent of the real tasks)."
import contextlib, json, sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import mtlmad
from mtlmad.core import MTLConfig
from mtlmad.train import augment, fit, lr_factor
from mtlmad.checkpoint import load_run, save_checkpoint
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
from throughput import throughput  # noqa: E402


@dataclass
class Batch:
    input: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor = None


class Denoise:
    "Stand-in task: remove Gaussian noise (1 output channel)."
    name, out_channels = 'inpaint', 1
    def fit(self, images): pass
    def make_batch(self, images, generator):
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        return Batch(images + 0.1 * noise, images)
    def loss(self, pred, b): return F.mse_loss(pred, b.target)
    def state_dict(self): return {}
    def load_state_dict(self, d): pass


class Bright:
    "Stand-in task with a fitted state: classify pixels above/below the training mean (2 channels)."
    name, out_channels = 'tissue', 2
    def __init__(self): self.thr = None
    def fit(self, images): self.thr = images.mean()
    def make_batch(self, images, generator): return Batch(images, (images > self.thr).long()[:, 0])
    def loss(self, pred, b): return F.cross_entropy(pred, b.target)
    def state_dict(self): return {'thr': self.thr}
    def load_state_dict(self, d): self.thr = d['thr']


class Exploding(Denoise):
    def loss(self, pred, b): return pred.sum() * float('nan')


def tasks(): return {'inpaint': Denoise(), 'tissue': Bright()}

CFG = MTLConfig(image_size=32, width=8, n_experts=2, epochs=2, batch_size=4, warmup_steps=2,
                tasks=('inpaint', 'tissue'), top_k=1)
IMGS = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def test_fit_history_and_run_files(tmp_path):
    res = fit(CFG, IMGS, out_dir=tmp_path, valid=IMGS[:3], progress=False, device='cpu', tasks=tasks())
    assert len(res.history['train']) == 4 and len(res.history['valid']) == 2
    row = res.history['train'][0]
    assert {'inpaint', 'tissue', 'total', 'aux', 'lr', 'step', 'epoch'} <= set(row)
    assert {p.name for p in tmp_path.iterdir()} == {'model.pt', 'config.json', 'history.json', 'loss.png'}
    assert json.loads((tmp_path / 'history.json').read_text())['train'][-1]['step'] == 3
    ck = torch.load(tmp_path / 'model.pt', weights_only=True)
    assert ck['format'] == 'mtlmad-checkpoint' and ck['mtlmad_version'] == mtlmad.__version__ and ck['norm'] is None
    run = load_run(tmp_path, device='cpu', tasks=tasks())
    assert run.cfg == CFG and run.tasks['tissue'].thr == res.tasks['tissue'].thr
    x = IMGS[:2]
    with torch.no_grad(): torch.testing.assert_close(run.model(x, 'tissue'), res.model(x, 'tissue'))


def test_seeded_runs_reproducible():
    a = fit(CFG, IMGS, progress=False, device='cpu', tasks=tasks()).model.state_dict()
    b = fit(CFG, IMGS, progress=False, device='cpu', tasks=tasks()).model.state_dict()
    for k in a: assert torch.equal(a[k], b[k]), k
    c = fit(CFG.replace(seed=1), IMGS, progress=False, device='cpu', tasks=tasks()).model.state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path):
    fit(CFG.replace(epochs=1), IMGS, out_dir=tmp_path, progress=False, device='cpu', tasks=tasks())
    before = (tmp_path / 'model.pt').read_bytes()
    with pytest.raises(FloatingPointError, match=r"task 'inpaint'.*step 0"):
        fit(CFG, IMGS, out_dir=tmp_path, progress=False, device='cpu', tasks={'inpaint': Exploding(), 'tissue': Bright()})
    assert (tmp_path / 'model.pt').read_bytes() == before


def test_load_errors(tmp_path):
    res = fit(CFG.replace(epochs=1), IMGS, progress=False, device='cpu', tasks=tasks())
    p = save_checkpoint(tmp_path / 'model.pt', res.model, res.tasks, res.cfg)
    with pytest.raises(FileNotFoundError, match='no such checkpoint'): load_run(tmp_path / 'missing.pt')
    (tmp_path / 'trunc.pt').write_bytes(p.read_bytes()[:300])
    with pytest.raises(ValueError, match='truncated or corrupt'): load_run(tmp_path / 'trunc.pt', tasks=tasks())
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint at all')
    with pytest.raises(ValueError, match='truncated or corrupt'): load_run(tmp_path / 'junk.pt', tasks=tasks())
    ck = torch.load(p, weights_only=True)
    torch.save({**ck, 'format': 'other'}, tmp_path / 'fmt.pt')
    with pytest.raises(ValueError, match='not an mtlmad checkpoint'): load_run(tmp_path / 'fmt.pt', tasks=tasks())
    torch.save({**ck, 'mtlmad_version': '9.3.0'}, tmp_path / 'ver.pt')
    with pytest.raises(ValueError, match=r'written by mtlmad 9\.3\.0, this is mtlmad'): load_run(tmp_path / 'ver.pt', tasks=tasks())
    torch.save({**ck, 'config': {**ck['config'], 'width': 16}}, tmp_path / 'cfg.pt')
    with pytest.raises(ValueError, match='do not match the config'): load_run(tmp_path / 'cfg.pt', tasks=tasks())
    torch.save({**ck, 'config': {**ck['config'], 'bogus': 1}}, tmp_path / 'key.pt')
    with pytest.raises(ValueError, match='bad config'): load_run(tmp_path / 'key.pt', tasks=tasks())


def test_input_checks_and_helpers():
    with pytest.raises(ValueError, match=r'\(N, 1, S, S\)'): fit(CFG, torch.rand(4, 3, 32, 32), progress=False, tasks=tasks())
    with pytest.raises(ValueError, match='do not match cfg.tasks'): fit(CFG, IMGS, progress=False, tasks={'inpaint': Denoise()})
    g = lambda: torch.Generator().manual_seed(0)
    assert torch.equal(augment(IMGS, g()), augment(IMGS, g()))
    assert lr_factor(0, 100, 10) == pytest.approx(0.1) and lr_factor(99, 100, 10) < 0.01
    r = throughput(CFG, n_steps=1, device='cpu', tasks=tasks())
    assert r['images_per_s'] > 0 and r['tasks'] == 2


def test_progress_into_a_log_file_is_a_few_short_lines(tmp_path):
    "With stderr a file (a log, a pipe), fit reports progress in plain lines, not a bar redrawn with carriage returns."
    log = tmp_path / 'fit.log'
    with open(log, 'w') as f, contextlib.redirect_stderr(f):
        fit(CFG.replace(epochs=0, steps=20), IMGS, progress=True, device='cpu', tasks=tasks())
    text = log.read_text()
    lines = [l for l in text.splitlines() if l.startswith('fit: ')]
    assert '\r' not in text and len(lines) == 10 and all(len(l) < 120 for l in lines), text
    assert lines[0].startswith('fit: step 2/20 (10%), ') and ' left' in lines[0]
    assert lines[-1].startswith('fit: step 20/20 (100%), ') and 'inpaint=' in lines[-1] and 'tissue=' in lines[-1]
