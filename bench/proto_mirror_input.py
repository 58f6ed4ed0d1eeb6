"""Prototype (not in the package; measured and not taken, bench/ablation.md "After 0.2.18"): the model sees each input
beside its own mirror image, a learned use of symmetry.

    python bench/proto_mirror_input.py [--clean] [--only TASK[,TASK]] ABLATE_ARGS ...   (the arguments of bench/ablate.py, e.g. --name L90_mirror_in --data D --seeds 0)
    python bench/proto_mirror_input.py --rescore RUN ...           (a run trained here, scored again as bench/ablate.py does)

The joint model takes two channels per image channel: the task's input, and that input reflected about the midline of
the clean image (`mtlmad.mirror.find_midlines`, searched once per training batch after augmentation and once per
scored batch). A task that corrupts its input (noise, pasted pseudo-anomalies, hidden patches) corrupts it before the
reflection, so at training the mirror channel holds the corruption on the other side, as a lesion's mirror image does
at test. The geometry task's input is rotated: its mirror channel is the clean image's reflection, rotated alike.
`--clean`: at training every task's mirror channel is the clean image's reflection instead (the corruption on one side
only, as though the other side were known to be normal; at test the mirror channel still holds a lesion's mirror image).
At scoring, both ways, every inference input is given beside its own reflection (for the fused tasks that input is the
clean image). The prototype searches each scored batch's midlines for the model and again for the mirror part (the
package version on the branch `mirror-input` searches once for both). The midline search adds no measurable training
time (LGG: 810-838 s a model against 825-949 s).
Everything else is `bench/ablate.py` as it is: training, calibration, scoring, the log line. A run trained here keeps
the package's config (one channel): it loads only under `patched`, as `--rescore` here does."""
import contextlib, dataclasses, sys
from pathlib import Path

import torch

import mtlmad.checkpoint as checkpoint
import mtlmad.moe as moe
import mtlmad.score as score
import mtlmad.train as train
from mtlmad.mirror import find_midlines, reflect
from mtlmad.tasks.geometry import apply_transform


def _mirrored(x, thetas):
    "x (B, C, S, S) beside its reflection by thetas: (B, 2C, S, S)."
    return torch.cat([x, reflect(x.detach().float().cpu(), thetas).to(x.device, x.dtype)], 1)


class MirrorInputModel(moe.MTLModel):
    "The joint model with twice the image channels: each input and its mirror image (`thetas`, set before a forward)."
    def __init__(self, cfg, out_channels):
        super().__init__(cfg.replace(channels=2 * cfg.channels), out_channels)
        self.thetas = None

    def forward_tasks(self, inputs, heads=None):
        c, done = self.cfg.channels // 2, {}
        def two(t, x):
            if x.shape[1] != c: return x   # already given with its mirror channel (training)
            key = id(x), seeing(t)
            if key not in done:
                if not key[1]: done[key] = torch.cat([x, torch.zeros_like(x)], 1)   # `--only`: this task's mirror channel is empty
                elif self.thetas is None: raise RuntimeError('MirrorInputModel: no midlines set for these inputs')
                else: done[key] = _mirrored(x, self.thetas)
            return done[key]
        return super().forward_tasks({t: two(t, x) for t, x in inputs.items()}, heads)


CLEAN = False   # `--clean`: every task's mirror channel at training is the clean image's reflection
ONLY = None   # `--only a,b`: the tasks that see a mirror image; every other task's mirror channel is zeros (None: every task)

def seeing(task: str) -> bool: return ONLY is None or task in ONLY

class _WithMirror:
    "A task whose training batches carry the mirror channel, made by `add` from the batch; everything else is the task's."
    def __init__(self, task, add): self.task, self.add = task, add
    def __getattr__(self, name): return getattr(self.task, name)
    def make_batch(self, images, generator):
        b = self.task.make_batch(images, generator)
        return dataclasses.replace(b, input=self.add(b))


_step_losses = train._step_losses

def step_losses(model, tasks, cfg, images, gen, fwd=None, rows=None):
    "`mtlmad.train._step_losses` with every task input beside its mirror image about the clean images' midlines (searched once)."
    thetas = find_midlines(images)
    clean = reflect(images.detach().float().cpu(), thetas).to(images.device, images.dtype)
    done = {}
    def add(n, b):
        if not seeing(n): return torch.cat([b.input, torch.zeros_like(b.input)], 1)
        if n == 'geometry': return torch.cat([b.input, apply_transform(clean, b.target[:, 0, 0])], 1)   # turned as its input
        if id(b.input) not in done:   # tasks given one input share one two-channel input (one stem pass); the input is kept, so its id stays its own
            done[id(b.input)] = b.input, torch.cat([b.input, clean], 1) if CLEAN else _mirrored(b.input, thetas)
        return done[id(b.input)][1]
    wrapped = {n: _WithMirror(t, lambda b, n=n: add(n, b)) for n, t in tasks.items()}
    return _step_losses(model, wrapped, cfg, images, gen, fwd, rows)


_task_errors = score.task_errors

def task_errors(model, tasks, images, *args, **kwargs):
    "`mtlmad.score.task_errors` with the batch's midlines set on the model."
    model.thetas = find_midlines(images)
    try: return _task_errors(model, tasks, images, *args, **kwargs)
    finally: model.thetas = None


@contextlib.contextmanager
def patched(clean: bool = False, only=None):
    "mtlmad with the model that sees mirror images (`only`: these tasks alone), for training, loading and scoring; as it was again afterwards."
    global CLEAN, ONLY
    saved = (train.MTLModel, checkpoint.MTLModel, train._step_losses, score.task_errors, CLEAN, ONLY)
    train.MTLModel = checkpoint.MTLModel = MirrorInputModel
    train._step_losses, score.task_errors, CLEAN, ONLY = step_losses, task_errors, clean, (None if only is None else tuple(only))
    try: yield
    finally: train.MTLModel, checkpoint.MTLModel, train._step_losses, score.task_errors, CLEAN, ONLY = saved


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    import ablate
    clean = '--clean' in sys.argv
    if clean: sys.argv.remove('--clean')
    only = None
    if '--only' in sys.argv:
        i = sys.argv.index('--only'); only = sys.argv[i + 1].split(','); del sys.argv[i:i + 2]
    with patched(clean, only): ablate.main()
