"""Does every proxy task learn? Each task's loss after training against that of a predictor that learns nothing.

    python bench/task_losses.py [--data DIR | --run RUNFOLDER] [--seeds 0] [--steps 300] [--image-size 128]
                                [--intensity none|percentile] [--max-images 256] [--repeats 8] [--device auto] [--threads N]
                                [--out FILE.json]

For each task of a trained run (--run) or of a model trained here (MTLConfig() defaults but --steps, --image-size,
--intensity and the seed, on the normal training images of --data; default: the demo data built in a temporary folder):
  train      the task's training loss, mean of the last 20 steps of history['train'] (augmented training images)
  held-out   mtlmad.train.valid_losses on held-out normal images: the valid split's normals, else every 10th training
             normal (as train_run holds them out), at most --max-images of them evenly spaced, each entering
             --repeats times with fresh task draws (15 validation slices give 15 rotations to guess: too few for a
             label entropy); batches of 32, task batches drawn from a generator seeded with the training seed + 1
  trivial    the task's own loss (task.loss) on the very same task batches (task.make_batch, same generator, same
             order) of a predictor that learns nothing:
    geometry, jigsaw, tissue  'class frequencies': the best constant class distribution, logits = log of the class
                              frequencies of these targets; its loss is the entropy of the labels (ln 4 = 1.386 for
                              geometry's 4 rotations). jigsaw and tissue, whose labels vary within an image, also
                              'class frequencies per location' (of the training images' targets, add-one smoothed)
    pseudo_anomaly            'constant probability': the logit of the mean target (the constant that is best for the
                              BCE), through the task's BCE + Dice loss
    denoise                   'identity': the noisy input itself
    inpaint                   'mean training image' (per pixel), and 'local mean': the input with each hidden pixel
                              filled by the Gaussian-weighted mean of the visible pixels around it (sigma: half a cell)
  ratio      held-out / trivial; 'learns?' is yes when the ratio is below 0.9
Several --seeds train one model each; the table gives mean ± std over them. Writes FILE.json and FILE.md (default
bench/results/task_losses.json)."""
import argparse, json, os, shlex, shutil, sys, tempfile, time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mtlmad.checkpoint import load_run, read_checkpoint, run_data
from mtlmad.core import INTENSITY, MTLConfig, get_device
from mtlmad.datasets import load_split, make_demo_data
from mtlmad.jobs import reference_subset
from mtlmad.ops import gaussian_blur
from mtlmad.train import fit, valid_losses

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import calibration_images  # noqa: E402

LAST = 20        # training steps averaged for the final training loss
LEARNS = 0.9     # held-out / trivial below this: the task learns
BATCH = 32       # held-out batch size (valid_losses' default)
CLASSIFIERS = ('geometry', 'jigsaw', 'tissue')
PER_LOCATION = ('jigsaw', 'tissue')   # classification tasks whose labels vary within an image


def held_out_batches(tasks: dict, images: torch.Tensor, seed: int, batch_size: int = BATCH) -> list[dict]:
    "The task batches valid_losses(seed=seed) draws: one {task: TaskBatch} per chunk of `batch_size` images."
    gen = torch.Generator().manual_seed(seed)
    return [{n: t.make_batch(images[i:i + batch_size], gen) for n, t in tasks.items()}
            for i in range(0, len(images), batch_size)]


def class_counts(batches: list[dict], name: str, k: int, per_location: bool = False) -> torch.Tensor:
    "How often each of `k` classes is the target of task `name` in `batches`: (k,), or (k, S, S) per location."
    total = 0
    for b in batches:
        t = b[name].target.long().cpu()
        c = F.one_hot(t, k).sum(0).permute(2, 0, 1) if per_location else torch.bincount(t.flatten(), minlength=k)
        total = total + c
    return total.float()


def expand_logits(logits: torch.Tensor, batch) -> torch.Tensor:
    "Class logits (K,) or (K, S, S) as a prediction (B, K, S, S) for every image of `batch`."
    b, s = batch.target.shape[0], batch.target.shape[-1]
    return (logits.view(-1, 1, 1) if logits.ndim == 1 else logits)[None].expand(b, -1, s, s)


def local_mean_fill(batch, grid: int) -> torch.Tensor:
    "Inpainting's input with each hidden pixel replaced by the Gaussian-weighted mean of the visible pixels around it."
    hidden = (batch.weight >= 1).to(batch.input.dtype)   # inpaint's weight: 1 where hidden, visible_weight (< 1) elsewhere
    seen, sigma = 1 - hidden, batch.input.shape[-1] / grid / 2
    mean = gaussian_blur(batch.input * seen, sigma) / gaussian_blur(seen, sigma).clamp_min(1e-6)
    return batch.input * seen + mean * hidden


