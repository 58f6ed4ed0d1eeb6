"""The proxy-task interface of every task, on random tensors: shapes, losses that backpropagate, determinism, state;
the registry, and a new task added the two documented ways (nbs/03g_tasks.registry.ipynb), trained and scored."""
import numpy as np, pytest, torch
from mtlmad.core import ALL_TASKS, DEFAULT_TASKS, TASK_CLASSES, MTLConfig
from mtlmad.tasks import make_task, task_class, register_task, unregister_task, ProxyTask, TaskBatch


def _task(name, c, s):
    task = make_task(name, MTLConfig(channels=c, image_size=s))
    task.fit(torch.rand(4, c, s, s))   # only tissue learns from the images; for the others fit does nothing
    return task


def test_registry():
    for name in ALL_TASKS:   # each line of TASK_CLASSES leads to a task of that name, in the module named after it
        cls = task_class(name)
        assert issubclass(cls, ProxyTask) and cls.name == name and cls.__module__ == f'mtlmad.tasks.{name}'
    assert set(DEFAULT_TASKS) < set(ALL_TASKS)
    with pytest.raises(ValueError, match='unknown task'): make_task('colour')
    with pytest.raises(ValueError, match='unknown task'): MTLConfig(tasks=('toy',))   # no test leaves its toy behind


@pytest.mark.parametrize('s', [32, 64])
@pytest.mark.parametrize('c', [1, 3])
@pytest.mark.parametrize('name', ALL_TASKS)
def test_interface(name, c, s):
    torch.manual_seed(0)
    task = _task(name, c, s)
    assert task.name == name
    _check_interface(task, c, s)


def _check_interface(task, c, s):
    "What every task must do on random images (C channels, S x S)."
    torch.manual_seed(0)
    imgs = torch.rand(3, c, s, s)
    assert task.out_channels >= 1
    b = task.make_batch(imgs, torch.Generator().manual_seed(1))
    assert isinstance(b, TaskBatch) and b.input.shape == imgs.shape and b.input.dtype == torch.float32
    b2 = task.make_batch(imgs, torch.Generator().manual_seed(1))
    assert torch.equal(b.input, b2.input) and torch.equal(b.target, b2.target)
    head = torch.nn.Conv2d(c, task.out_channels, 3, padding=1)
    loss = task.loss(head(b.input), b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    ins = task.inference_inputs(imgs)
    assert all(i.shape == imgs.shape for i in ins)
    assert all(torch.equal(a, b) for a, b in zip(ins, task.inference_inputs(imgs)))
    with torch.no_grad(): preds = [head(i) for i in ins]
    assert all(p.shape == (3, task.out_channels, s, s) for p in preds)
    err = task.error_map(imgs, preds)
    assert err.shape == (3, 1, s, s) and (err >= 0).all() and torch.isfinite(err).all()
    sc = task.score(err)
    assert sc.shape == (3,) and torch.isfinite(sc).all()


@pytest.mark.parametrize('name', ALL_TASKS)
def test_state_round_trip(name, tmp_path):
    imgs = torch.rand(2, 1, 32, 32)
    task = _task(name, 1, 32)
    torch.save(task.state_dict(), tmp_path / 'state.pt')
    fresh = make_task(name, MTLConfig())
    fresh.load_state_dict(torch.load(tmp_path / 'state.pt', weights_only=True))
    preds = [torch.randn(2, task.out_channels, 32, 32) for _ in task.inference_inputs(imgs)]
    assert torch.allclose(task.error_map(imgs, preds), fresh.error_map(imgs, preds))


def test_clean_tasks_share_the_input():
    imgs = torch.rand(2, 1, 32, 32)
    for name in ('jigsaw', 'geometry', 'tissue', 'pseudo_anomaly'):
        assert _task(name, 1, 32).inference_inputs(imgs)[0] is imgs


def test_inpaint_masks_cover_every_pixel_once():
    from mtlmad.tasks.inpaint import checkerboard_masks
    for s in (32, 64, 128): assert torch.equal(checkerboard_masks(s, 8).sum(0), torch.ones(1, s, s))


def test_bad_inputs():
    with pytest.raises(ValueError, match='multiple of 8'): make_task('inpaint').make_batch(torch.rand(1, 1, 36, 36), torch.Generator())
    with pytest.raises(ValueError, match=r'\(N, C, S, S\)'): make_task('jigsaw').make_batch(torch.rand(1, 32, 32), torch.Generator())
    with pytest.raises(RuntimeError, match='call fit'): make_task('tissue').make_batch(torch.rand(1, 1, 32, 32), torch.Generator())


def test_pseudo_anomaly_shares_nothing_with_lesions():
    import inspect, mtlmad.tasks.pseudo_anomaly as pa
    assert not [l for l in inspect.getsource(pa).splitlines() if 'import' in l and 'lesions' in l]


class ToyTask(ProxyTask):
    "A new task for the how-to's test: predict the image upside down."
    name = 'toy'
    def __init__(self, channels: int = 1): self.out_channels = channels
    def make_batch(self, images, generator): return TaskBatch(images, images.flip(-2))
    def loss(self, pred, batch): return ((pred - batch.target) ** 2).mean()
    def error_map(self, images, preds): return ((preds[0] - images.flip(-2)) ** 2).mean(1, keepdim=True)


@pytest.fixture(params=['TASK_CLASSES', 'register_task'])
def toy_task(request):
    "The toy task added by one of the documented routes (a line in the table, or `register_task`), then removed."
    if request.param == 'TASK_CLASSES': TASK_CLASSES['toy'] = f'{__name__}.ToyTask'   # as a line in nbs/00_core.ipynb
    else: register_task(ToyTask)
    yield 'toy'
    unregister_task('toy')
    assert tuple(TASK_CLASSES) == ALL_TASKS


@pytest.mark.parametrize('c', [1, 3])
def test_new_task_passes_the_interface_tests(toy_task, c):
    _check_interface(make_task(toy_task, MTLConfig(channels=c)), c, 32)


def test_new_task_trains_and_scores(toy_task, tmp_path):
    from mtlmad.train import fit
    from mtlmad.checkpoint import load_run
    from mtlmad.score import Scorer
    cfg = MTLConfig(image_size=32, width=8, n_experts=2, steps=2, batch_size=4, warmup_steps=1,
                    tasks=('denoise', toy_task))
    imgs = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    res = fit(cfg, imgs, out_dir=tmp_path, progress=False, device='cpu')
    assert len(res.history['train']) == 2 and type(res.tasks['toy']) is ToyTask
    run = load_run(tmp_path, device='cpu')   # the saved run loads back while the task is known by its name
    scorer = Scorer(run.model, run.tasks, device='cpu')
    scorer.calibrate(imgs[:4])
    out = scorer.score(imgs[4:])
    assert out.task_maps['toy'].shape == (4, 32, 32) and np.isfinite(out.task_scores['toy']).all()
    assert out.maps.shape == (4, 32, 32) and np.isfinite(out.scores).all()
