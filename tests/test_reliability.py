"Reliability: SIGKILL/SIGTERM then resume (bit-identical on the CPU), checkpoint safety, bad inputs end to end, NaN losses."
import os, pickle, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtlmad.core import MTLConfig
from mtlmad.train import fit
from mtlmad.checkpoint import load_run, read_checkpoint, save_checkpoint
from fixtures import calibrated_run as tiny_calibrated_run

ROOT = Path(__file__).resolve().parents[1]
CFG = MTLConfig(image_size=32, width=4, n_experts=2, epochs=3, batch_size=4, warmup_steps=2, top_k=1)  # all five tasks
SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    import mtlmad.train as T
    from mtlmad.core import MTLConfig
    out, mode = sys.argv[1], sys.argv[2]
    cfg = MTLConfig.from_json(sys.argv[3])
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    if mode == 'slow':   # slow each step down so the test can stop the run in the middle (numbers unchanged)
        step = T.train_step
        T.train_step = lambda *a: (time.sleep(0.25), step(*a))[1]
    T.fit(cfg, x, out_dir=out, progress=False, device='cpu', checkpoint_every=2, resume=mode == 'resume')
""")


def _train(tmp, out, mode, wait=True):
    (tmp / 'train.py').write_text(SCRIPT)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    args = [sys.executable, str(tmp / 'train.py'), str(out), mode, CFG.to_json()]
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    return p


def _stop_after_first_checkpoint(p, out, sig):
    "Wait for the first checkpoint file, then send `sig`; returns (returncode, stderr)."
    t0 = time.time()
    while not (out / 'model.pt').exists():
        assert p.poll() is None, p.communicate()[1]
        assert time.time() - t0 < 60, 'no checkpoint appeared'
        time.sleep(0.02)
    os.kill(p.pid, sig)
    _, err = p.communicate(timeout=60)
    return p.returncode, err


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ref')
    _train(tmp, tmp / 'run', 'plain')
    return torch.load(tmp / 'run' / 'model.pt', weights_only=True)


def _same_run(a, b):
    assert a['model'].keys() == b['model'].keys()
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k
    assert a['history'] == b['history']


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM])
def test_stop_then_resume_is_bit_identical(tmp_path, reference, sig):
    out = tmp_path / 'run'
    rc, err = _stop_after_first_checkpoint(_train(tmp_path, out, 'slow', wait=False), out, sig)
    ck = read_checkpoint(out)
    total = ck['train']['total']
    assert 0 < ck['train']['step'] < total, 'the run was not stopped in the middle'
    if sig == signal.SIGKILL: assert rc == -signal.SIGKILL
    else:   # SIGTERM: a clean stop with a message and a fresh checkpoint
        assert rc != 0 and 'stopped by SIGTERM' in err and 'checkpoint written' in err, err
    assert not list(out.glob('*.tmp*')), 'a temporary checkpoint file was left behind'
    _train(tmp_path, out, 'resume')
    _same_run(torch.load(out / 'model.pt', weights_only=True), reference)
    print(f"\n{signal.Signals(sig).name} at step {ck['train']['step']}/{total}, resumed: weights and history bit-identical")


# ---------------------------------------------------------------- checkpoint safety
TINY = CFG.replace(epochs=1, tasks=('geometry', 'tissue'))
IMGS = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('run')
    fit(TINY, IMGS, out_dir=d, progress=False, device='cpu')
    return d


class Evil:
    def __reduce__(self): return (os.system, (f'touch {Evil.marker}',))


@pytest.mark.parametrize('how', ['torch.save', 'pickle2', 'pickle4'])
def test_malicious_checkpoint_is_refused_not_run(tmp_path, run_dir, how):
    Evil.marker = tmp_path / 'pwned'
    ck = {**torch.load(run_dir / 'model.pt', weights_only=True), 'extra': Evil()}
    p = tmp_path / 'model.pt'
    if how == 'torch.save': torch.save(ck, p)
    else: p.write_bytes(pickle.dumps(ck, protocol=int(how[-1])))
    # protocol 4 framing is itself refused by the weights-only reader, before it reaches the class reference
    msg = 'not a readable mtlmad checkpoint' if how == 'pickle4' else 'refused.*could run code.*GLOBAL'
    with pytest.raises(ValueError, match=msg): load_run(p)
    assert not Evil.marker.exists()


def test_truncated_or_corrupt_checkpoints(tmp_path, run_dir):
    data = (run_dir / 'model.pt').read_bytes()
    outcomes = {}
    for cut in (0, 1, 64, 512, len(data) // 2, len(data) - 100, len(data) - 1):
        (tmp_path / 'model.pt').write_bytes(data[:cut])
        with pytest.raises(ValueError, match='truncated or corrupt|not an mtlmad') as e: load_run(tmp_path)
        assert str(tmp_path) in str(e.value)
        outcomes[cut] = 'ValueError'
    rng = np.random.default_rng(0)
    for k in range(6):   # flipped bytes: loads (the flip hit tensor data) or a clear ValueError, never a crash
        b = bytearray(data); pos = rng.integers(0, len(b), 8); b_ = np.frombuffer(bytes(b), np.uint8).copy()
        b_[pos] ^= 0xFF; (tmp_path / 'model.pt').write_bytes(b_.tobytes())
        try: load_run(tmp_path, device='cpu'); outcomes[f'flip{k}'] = 'loaded'
        except ValueError as e: outcomes[f'flip{k}'] = 'ValueError'; assert str(tmp_path) in str(e)
    print('\ncorrupt checkpoints:', outcomes)


def test_incompatible_version_and_config(tmp_path, run_dir):
    ck = torch.load(run_dir / 'model.pt', weights_only=True)
    torch.save({**ck, 'mtlmad_version': '0.0.1'}, tmp_path / 'model.pt')
    with pytest.raises(ValueError, match=r'written by mtlmad 0\.0\.1, this is mtlmad'): load_run(tmp_path)
    with pytest.raises(ValueError, match='another config.*width: 4 vs 8'):
        fit(TINY.replace(width=8), IMGS, out_dir=run_dir, progress=False, device='cpu', resume=True)
    with pytest.raises(ValueError, match='8 training images.*now there are 6'):
        fit(TINY, IMGS[:6], out_dir=run_dir, progress=False, device='cpu', resume=True)
    with pytest.raises(FileNotFoundError, match='no checkpoint to resume'):
        fit(TINY, IMGS, out_dir=tmp_path / 'empty', progress=False, resume=True)
    save_checkpoint(tmp_path / 'model.pt', load_run(run_dir).model, {}, TINY)
    with pytest.raises(ValueError, match='holds no training state'): fit(TINY, IMGS, out_dir=tmp_path, progress=False, resume=True)


def test_resume_of_finished_run_changes_nothing(run_dir):
    before = torch.load(run_dir / 'model.pt', weights_only=True)
    res = fit(TINY, IMGS, out_dir=run_dir, progress=False, device='cpu', resume=True)
    for k, v in before['model'].items(): assert torch.equal(v, res.model.state_dict()[k])


class NanAt:
    "Wraps a task; its loss is NaN from call `at` on."
    def __init__(self, task, at): self.task, self.at, self.calls = task, at, 0
    def __getattr__(self, k): return getattr(self.task, k)
    def loss(self, pred, b):
        self.calls += 1
        return self.task.loss(pred, b) * (float('nan') if self.calls >= self.at else 1.)


def test_nan_loss_stops_keeps_last_good_checkpoint(tmp_path):
    from mtlmad.tasks import make_task
    cfg = TINY.replace(epochs=2)
    ts = {n: make_task(n, cfg) for n in cfg.tasks}; ts['tissue'] = NanAt(ts['tissue'], at=4)
    with pytest.raises(FloatingPointError, match=r"task 'tissue'.*step 3.*last good checkpoint is .*model.pt"):
        fit(cfg, IMGS, out_dir=tmp_path, progress=False, device='cpu', tasks=ts, checkpoint_every=1)
    ck = read_checkpoint(tmp_path)
    assert ck['train']['step'] == 3 and all(torch.isfinite(v).all() for v in ck['model'].values())
    load_run(tmp_path, device='cpu')


# ---------------------------------------------------------------- bad inputs end to end
def _png16(p, a): Image.fromarray(a.astype(np.uint16)).save(p)

def _bad_inputs(d: Path) -> dict:
    "name -> path of an odd or broken image file."
    g = np.random.default_rng(0).integers(0, 256, (40, 48), dtype=np.uint8)
    good = d / 'good.png'; Image.fromarray(g).save(good)
    f = {'good 8-bit grey': good}
    def save(name, im, fn): f[name] = d / fn; im.save(f[name])
    save('16-bit grey', Image.fromarray((g.astype(np.uint16) * 257)), 'i16.png')
    save('RGBA', Image.fromarray(np.dstack([g, g, g, g])), 'rgba.png')
    save('palette', Image.fromarray(g).convert('P'), 'pal.png')
    save('palette with transparency', Image.fromarray(g).convert('P'), 'palt.gif')
    save('CMYK jpeg', Image.fromarray(np.dstack([g] * 4), 'CMYK'), 'cmyk.jpg')
    save('1-bit', Image.fromarray(g > 128), 'bit.png')
    save('LA', Image.fromarray(np.dstack([g, g]), 'LA'), 'la.png')
    save('RGB bmp', Image.fromarray(np.dstack([g] * 3)), 'rgb.bmp')
    save('1x1', Image.fromarray(np.zeros((1, 1), np.uint8)), 'one.png')
    save('4000x4000', Image.fromarray(np.zeros((4000, 4000), np.uint8)), 'big.png')
    save('2x4000 strip', Image.fromarray(np.zeros((2, 4000), np.uint8)), 'strip.png')
    save('constant black', Image.fromarray(np.zeros((40, 48), np.uint8)), 'black.png')
    save('constant white', Image.fromarray(np.full((40, 48), 255, np.uint8)), 'white.png')
    fl = g.astype(np.float32) / 255
    save('float TIFF in [0,1]', Image.fromarray(fl, 'F'), 'float.tif')
    nan = fl.copy(); nan[5:9, 5:9] = np.nan
    save('float TIFF with NaN', Image.fromarray(nan, 'F'), 'nan.tif')
    inf = fl.copy(); inf[0, 0] = np.inf; inf[1, 1] = -np.inf
    save('float TIFF with +-Inf', Image.fromarray(inf, 'F'), 'inf.tif')
    save('float TIFF out of range', Image.fromarray(fl * 1000 - 5, 'F'), 'range.tif')
    for name, fn, data in [('zero-byte file', 'empty.png', b''), ('random bytes', 'noise.png', os.urandom(3000)),
                           ('text named .png', 'text.png', b'hello, not an image\n'),
                           ('truncated PNG', 'trunc.png', good.read_bytes()[:len(good.read_bytes()) // 2]),
                           ('PNG header only', 'hdr.png', good.read_bytes()[:40]),
                           ('truncated JPEG', 'trunc.jpg', None)]:
        f[name] = d / fn
        if data is None:
            Image.fromarray(g).save(d / 'full.jpg'); data = (d / 'full.jpg').read_bytes()[:300]
        f[name].write_bytes(data)
    bomb = d / 'bomb.png'   # a PNG that claims 100000 x 100000 pixels
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bomb)
    b = bytearray(bomb.read_bytes()); b[16:24] = (100000).to_bytes(4, 'big') * 2; bomb.write_bytes(bytes(b))
    f['claims 100000x100000 (bad CRC)'] = bomb
    f['missing file'] = d / 'nope.png'
    (d / 'folder.png').mkdir(); f['a folder named .png'] = d / 'folder.png'
    return f


def _hang(signum, frame): raise TimeoutError('no answer within 60 s (hang)')

def _outcome(fn, path):
    "('ok', output) or (exception name, message); a hang becomes a TimeoutError after 60 s."
    signal.signal(signal.SIGALRM, _hang); signal.alarm(60)
    try:
        out = fn()
        return 'ok', out
    except Exception as e: return type(e).__name__, str(e)
    finally: signal.alarm(0)


# every bad input must end cleanly: it works with finite output, or fails with an error naming the file
KNOWN = {}

@pytest.fixture(scope='module')
def calibrated_run(tmp_path_factory):
    return tiny_calibrated_run(tmp_path_factory.mktemp('cal'), TINY, IMGS)


def test_bad_inputs_end_to_end(tmp_path, calibrated_run):
    from mtlmad.datasets import read_image, AnomalyDataset, Sample
    from mtlmad.jobs import predict_files
    files = _bad_inputs(tmp_path)
    rows, problems = [], []
    for name, p in files.items():
        r = {'input': name}
        for stage, fn in [('read_image', lambda: read_image(p)),
                          ('AnomalyDataset', lambda: AnomalyDataset([Sample(str(p), 0, None, 'train', 'x', 'good')], 32)[0]['image'].numpy()),
                          ('predict_files', lambda: np.array([q.score for q in predict_files(calibrated_run, [p], device='cpu')]))]:
            kind, out = _outcome(fn, p)
            if kind == 'ok':
                finite = bool(np.isfinite(out).all())
                r[stage] = 'ok' if finite else 'ok, NON-FINITE output'
                if not finite: problems.append(f'{name} / {stage}: non-finite output passed through')
            else:
                r[stage] = kind
                if kind not in ('ValueError', 'FileNotFoundError'): problems.append(f'{name} / {stage}: {kind}: {out[:150]}')
                elif p.name not in out: problems.append(f'{name} / {stage}: the error does not name the file: {out[:150]}')
        rows.append(r)
    w = max(len(r['input']) for r in rows)
    print(f"\n{'input':{w}}  {'read_image':22} {'AnomalyDataset':22} predict_files")
    for r in rows: print(f"{r['input']:{w}}  {r['read_image']:22} {r['AnomalyDataset']:22} {r['predict_files']}")
    print(f'{len(rows)} inputs x 3 entry points; problems: {len(problems)}')
    for q in problems: print('  PROBLEM', q)
    unexpected = [q for q in problems if not any(q.startswith(k) for k in KNOWN)]
    assert not unexpected, unexpected
    assert len(rows) >= 25 and sum(r['read_image'] == 'ok' for r in rows) >= 15
    assert rows[0]['predict_files'] == 'ok'


def test_find_samples_on_a_folder_of_bad_files(tmp_path):
    from mtlmad.datasets import find_samples
    (tmp_path / 'src').mkdir()
    files = _bad_inputs(tmp_path / 'src')
    good = tmp_path / 'Brain' / 'train' / 'good'; good.mkdir(parents=True)
    for name, p in files.items():
        if p.is_file(): (good / p.name).write_bytes(p.read_bytes())
    signal.alarm(120)
    try:
        with pytest.raises(ValueError) as e: find_samples(tmp_path / 'Brain', splits=['train'], check='full')
        assert str(good) in str(e.value)
        with pytest.warns(UserWarning, match='skipped'): ss = find_samples(tmp_path / 'Brain', splits=['train'], on_error='skip', check='full')
    finally: signal.alarm(0)
    assert 0 < len(ss) < len(list(good.iterdir()))
    print(f'\nfind_samples(on_error=skip, check=full): kept {len(ss)} of {len(list(good.iterdir()))} files')


def test_scorer_and_fit_on_nan_arrays(calibrated_run):
    from mtlmad.jobs import open_scorer
    x = IMGS[:2].clone(); x[0, 0, 3, 3] = float('nan')
    with pytest.raises(ValueError, match='finite'): fit(TINY, x, progress=False)
    sc = open_scorer(calibrated_run, device='cpu')
    kind, out = _outcome(lambda: sc.score(x).scores, None)
    print(f'\nScorer.score on a batch holding NaN: {kind} {"" if kind == "ok" else out[:120]}')
    assert kind == 'ValueError' or kind == 'ok' and np.isfinite(out[1])


def test_streamed_fit_matches_in_memory(tmp_path):
    sys.path.insert(0, str(ROOT / 'tests'))
    from fixtures import make_bmad
    data = make_bmad(tmp_path, 'Chest', n_train=6, n_valid=(1, 1), n_test=(1, 1))
    a = fit(TINY, data, progress=False, device='cpu', stream=False).model.state_dict()
    b = fit(TINY, data, progress=False, device='cpu', stream=True).model.state_dict()
    for k in a: assert torch.equal(a[k], b[k]), k


def test_predict_refuses_a_decompression_bomb_naming_the_file(tmp_path, calibrated_run, capsys):
    from mtlmad.cli import main
    big = tmp_path / 'huge.png'
    Image.new('L', (14000, 14000)).save(big)   # 196 M pixels: past Pillow's guard against decompression bombs
    assert main(['predict', '--run', str(calibrated_run), str(big), '--out', str(tmp_path / 'out'), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert 'huge.png: the image is too large to read safely' in err and 'Traceback' not in err
    assert not (tmp_path / 'out' / 'scores.json').exists()


def test_open_scorer_scores_the_way_the_run_was_calibrated(tmp_path, calibrated_run):
    """A run keeps its whole ScoringConfig; a run of mtlmad 0.2.1/0.2.2 (only score_sigma saved) keeps its score smoothing;
    a run saved before 0.2.1 (no '_scoring') keeps smoothing by `sigma`."""
    from mtlmad.jobs import open_scorer
    from mtlmad.score import Scorer, ScoringConfig
    assert open_scorer(calibrated_run, device='cpu').scoring == ScoringConfig(fusion_tasks=TINY.fused, lookup='', mirror='')   # calibrated without reference images: no lookup or mirror part (and no feature part by default since 0.2.18)
    res = fit(TINY, IMGS, progress=False, device='cpu')
    sc = Scorer(res.model, res.tasks, device='cpu'); sc.calibrate(IMGS)
    old = {k: v for k, v in sc.norms_dict().items() if k not in ('_scoring', '_features', 'features')}   # no feature part before 0.2.5
    save_checkpoint(tmp_path / 'model.pt', res.model, res.tasks, TINY, norm=old)
    assert open_scorer(tmp_path, device='cpu').score_sigma == 2.0
    assert open_scorer(tmp_path, device='cpu', scoring=dict(sigma=3.0)).score_sigma == 3.0
    v022 = {**old, '_scoring': {'score_sigma': [0.5, 4.0]}}   # 0.2.2 saved only the score smoothing(s)
    save_checkpoint(tmp_path / 'v022' / 'model.pt', res.model, res.tasks, TINY, norm=v022)
    assert open_scorer(tmp_path / 'v022', device='cpu').scoring == ScoringConfig(score_sigma=(0.5, 4.0), fusion_tasks=TINY.fused, features=False, top_parts=0, groups=(), rms_parts=(), lookup='', lookup_map='', mirror='', mirrored=(), score_scales='sum', score_shrink=1, lookup_own_spread=False, distance_trend=False, image_votes='parts')   # the mean of every part, as before 0.2.6; the maxima added, as before 0.2.15, at full resolution, as before 0.2.16; the lookup's z its references' alone, as before 0.2.19; no trend in the distance, as before 0.2.20
    cfg = ScoringConfig(score_sigma=(0.5, 4.0), fusion='max', sigma=1.5, erode=1, ref_sigma=0.5, k=3, floor=0.25, features=True)   # the feature part: off by default since 0.2.18
    multi = Scorer(res.model, res.tasks, device='cpu', scoring=cfg); multi.calibrate(IMGS, IMGS)
    save_checkpoint(tmp_path / 'multi' / 'model.pt', res.model, res.tasks, TINY, norm=multi.norms_dict())
    back = open_scorer(tmp_path / 'multi', device='cpu')
    assert back.scoring == cfg.replace(fusion_tasks=TINY.fused + ('features', 'lookup', 'mirror')) and back.reference.k == 3
    np.testing.assert_array_equal(back.score(IMGS).scores, multi.score(IMGS).scores)
    mean = open_scorer(tmp_path / 'multi', device='cpu', scoring=dict(fusion='mean'))
    assert mean.scoring == back.scoring.replace(fusion='mean')
    np.testing.assert_array_equal(mean.score(IMGS).scores, multi.score(IMGS).refuse(multi.norms, multi.fusion_tasks, fusion='mean', sigma=1.5).scores)
    allp = dict(fusion='mean', fusion_tasks=back.parts, image_votes='parts')   # every part: more than two, each its own vote
    every = open_scorer(tmp_path / 'multi', device='cpu', scoring=dict(allp, top_parts=0))   # a fusion setting: no calibration
    two = open_scorer(tmp_path / 'multi', device='cpu', scoring=allp)
    assert every.top_parts == 0 and two.top_parts == 2 and len(back.parts) > 2
    got, want = every.score(IMGS), two.score(IMGS).refuse(two.norms, back.parts, fusion='mean', sigma=1.5, top=0, votes='parts')
    np.testing.assert_array_equal(got.scores, want.scores); np.testing.assert_array_equal(got.maps, want.maps)
    assert not np.allclose(got.scores, two.score(IMGS).scores)   # the mean of the largest two is not the mean of all
    kinds = open_scorer(tmp_path / 'multi', device='cpu', scoring=dict(fusion='mean'))   # saved since 0.2.21: one vote per kind of part
    assert kinds.image_votes == 'kinds'
    np.testing.assert_array_equal(kinds.score(IMGS).scores, two.score(IMGS).refuse(two.norms, kinds.fusion_tasks, fusion='mean', sigma=1.5, votes='kinds').scores)
    with pytest.raises(ValueError, match='unknown scoring settings'): open_scorer(tmp_path, device='cpu', scoring=dict(sgima=1))
    v026 = {**multi.norms_dict(), '_scoring': {k: v for k, v in multi.norms_dict()['_scoring'].items() if k != 'groups'}}
    save_checkpoint(tmp_path / 'v026' / 'model.pt', res.model, res.tasks, TINY, norm=v026)   # 0.2.6 saved no groups
    three = dict(allp, fusion_tasks=back.parts[:3])   # the pair below and one more part: the pair's vote decides the top two
    alone = open_scorer(tmp_path / 'v026', device='cpu', scoring=three)
    assert alone.groups == () and back.groups == (('inpaint', 'denoise'), ('lookup', 'mirror'))   # every part on its own, as 0.2.6 fused
    pair = (tuple(back.parts[:2]),)   # two of this tiny run's parts counted as one
    one = open_scorer(tmp_path / 'v026', device='cpu', scoring=dict(three, groups=pair))   # a fusion setting: no calibration
    got, want = one.score(IMGS), alone.score(IMGS).refuse(alone.norms, back.parts[:3], 'mean', 1.5, 2, pair)
    np.testing.assert_array_equal(got.scores, want.scores); np.testing.assert_array_equal(got.maps, want.maps)
    assert not np.allclose(got.scores, alone.score(IMGS).scores)   # one vote, not two: another score
    banked = Scorer(res.model, res.tasks, device='cpu', scoring=dict(feature_bank=20, k=3, features=True)); banked.calibrate(IMGS, IMGS)
    save_checkpoint(tmp_path / 'bank' / 'model.pt', res.model, res.tasks, TINY, norm=banked.norms_dict())
    again = open_scorer(tmp_path / 'bank', device='cpu')   # the bank travels with the run
    assert again.scoring.feature_bank == 20 and again.density.bank.shape[0] == 20 and back.density.bank is None
    np.testing.assert_array_equal(again.score(IMGS).task_scores['features'], banked.score(IMGS).task_scores['features'])
    with pytest.raises(ValueError, match='feature_bank changed'): open_scorer(tmp_path / 'multi', device='cpu', scoring=dict(feature_bank=20))
    v027 = {**multi.norms_dict(), '_scoring': {k: v for k, v in multi.norms_dict()['_scoring'].items() if k != 'rms_parts'}}
    save_checkpoint(tmp_path / 'v027' / 'model.pt', res.model, res.tasks, TINY, norm=v027)   # 0.2.7 saved no rms_parts
    assert open_scorer(tmp_path / 'v027', device='cpu').rms_parts == () and back.rms_parts == ('features',)   # the std everywhere, as 0.2.7
    with pytest.raises(ValueError, match='rms_parts changed'): open_scorer(tmp_path / 'multi', device='cpu', scoring=dict(rms_parts=[]))
    plain = Scorer(res.model, res.tasks, device='cpu', scoring=cfg.replace(rms_parts=())); plain.calibrate(IMGS, IMGS)
    got, want = plain.score(IMGS), multi.score(IMGS)
    task = next(t for t in multi.fusion_tasks if t in multi.tasks)   # a fused task: `score` makes the fused parts
    np.testing.assert_array_equal(got.task_scores[task], want.task_scores[task])   # a task's spread is its std either way
    assert (np.abs(want.task_maps['features']) <= np.abs(got.task_maps['features']) + 1e-5).all()   # the rms: a larger spread
    assert not np.allclose(got.task_scores['features'], want.task_scores['features'])


def test_brighter_counts_one_side_of_denoising_and_is_fixed_at_calibration(tmp_path):
    """The option `ScoringConfig.brighter` (0.2.9): denoising's error counts only where the image is brighter than its
    restoration; the reference errors are calibrated with it, so a run keeps it, and a run saved before 0.2.9 counts both sides."""
    from mtlmad.jobs import open_scorer
    from mtlmad.score import Scorer
    cfg = CFG.replace(epochs=1, tasks=('denoise', 'tissue'))
    res = fit(cfg, IMGS, progress=False, device='cpu')
    one, both = (Scorer(res.model, res.tasks, device='cpu', scoring=dict(k=3, mirrored=[], **s)) for s in (dict(brighter=['denoise']), {}))   # the errors as they are, not less their mirror images
    assert one.brighter == ('denoise',) and both.brighter == ()
    e1, e2 = one.errors(IMGS)[0], both.errors(IMGS)[0]
    assert (e1['denoise'] <= e2['denoise'] + 1e-6).all() and e1['denoise'].sum() < e2['denoise'].sum()   # one side of it
    np.testing.assert_array_equal(e1['tissue'], e2['tissue'])   # a task without a sign is as it was
    one.calibrate(IMGS, IMGS)
    save_checkpoint(tmp_path / 'model.pt', res.model, res.tasks, cfg, norm=one.norms_dict())
    assert open_scorer(tmp_path, device='cpu').brighter == ('denoise',)
    with pytest.raises(ValueError, match='brighter changed'): open_scorer(tmp_path, device='cpu', scoring=dict(brighter=[]))
    v028 = {**one.norms_dict(), '_scoring': {k: v for k, v in one.norms_dict()['_scoring'].items() if k != 'brighter'}}
    save_checkpoint(tmp_path / 'v028' / 'model.pt', res.model, res.tasks, cfg, norm=v028)   # 0.2.8 saved no brighter
    assert open_scorer(tmp_path / 'v028', device='cpu').brighter == ()   # both sides, as runs before 0.2.9 were calibrated
    with pytest.raises(ValueError, match="the errors of \\['tissue'\\] have no sign"):
        Scorer(res.model, res.tasks, device='cpu', scoring=dict(brighter=['tissue'])).errors(IMGS)
