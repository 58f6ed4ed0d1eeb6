"""Training throughput and the explorer's inference time on an accelerator, each against the CPU of the same machine.

    python bench/device_checks.py [--device cuda] [--train-epochs 0] [--out DIR]

1. training images/s of the default joint model and of a single-task model of the same width (bf16 autocast on CUDA);
2. per-image inference time of the explorer's scoring path (`Scorer.raw`: every task, shared inputs computed once)
   for a batch of demo test images, on the device and on the CPU, with an untrained model (the cost does not
   depend on the weights);
3. optionally (`--train-epochs N`) a full training run on the demo data with `train_run`, copied to DIR/run."""
import argparse, json, os, platform, shutil, tempfile, time
from pathlib import Path

import torch

from mtlmad.core import MTLConfig, get_device
from mtlmad.datasets import make_demo_data
from mtlmad.datasets import load_split
from mtlmad.jobs import train_run, evaluate_run
from mtlmad.moe import MTLModel
from mtlmad.score import Scorer
from mtlmad.tasks import make_task
from throughput import throughput


def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def inference_ms(images, dev, repeats=3, batch_size=16):
    "Median ms per image of `Scorer.raw` on `dev`."
    cfg = MTLConfig()
    tasks = {n: make_task(n, cfg) for n in cfg.tasks}
    tasks['tissue'].fit(images[:32])
    sc = Scorer(MTLModel(cfg, {n: t.out_channels for n, t in tasks.items()}), tasks, device=dev)
    sc.raw(images[:batch_size], batch_size)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(dev); t = time.perf_counter(); sc.raw(images, batch_size); _sync(dev)
        times.append((time.perf_counter() - t) * 1000 / len(images))
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='auto')
    ap.add_argument('--train-epochs', type=int, default=0)
    ap.add_argument('--out', type=Path, default=Path('bench/results'))
    a = ap.parse_args()
    dev, out = get_device(a.device), a.out
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or 'cpu'
    res = {'device': str(dev), 'device_name': name, 'cpu_count': os.cpu_count(), 'torch': torch.__version__}
    cfg = MTLConfig()
    for label, c in (('joint_5_tasks', cfg), ('single_task_inpaint', cfg.replace(tasks=('inpaint',)))):
        res[f'train_{label}_{dev.type}'] = throughput(c, n_steps=10, device=str(dev))
        print(label, dev.type, res[f'train_{label}_{dev.type}'], flush=True)
    data = make_demo_data(Path(tempfile.mkdtemp()) / 'data', image_size=cfg.image_size)
    es = load_split(data, 'test', cfg.image_size)
    res['explorer_ms_per_image'] = {dev.type: inference_ms(es.images, dev)}
    if dev.type != 'cpu': res['explorer_ms_per_image']['cpu'] = inference_ms(es.images, torch.device('cpu'), repeats=1)
    print('explorer inference ms/image', res['explorer_ms_per_image'], flush=True)
    if a.train_epochs:
        run_cfg = cfg.replace(epochs=a.train_epochs)
        t = time.time(); run = train_run(data, out / 'run', run_cfg, device=str(dev), progress=False)
        res['long_run'] = {'epochs': a.train_epochs, 'train_s': time.time() - t,
                           'metrics': evaluate_run(run, Path(tempfile.mkdtemp()), device=str(dev), progress=False)}
        print('long run', json.dumps(res['long_run']['metrics']['fused']), res['long_run']['train_s'], flush=True)
        for f in ('data',): shutil.rmtree(out / 'run' / f, ignore_errors=True)
    (out / 'device_checks.json').write_text(json.dumps(res, indent=1, default=str))


if __name__ == '__main__':
    main()
