"""Training throughput: images per second of a config's training step on a device.

    python bench/throughput.py [--device cpu|cuda] [--steps 5] [--batch 16] [--threads 1]

Prints the default five-task MoE model against a one-task model of the same width without experts, timed in the
same run (this machine is shared and noisy: compare the ratio, not the absolute numbers). `throughput` is also what
`bench/cost.py` and `bench/device_checks.py` time with."""
import argparse, time

import torch

from mtlmad.core import MTLConfig
from mtlmad.train import init_training, train_step   # one step of the real loop, timed without the loop around it


def throughput(cfg: MTLConfig, # the config to time (its tasks, width, image size, batch size)
               n_steps: int = 5, # timed steps (one more warms up)
               device: str = 'auto', # where to run
               tasks: dict | None = None, # task objects (default: `make_task` for each of cfg.tasks)
              ) -> dict:
    "Training images per second of `cfg` on `device` (one untimed warm-up step)."
    x = torch.rand(cfg.batch_size, cfg.channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    state = init_training(cfg, x, device=device, tasks=tasks)   # the tasks are fitted on this one batch
    dev, x = state.device, x.to(state.device)
    for i in range(n_steps + 1):
        if i == 1:
            if dev.type == 'cuda': torch.cuda.synchronize()
            t0 = time.perf_counter()
        train_step(state, x)
    if dev.type == 'cuda': torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / max(n_steps, 1)
    return {'images_per_s': cfg.batch_size / dt, 'step_s': dt, 'tasks': len(state.tasks),
            'n_params': state.model.n_params, 'device': str(dev)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu'); ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--batch', type=int, default=16); ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = MTLConfig(batch_size=a.batch)
    mtl = throughput(base, a.steps, a.device)
    one = throughput(base.replace(tasks=['inpaint'], n_experts=1), a.steps, a.device)
    print(f"5-task MoE model: {mtl['images_per_s']:.1f} images/s ({mtl['n_params']:,} parameters)")
    print(f"1-task model    : {one['images_per_s']:.1f} images/s ({one['n_params']:,} parameters)")
    print(f"ratio (5-task / 1-task images per second): {mtl['images_per_s'] / one['images_per_s']:.2f}")


if __name__ == '__main__': main()