def trivial_predictors(tasks: dict, held: list[dict], train_batches: list[dict], mean_image: torch.Tensor) -> dict:
    "For each task, {trivial predictor: batch -> prediction}; statistics from the held-out targets or the training images."
    out = {}
    for n, t in tasks.items():
        if n in CLASSIFIERS:
            freq = class_counts(held, n, t.out_channels)
            out[n] = {'class frequencies': partial(expand_logits, (freq / freq.sum()).clamp_min(1e-12).log())}
            if n in PER_LOCATION:
                c = class_counts(train_batches, n, t.out_channels, per_location=True) + 1
                out[n]['class frequencies per location'] = partial(expand_logits, (c / c.sum(0)).log())
        elif n == 'pseudo_anomaly':
            p = float(sum(b[n].target.float().sum() for b in held) / sum(b[n].target.numel() for b in held))
            p = min(max(p, 1e-6), 1 - 1e-6)
            out[n] = {'constant probability': lambda b, z=float(np.log(p / (1 - p))): torch.full(b.target.shape, z)}
        elif n == 'denoise': out[n] = {'identity': lambda b: b.input}
        elif n == 'inpaint':
            if t.visible_weight >= 1: raise ValueError('inpaint: with visible_weight >= 1 hidden pixels cannot be told apart')
            out[n] = {'mean training image': lambda b: mean_image.expand_as(b.target),
                      'local mean': partial(local_mean_fill, grid=t.grid)}
        else: out[n] = {}   # a task this script has no trivial predictor for: its row says so
    return out


@torch.no_grad()
def trivial_losses(tasks: dict, held: list[dict], predictors: dict) -> dict:
    "{task: {trivial: loss}}: each task's own loss of each trivial prediction, averaged over images as valid_losses does."
    n_images = sum(len(next(iter(b.values())).input) for b in held)
    out = {n: {k: 0. for k in preds} for n, preds in predictors.items()}
    for b in held:
        for n, preds in predictors.items():
            for k, f in preds.items():
                out[n][k] += tasks[n].loss(f(b[n]).float(), b[n]).item() * len(b[n].input) / n_images
    return out


@torch.no_grad()
def model_losses(model, tasks: dict, held: list[dict], device) -> dict:
    "{task: loss} of the model on the batches of `held_out_batches`: the check that they are valid_losses' batches."
    model.eval()
    n_images = sum(len(next(iter(b.values())).input) for b in held)
    out = {n: 0. for n in tasks}
    for b in held:
        preds = model.forward_tasks({n: x.input.to(device) for n, x in b.items()})
        for n in tasks: out[n] += tasks[n].loss(preds[n].float(), b[n].to(device)).item() * len(b[n].input) / n_images
    return out


def final_train_loss(history: dict, task: str, last: int = LAST) -> float:
    "Mean training loss of `task` over the last `last` steps of a fit history."
    vals = [r[task] for r in history.get('train', []) if task in r][-last:]
    return float(np.mean(vals)) if vals else float('nan')


def measure(model, tasks: dict, cfg: MTLConfig, history: dict, train_x: torch.Tensor, held_x: torch.Tensor,
            device, seed: int) -> dict:
    "One model: {task: {'train', 'held_out', 'same_batches', 'trivial': {name: loss}}}."
    held = held_out_batches(tasks, held_x, seed)
    train_batches = held_out_batches(tasks, reference_subset(train_x, 256), seed + 1)   # for the per-location priors
    preds = trivial_predictors(tasks, held, train_batches, train_x.float().mean(0, keepdim=True))
    triv = trivial_losses(tasks, held, preds)
    ho = valid_losses(model, tasks, cfg, held_x.to(device), batch_size=BATCH, seed=seed)
    check = model_losses(model, tasks, held, device)
    same = {n: abs(check[n] - ho[n]) <= 1e-4 * max(1, abs(ho[n])) for n in tasks}
    return {n: dict(train=final_train_loss(history, n), held_out=ho[n], same_batches=same[n], trivial=triv[n]) for n in tasks}


def rows(per_seed: list[dict]) -> list[dict]:
    "One row per task and trivial predictor: mean and std over seeds of each loss, the ratio and the verdict."
    out = []
    for n, first in per_seed[0].items():
        for k in (first['trivial'] or {'-': None}):
            get = lambda f: np.array([f(m[n]) for m in per_seed], float)
            tr, ho = get(lambda r: r['train']), get(lambda r: r['held_out'])
            tv = get(lambda r: r['trivial'][k]) if k != '-' else np.full(len(per_seed), np.nan)
            ratio = ho / tv
            out.append(dict(task=n, trivial_predictor=k, train=tr.mean(), train_std=tr.std(), held_out=ho.mean(),
                            held_out_std=ho.std(), trivial=tv.mean(), trivial_std=tv.std(), ratio=ratio.mean(),
                            learns=None if k == '-' else bool(np.all(ratio < LEARNS)),
                            same_batches=all(m[n]['same_batches'] for m in per_seed)))
    return out


