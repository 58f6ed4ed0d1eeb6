"Tests of mtlmad.moe: shapes, gates, top-k, shared forward, routing statistics, batch independence."
import numpy as np
import pytest
import torch

from mtlmad.core import MTLConfig
from mtlmad.moe import MTLModel

OUT = {'inpaint': 1, 'jigsaw': 4, 'geometry': 8, 'tissue': 3, 'pseudo_anomaly': 1}


def model(**kw):
    torch.manual_seed(0)
    m = MTLModel(MTLConfig(**{'image_size': 32, 'width': 8, 'n_experts': 3, **kw}), OUT)
    for b in m.blocks:  # experts start as the identity; make them do something
        for e in b.experts: torch.nn.init.normal_(e.f[-1].weight)
    return m.eval()


@pytest.mark.parametrize('s,c', [(64, 1), (128, 3), (32, 1)])
def test_shapes_all_tasks(s, c):
    m = model(channels=c, image_size=s)
    x = torch.rand(2, c, s, s)
    with torch.no_grad(): out = m.forward_tasks({t: x for t in OUT})
    for t, ch in OUT.items(): assert out[t].shape == (2, ch, s, s)


def test_gates_sum_to_one_and_stats():
    m = model()
    with torch.no_grad(): m(torch.rand(3, 1, 32, 32), 'tissue')
    g = m.last_gates['tissue']
    assert g.shape == (3, 2, 3)
    torch.testing.assert_close(g.sum(-1), torch.ones(3, 2))
    st = m.routing_stats()
    assert set(st) == set(OUT) and st['tissue'].shape == (2, 3)
    np.testing.assert_allclose(st['tissue'], g.mean(0).numpy(), atol=1e-6)
    assert np.isnan(st['jigsaw']).all()  # no forward for this task yet
    m.reset_routing_stats()
    assert np.isnan(m.routing_stats()['tissue']).all()


def test_topk_zeroes_rest_and_aux_loss():
    m = model(top_k=1)
    with torch.no_grad(): m(torch.rand(4, 1, 32, 32), 'inpaint')
    g = m.last_gates['inpaint']
    assert ((g > 0).sum(-1) == 1).all()
    torch.testing.assert_close(g.sum(-1), torch.ones(4, 2))
    assert m.aux_loss.item() > 0
    dense = model(top_k=0)
    with torch.no_grad(): dense(torch.rand(4, 1, 32, 32), 'inpaint')
    assert dense.aux_loss.item() == 0


def test_aux_loss_has_gradient():
    m = model(top_k=2).train()
    m.forward_tasks({'inpaint': torch.rand(4, 1, 32, 32)})
    m.aux_loss.backward()
    assert m.blocks[0].gates['inpaint'].proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('top_k', [0, 2])
def test_forward_tasks_equals_separate_calls(top_k):
    m = model(top_k=top_k)
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    inputs = {'inpaint': x, 'tissue': x, 'jigsaw': y, 'geometry': x}
    with torch.no_grad():
        joint = m.forward_tasks(inputs)
        for t, inp in inputs.items(): torch.testing.assert_close(joint[t], m(inp, t), atol=1e-5, rtol=1e-4)


def test_batch_independence():
    "GroupNorm: an image's output does not depend on the other images in the batch (also with top-k)."
    for top_k in (0, 1):
        m = model(top_k=top_k)
        x = torch.rand(5, 1, 32, 32)
        with torch.no_grad():
            full = m(x, 'tissue')
            alone = m(x[2:3], 'tissue')
            other = m(torch.cat([x[2:3], torch.rand(3, 1, 32, 32)]), 'tissue')[:1]
        torch.testing.assert_close(full[2:3], alone, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(other, alone, atol=1e-5, rtol=1e-4)


def test_single_expert_and_task_subset():
    m = MTLModel(MTLConfig(image_size=32, width=8, n_experts=1), {'inpaint': 1, 'tissue': 2})
    assert m.tasks == ['inpaint', 'tissue'] and 'jigsaw' not in m.heads
    with torch.no_grad(): out = m(torch.rand(2, 1, 32, 32), 'tissue')
    assert out.shape == (2, 2, 32, 32)
    torch.testing.assert_close(m.last_gates['tissue'], torch.ones(2, 2, 1))
    assert m.n_params < model().n_params
    assert 'total' in m.describe() and '1 expert' in m.describe()
    with pytest.raises(KeyError, match='unknown task'): m(torch.rand(1, 1, 32, 32), 'jigsaw')
    with pytest.raises(ValueError, match='expected input'): m(torch.rand(1, 1, 30, 30), 'inpaint')


def test_channels_last_same_output():
    m = model()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a = m(x, 'geometry')
        m2 = m.to(memory_format=torch.channels_last)
        b = m2(x.contiguous(memory_format=torch.channels_last), 'geometry')
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
