"The proxy-task interface of every task, on random tensors: shapes, losses that backpropagate, determinism, state."
import pytest, torch
from mtlmad.core import ALL_TASKS, MTLConfig
from mtlmad.tasks import make_task, TASKS, TaskBatch


def _task(name, c, s):
    task = make_task(name, MTLConfig(channels=c, image_size=s))
    if name == 'tissue': task.fit(torch.rand(4, c, s, s))
    return task


def test_registry():
    assert sorted(TASKS) == sorted(ALL_TASKS)
    with pytest.raises(ValueError, match='unknown task'): make_task('colour')


@pytest.mark.parametrize('s', [32, 64])
@pytest.mark.parametrize('c', [1, 3])
@pytest.mark.parametrize('name', ALL_TASKS)
def test_interface(name, c, s):
    torch.manual_seed(0)
    imgs = torch.rand(3, c, s, s)
    task = _task(name, c, s)
    assert task.name == name and task.out_channels >= 1
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