def markdown_table(rows: list[dict]) -> str:
    "The rows as a markdown table."
    f = lambda m, s, n: f'{m:.4f}' + (f' ± {s:.4f}' if n > 1 else '')
    n = rows[0].get('n_seeds', 1) if rows else 1
    lines = ['| task | trivial predictor | final train loss | held-out loss | trivial loss | held-out / trivial | learns? |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        learns = '-' if r['learns'] is None else ('yes' if r['learns'] else '**no**')
        lines.append(f"| {r['task']} | {r['trivial_predictor']} | {f(r['train'], r['train_std'], n)} | "
                     f"{f(r['held_out'], r['held_out_std'], n)} | {f(r['trivial'], r['trivial_std'], n)} | "
                     f"{r['ratio']:.3f} | {learns} |")
    return '\n'.join(lines)


def write(out: Path, r: dict) -> str:
    "Write FILE.json and FILE.md; returns the markdown."
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=1) + '\n')
    s = r['settings']
    text = (f"# Does every proxy task learn?\n\nCommand: `{r['command']}`  \n"
            f"Data: {s['data']} ({s['n_train']} training normals; held-out: {s['n_held_out']} {s['held_out_from']}, "
            f"each {s['repeats']} times with fresh task draws). "
            f"Model: {s['model']}. Device {s['device']} ({s['machine']}), {s['threads']} torch thread(s).\n\n"
            f"Final train loss: mean of the last {LAST} training steps (augmented training images). Held-out loss: "
            f"`mtlmad.train.valid_losses`. Trivial loss: the task's own loss of a predictor that learns nothing, on the same "
            f"held-out task batches. 'learns?': held-out / trivial < {LEARNS}"
            + (f" for every seed; mean ± std over {len(s['seeds'])} seeds" if len(s['seeds']) > 1 else '') + ".\n\n"
            f"{markdown_table(r['rows'])}\n")
    if not all(x['same_batches'] for x in r['rows']):
        text += ("\n**Warning:** the model's loss on the regenerated batches differs from valid_losses: "
                 "the trivial losses were not measured on the same batches.\n")
    out.with_suffix('.md').write_text(text)
    return text


