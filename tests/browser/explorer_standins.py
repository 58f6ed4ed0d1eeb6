"""Stand-ins for a trained run, shared by tests/test_widgets.py and tests/browser/explorer.ipynb.

A smoothing 'model' with `forward_tasks` and per-image `last_gates`, three tasks reading its output, and
synthetic tissue patches where every other one holds a bright or dark blob (with its mask)."""
import numpy as np
import torch
import torch.nn.functional as F

from mtlmad.score import Scorer, ScoringConfig


class StandInModel(torch.nn.Module):
    "Predicts a smoothed copy of its input for every task; gates from image statistics; counts its calls."
    def __init__(self, tasks, n_blocks=2, n_experts=4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(len(tasks), n_blocks, n_experts, 3, generator=g))
        self.tasks, self.calls, self.last_gates = list(tasks), 0, {}

    def forward_tasks(self, inputs):
        self.calls += 1
        out = {}
        for t, x in inputs.items():
            f = torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), torch.ones(len(x), device=x.device)], 1)
            self.last_gates[t] = torch.softmax(8 * torch.einsum('nef,bf->bne', self.w[self.tasks.index(t)], f), -1)
            out[t] = F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
        return out


class StandInTask:
    "Error from the smoothed prediction: 'detail' (what smoothing lost), 'bright' or 'dark' (its intensity)."
    def __init__(self, kind): self.name = kind
    def inference_inputs(self, x): return [x]

    def error_map(self, x, preds):
        if self.name == 'detail': return (x - preds[0]).abs().mean(1, keepdim=True)
        p = preds[0].mean(1, keepdim=True)
        return p if self.name == 'bright' else 1 - p

    def score(self, err): return err.flatten(1).topk(max(1, err[0].numel() // 100), 1).values.mean(1)


def tissue_images(n=24, size=64, seed=0, anomalous=True, channels=1):
    "Synthetic tissue patches (n,channels,size,size); with `anomalous`, odd ones hold a blob: images, masks, labels."
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    for _ in range(3): x = F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    x = 0.3 + 0.3 * (x - lo) / (hi - lo) + 0.02 * torch.rand(n, 1, size, size, generator=g)
    yy, xx = np.mgrid[:size, :size]
    rng, masks = np.random.default_rng(seed), np.zeros((n, size, size), bool)
    labels = np.arange(n) % 2 if anomalous else np.zeros(n, int)
    for i in np.flatnonzero(labels):
        (cy, cx), r = rng.uniform(0.25, 0.75, 2) * size, rng.uniform(0.05, 0.1) * size
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        x[i, 0][torch.from_numpy(masks[i])] = 0.9 if i % 4 == 1 else 0.05
    return x.clamp(0, 1).repeat(1, channels, 1, 1), masks, labels


def make_scorer(size=64, channels=1, kinds=('detail', 'bright', 'dark')):
    "A calibrated `Scorer` over the stand-in model and tasks (its model counts calls)."
    tasks = {k: StandInTask(k) for k in kinds}
    scorer = Scorer(StandInModel(tasks), tasks, device='cpu', scoring=ScoringConfig(foreground_only=False))   # synthetic slices: no tissue border to find
    scorer.calibrate(tissue_images(16, size, seed=1, anomalous=False, channels=channels)[0])
    return scorer
