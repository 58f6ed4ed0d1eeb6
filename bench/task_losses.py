"""Does every proxy task learn? Each task's loss after training against that of a predictor that learns nothing.

    python bench/task_losses.py [--data DIR | --run RUN [RUN ...]] [--seeds 0] [--steps 300] [--image-size 128]
                                [--intensity none|percentile] [--max-images 256] [--repeats 8] [--device auto] [--threads N]
                                [--out FILE.json]

For each task of trained runs (--run: run folders, e.g. kept by `bench/ablate.py --runs`, each measured on its own
data) or of models trained here as run folders by `mtlmad.jobs.train_run` (MTLConfig() defaults but --steps,
--image-size, --intensity and the seed, on the normal training images of --data; default: the demo data built in a
temporary folder):
  train      the task's training loss, mean of the last 20 steps of history['train'] (augmented training images)
  held-out   mtlmad.train.valid_losses on held-out normal images: those `mtlmad.jobs.calibration_split` gives
             train_run (the valid split's normals, else every 10th training normal), at most --max-images of them
             evenly spaced, each entering --repeats times with fresh task draws (15 validation slices give 15
             rotations to guess: too few for a label entropy); batches of 32, task batches drawn from a generator
             seeded with the training seed + 1
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
Several --seeds (or --run folders) give one model each; the table gives mean ± std over them. Writes FILE.json and
FILE.md (default bench/results/task_losses.json)."""
import argparse, json, os, shlex, shutil, sys, tempfile, time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mtlmad.checkpoint import load_run, read_checkpoint, run_data
from mtlmad.core import INTENSITY, MTLConfig, get_device
from mtlmad.data.brain import make_demo_data
from mtlmad.crop import tissue_crop
from mtlmad.data.loading import load_images
from mtlmad.jobs import calibration_split, reference_subset, train_run
from mtlmad.ops import gaussian_blur
from mtlmad.train import valid_losses

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


def held_out_images(data, cfg: MTLConfig, max_images: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    "(training normals, at most `max_images` held-out normals evenly spaced, where those come from), as `train_run` split them."
    train, held, held_from = calibration_split(data, cfg)
    return load_images(train, cfg), reference_subset(held, max_images), held_from


def train_runs(data, cfg: MTLConfig, seeds: list[int], runs: Path, device, say) -> list[Path]:
    "One run folder per seed, trained by `mtlmad.jobs.train_run` (what `mtlmad train` does)."
    out = []
    for seed in seeds:
        out.append(train_run(data, runs / f's{seed}', cfg.replace(seed=seed), device=device, progress=False))
        say(f'seed {seed}: trained {len(read_checkpoint(out[-1])["history"]["train"])} steps')
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', type=Path, default=None, help="dataset folder (BMAD or MVTec layout); default: demo data (with --run: each run's own)")
    ap.add_argument('--run', type=Path, nargs='+', default=None, metavar='RUN',
                    help='trained run folders (or model.pt) to measure instead of training, each on its own data (e.g. bench/ablate.py --runs)')
    ap.add_argument('--seeds', default='0', help='training seeds, one model each (ignored with --run)')
    ap.add_argument('--steps', type=int, default=None, help='optimiser steps (default: the default schedule, which grows with the training images)')
    ap.add_argument('--image-size', type=int, default=128)
    ap.add_argument('--intensity', default='none', choices=INTENSITY, help='input preparation (MTLConfig.intensity)')
    ap.add_argument('--max-images', type=int, default=256, help='held-out images used at most (evenly spaced)')
    ap.add_argument('--repeats', type=int, default=8, help='each held-out image enters this many times, with fresh task draws')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default); 1 on a busy shared CPU')
    ap.add_argument('--out', type=Path, default=None)
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    dev, t0 = get_device(a.device), time.time()
    out = a.out or Path(__file__).parent / 'results' / 'task_losses.json'
    say = lambda *m: print(f'[{time.time() - t0:7.1f}s]', *m, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix='mtlmad-bench-'))
    try:
        if a.run:
            runs, datas = a.run, [a.data or run_data(r) for r in a.run]
            missing = [str(r) for r, d in zip(runs, datas) if d is None]
            if missing: ap.error(f'--run {", ".join(missing)}: the run records no data folder; give --data')
            data_name = str(datas[0]) if len(set(datas)) == 1 else ', '.join(dict.fromkeys(map(str, datas)))
        else:
            data = a.data or make_demo_data(tmp / 'data', image_size=a.image_size, seed=0)
            if not Path(data).is_dir(): ap.error(f'data folder {data}: no such folder')
            data_name = str(a.data) if a.data else f'demo data from the embedded MRI (make_demo_data, image_size={a.image_size}, seed=0, brain only)'
            cfg = MTLConfig(image_size=a.image_size, intensity=a.intensity, **({'steps': a.steps} if a.steps else {}))
            runs = train_runs(data, cfg, [int(s) for s in a.seeds.split(',')], tmp / 'runs', dev, say)
            datas = [data] * len(runs)
        per_seed, seeds = [], []
        for run, data in zip(runs, datas):
            r = load_run(run, device=dev)
            train_x, held_x, held_from = held_out_images(data, r.cfg, a.max_images)
            if r.cfg.crop: train_x, held_x = tissue_crop(train_x)[0], tissue_crop(held_x)[0]   # a cropped run: the images its model sees
            history = read_checkpoint(run).get('history') or {}
            per_seed.append(measure(r.model, r.tasks, r.cfg, history, train_x, held_x.repeat(max(1, a.repeats), 1, 1, 1), dev, r.cfg.seed + 1))
            seeds.append(r.cfg.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cfg = r.cfg
    rs = rows(per_seed)
    for x in rs: x['n_seeds'] = len(per_seed)
    machine = (torch.cuda.get_device_name(dev) if dev.type == 'cuda'
               else f'{os.cpu_count()} CPU(s), load {[round(x, 2) for x in os.getloadavg()]}')
    model_desc = (f'the run(s) {", ".join(map(str, a.run))}' if a.run else 'trained here by mtlmad.jobs.train_run, MTLConfig() defaults') + \
                 f' ({cfg.image_size} px, {cfg.total_steps(len(train_x))} steps, tasks {", ".join(cfg.tasks)})'
    r = dict(command='python bench/task_losses.py ' + shlex.join(sys.argv[1:] if argv is None else argv),
             settings=dict(data=data_name, run=[str(x) for x in a.run] if a.run else None, model=model_desc, seeds=seeds,
                           n_train=len(train_x), n_held_out=len(held_x), repeats=max(1, a.repeats),
                           held_out_from=held_from, device=str(dev), machine=machine, threads=torch.get_num_threads(),
                           config=cfg.to_dict()),
             rows=rs, per_seed={str(x) if a.run else str(sd): m for x, sd, m in zip(runs, seeds, per_seed)}, wall_s=round(time.time() - t0, 1))
    text = write(out, r)
    print('\n' + text)
    print(f'wrote {out} and {out.with_suffix(".md")} ({time.time() - t0:.0f} s)')
    return r


if __name__ == '__main__':
    main()