def saved_models(a, argv) -> str:
    "The table for models saved by `bench/ablate.py --save`, each measured on the valid normals of the folder before it."
    if a.threads: torch.set_num_threads(a.threads)
    per_seed, data = [], None
    for arg in a.saved:
        if Path(arg).is_dir(): data = arg; continue
        if data is None: raise SystemExit(f'--saved: a data folder must come before {arg}')
        ck = torch.load(arg, weights_only=False)   # our own files, written by bench/ablate.py --save
        cfg = MTLConfig.from_dict(ck['cfg'])
        prep = dict(image_size=cfg.image_size, channels=cfg.channels, intensity=cfg.intensity)
        train_x = load_split(data, 'train', normal_only=True, **prep).images
        held = reference_subset(load_split(data, 'valid', normal_only=True, **prep).images, a.max_images)
        per_seed.append(measure(ck['model'], ck['tasks'], cfg, {}, train_x, held.repeat(max(1, a.repeats), 1, 1, 1), 'cpu', cfg.seed + 1))
    rs = rows(per_seed)
    text = (f"# Does every proxy task learn?\n\nCommand: `python bench/task_losses.py {shlex.join(sys.argv[1:] if argv is None else argv)}`  \n"
            f"{len(per_seed)} saved model(s); held-out images: each data folder's valid normals, each {max(1, a.repeats)} times "
            f"with fresh task draws. Training losses were not saved with these models (nan). 'learns?': held-out / trivial < {LEARNS} "
            f"for every model; mean over the models.\n\n{markdown_table(rs)}\n")
    print(text)
    if a.out: a.out.parent.mkdir(parents=True, exist_ok=True); a.out.with_suffix('.md').write_text(text)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', type=Path, default=None, help='dataset folder (BMAD or MVTec layout); default: demo data')
    ap.add_argument('--run', type=Path, default=None, help='a trained run folder (or model.pt) to measure instead of training')
    ap.add_argument('--seeds', default='0', help='training seeds, one model each (ignored with --run)')
    ap.add_argument('--steps', type=int, default=None, help='optimiser steps (default: MTLConfig().steps)')
    ap.add_argument('--image-size', type=int, default=128)
    ap.add_argument('--intensity', default='none', choices=INTENSITY, help='input preparation (MTLConfig.intensity)')
    ap.add_argument('--max-images', type=int, default=256, help='held-out images used at most (evenly spaced)')
    ap.add_argument('--repeats', type=int, default=8, help='each held-out image enters this many times, with fresh task draws')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default); 1 on a busy shared CPU')
    ap.add_argument('--out', type=Path, default=None)
    ap.add_argument('--saved', nargs='+', default=None, metavar='DATA MODEL.pt',
                    help='models saved by bench/ablate.py --save, each after its data folder (DATA m.pt ... DATA m.pt ...): '
                         'held-out images = each folder\'s valid normals; their training losses were not saved (nan)')
    a = ap.parse_args(argv)
    if a.saved: return saved_models(a, argv)
    if a.threads: torch.set_num_threads(a.threads)
    dev, t0 = get_device(a.device), time.time()
    out = a.out or Path(__file__).parent / 'results' / 'task_losses.json'
    say = lambda *m: print(f'[{time.time() - t0:7.1f}s]', *m, flush=True)
    run = load_run(a.run, device=dev) if a.run else None
    data = a.data or (run_data(a.run) if run else None)
    if run and data is None: ap.error(f'--run {a.run}: the run records no data folder; give --data')
    tmp = None
    if data is None:
        tmp = Path(tempfile.mkdtemp(prefix='mtlmad-bench-'))
        data = make_demo_data(tmp / 'data', image_size=a.image_size, seed=0)
        data_name = f'demo data from the embedded MRI (make_demo_data, image_size={a.image_size}, seed=0, brain only)'
    else:
        if not Path(data).is_dir(): ap.error(f'data folder {data}: no such folder')
        data_name = str(data)
    steps = {'steps': a.steps} if a.steps else {}
    cfg = run.cfg if run else MTLConfig(image_size=a.image_size, intensity=a.intensity, **steps)
    train = load_split(data, 'train', cfg.image_size, cfg.channels if run else None, normal_only=True, intensity=cfg.intensity)
    cfg = cfg.replace(channels=train.images.shape[1])
    train_x, held_x = calibration_images(data, train, cfg.image_size, cfg.channels, cfg.intensity)
    from_valid = len(train_x) == len(train)
    held_x = reference_subset(held_x, a.max_images)
    n_held, held_x = len(held_x), held_x.repeat(max(1, a.repeats), 1, 1, 1)
    if tmp: shutil.rmtree(tmp, ignore_errors=True)   # the demo data are in memory now
    seeds = [run.cfg.seed] if run else [int(s) for s in a.seeds.split(',')]
    per_seed = []
    for seed in seeds:
        if run:
            model, tasks, history = run.model, run.tasks, read_checkpoint(a.run).get('history') or {}
        else:
            res = fit(cfg.replace(seed=seed), train_x, device=dev, progress=False)
            model, tasks, history = res.model, res.tasks, res.history
            say(f'seed {seed}: trained {len(history["train"])} steps')
        per_seed.append(measure(model, tasks, cfg, history, train_x, held_x, dev, seed + 1))
    rs = rows(per_seed)
    for r in rs: r['n_seeds'] = len(seeds)
    machine = (torch.cuda.get_device_name(dev) if dev.type == 'cuda'
               else f'{os.cpu_count()} CPU(s), load {[round(x, 2) for x in os.getloadavg()]}')
    model_desc = (f'the run {a.run}' if run else 'trained here, MTLConfig() defaults') + \
                 f' ({cfg.image_size} px, {cfg.total_steps(len(train_x))} steps, tasks {", ".join(cfg.tasks)})'
    r = dict(command='python bench/task_losses.py ' + shlex.join(sys.argv[1:] if argv is None else argv),
             settings=dict(data=data_name, run=str(a.run) if a.run else None, model=model_desc, seeds=seeds,
                           n_train=len(train_x), n_held_out=n_held, repeats=max(1, a.repeats),
                           held_out_from='valid split normals' if from_valid else 'every 10th training normal',
                           device=str(dev), machine=machine, threads=torch.get_num_threads(), config=cfg.to_dict()),
             rows=rs, per_seed={str(s): m for s, m in zip(seeds, per_seed)}, wall_s=round(time.time() - t0, 1))
    text = write(out, r)
    print('\n' + text)
    print(f'wrote {out} and {out.with_suffix(".md")} ({time.time() - t0:.0f} s)')
    return r


if __name__ == '__main__':
    main()
