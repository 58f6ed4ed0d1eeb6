"""Compute cost of the mtlmad joint model: parameters, training throughput, scoring latency, peak memory,
and the joint model's five tasks against five single-task models run one after another.

    python bench/cost.py --device auto|cpu|cuda [--image-size 128] [--batch 16] [--out FILE.json]
    python bench/cost.py --macs-only [--run demo]   (what scoring one image costs with the default scoring, and nothing else;
                                                     --run: a trained run's model, which routes its images its own way)
                         [--repeats N] [--scale-batch B] [--sizes 64,128,256] [--experts 2,4,8] [--train-steps N]

Everything is timed on the full scoring path (`mtlmad.score.task_errors`: every task's inference inputs, one
`forward_tasks` call per input round, every task's error map and score). Timings are medians over `--repeats`
after one untimed warm-up, with `torch.cuda.synchronize()` around each on a GPU. The joint and the single-task
timings are interleaved repeat by repeat, so a change in machine load hits both alike; the ratio is the median of
the per-repeat ratios. Peak memory is `torch.cuda.max_memory_allocated` on a GPU; on a CPU it is the rise of the
peak resident set size over one scoring call (the peak is reset first through /proc/self/clear_refs, then read
from VmHWM; `ru_maxrss` where that is missing), measured in a fresh subprocess per configuration.
Writes FILE.json and FILE.md (default bench/results/cost_<device>.json; bench/results/ is scratch)."""
import argparse, contextlib, inspect, json, math, os, platform, resource, shlex, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mtlmad.core import MTLConfig, get_device, seed_everything, ALL_TASKS
from mtlmad.datasets import load_brain_mri
from mtlmad.calibration import ScoringConfig, shrink_factor, shrunk_sigma
from mtlmad.ops import gaussian_kernel1d
from mtlmad.features import COMPONENTS, FEATURES, seeing_tasks
from mtlmad.jobs import reference_subset
from mtlmad.mirror import mirror_macs
from mtlmad.moe import MTLModel
from mtlmad.score import task_errors
from mtlmad.tasks import make_task
from throughput import throughput


def mri_batch(n: int, size: int) -> torch.Tensor:
    "n slices of the embedded MRI at size x size, (n,1,S,S) in [0,1] (realistic input for the tissue k-means)."
    s = torch.from_numpy(load_brain_mri().slices).float()
    idx = torch.linspace(0, len(s) - 1, n).round().long()
    x = F.interpolate(s[idx, None], size=(size, size), mode='bilinear', antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


def build(cfg: MTLConfig, dev, fit_images):
    "The joint model (eval mode, on dev), its fitted tasks, and one single-task model per task (same width, experts)."
    seed_everything(cfg.seed)
    tasks = {n: make_task(n, cfg) for n in cfg.tasks}
    for t in tasks.values(): t.fit(fit_images)
    joint = MTLModel(cfg, {n: t.out_channels for n, t in tasks.items()}).to(dev).eval()
    singles = {n: MTLModel(cfg.replace(tasks=(n,)), {n: t.out_channels}).to(dev).eval() for n, t in tasks.items()}
    return joint, tasks, singles


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def timed(fn, dev) -> float:
    "Wall seconds of fn() (synchronised on a GPU)."
    sync(dev); t0 = time.perf_counter(); fn(); sync(dev)
    return time.perf_counter() - t0


def score_joint(joint, tasks, x): return lambda: task_errors(joint, tasks, x)
def score_singles(singles, tasks, x): return lambda: [task_errors(m, {n: tasks[n]}, x) for n, m in singles.items()]


def joint_vs_singles(joint, tasks, singles, x, dev, repeats: int, ctx=contextlib.nullcontext) -> dict:
    "Interleaved timings of the joint model and of the single-task models one after another on the same batch."
    rows = []
    for r in range(repeats + 1):   # round 0 warms up
        with ctx():
            tj = timed(score_joint(joint, tasks, x), dev)
            ts = {n: timed(lambda: task_errors(m, {n: tasks[n]}, x), dev) for n, m in singles.items()}
        if r: rows.append((tj, ts))
    med = lambda v: float(statistics.median(v))
    single = {n: med([ts[n] for _, ts in rows]) * 1e3 for n in singles}
    ratios = [tj / sum(ts.values()) for tj, ts in rows]
    return dict(batch=len(x), repeats=repeats, joint_ms=med([tj for tj, _ in rows]) * 1e3, single_ms=single,
                singles_total_ms=med([sum(ts.values()) for _, ts in rows]) * 1e3,
                ratio=med(ratios), ratio_per_repeat=[round(v, 4) for v in ratios])


def latency(fn, dev, repeats: int) -> float:
    "Median milliseconds of fn() over `repeats` after one warm-up."
    fn(); sync(dev)
    return float(statistics.median(timed(fn, dev) for _ in range(repeats))) * 1e3


# ---------------------------------------------------------------- multiply-accumulates
def part_of(name: str) -> str:
    "The part of an MTLModel a submodule belongs to: stem, moe block <i>, head."
    top = name.split('.')
    if top[0].startswith('stem'): return 'stem'
    if top[0] == 'blocks': return f'moe block {int(top[1]) + 1}'   # its experts and its gates
    return top[0].rstrip('s')


class FeatureReader:
    "Stands in for a fitted feature part in `task_errors`: it names the tasks whose head features it reads, and measures nothing."
    def __init__(self, tasks): self.tasks = list(tasks)
    def distance(self, feats, size): return torch.zeros(len(feats), *size)


@torch.no_grad()
def count_macs(runs: list, x: torch.Tensor, heads=None, feature_tasks=()) -> dict:
    """Multiply-accumulates per image of scoring `x` with each (model, its tasks) in `runs`, summed by model part.
    `heads`: the tasks whose error maps are made (None: every task); `feature_tasks`: tasks that run for the feature part."""
    total = {}
    reader = FeatureReader(feature_tasks) if feature_tasks else None
    def counter(part):
        def add(mod, inp, out):
            k = mod.in_channels // mod.groups * math.prod(mod.kernel_size) if isinstance(mod, torch.nn.Conv2d) else mod.in_features
            total[part] = total.get(part, 0) + out.numel() * k / len(x)
        return add
    for m, tk in runs:
        hooks = [mod.register_forward_hook(counter(part_of(name))) for name, mod in m.named_modules()
                 if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
        try: task_errors(m, tk, x, reader, heads=heads)
        finally:
            for h in hooks: h.remove()
    return total


def inputs_per_call(tasks: dict, x: torch.Tensor) -> tuple[int, int]:
    "(distinct model inputs the joint model needs, inputs the single-task models need together) for one batch."
    inputs = {n: t.inference_inputs(x) for n, t in tasks.items()}
    rounds = max(len(v) for v in inputs.values())
    distinct = sum(len({id(v[r]) for v in inputs.values() if r < len(v)}) for r in range(rounds))
    return distinct, sum(len(v) for v in inputs.values())


def feature_part_macs(joint, tasks, x: torch.Tensor) -> float:
    "MACs per image of the feature part (`mtlmad.features`): project each location's stacked features, then square and weigh."
    d = 2 * joint.cfg.width * len(seeing_tasks(tasks, x))
    k, cells = min(COMPONENTS, d), (x.shape[-1] // 8) * (x.shape[-2] // 8)
    return float(cells * (d * k + 2 * k + 2 * d))


def taps(sigma: float) -> int:
    "Taps of `gaussian_kernel1d(sigma)` (0: no smoothing)."
    return len(gaussian_kernel1d(sigma, torch.device('cpu'), torch.float32)) if sigma > 0 else 0


# the most reference images a run keeps (`mtlmad.jobs.reference_subset`'s default): the calibration count's default
N_REF = inspect.signature(reference_subset).parameters['n'].default


def smoothing_macs(size: int, n_parts: int, scoring: ScoringConfig = ScoringConfig()) -> float:
    """MACs per image of the Gaussian smoothings after the calibration: each fused part's map once per `score_sigma` before
    its maximum (`image_scores`), and the fused map once by `sigma` (`fuse_maps`); two passes of `gaussian_kernel1d`'s taps.
    Under `score_shrink` > 1 a wide smoothing runs on block averages (`shrunk_blur`): one add a pixel for the average, then
    the two passes at the smaller size."""
    ss = scoring.score_sigma if isinstance(scoring.score_sigma, tuple) else (scoring.score_sigma,)
    px = size * size
    def one(s):   # one map's smoothing before its maximum: at full size, or shrunk (`shrunk_blur`: an average over blocks first)
        f = shrink_factor(s, scoring.score_shrink)
        return 2 * px * taps(s) if f == 1 else px + 2 * (px // (f * f)) * taps(shrunk_sigma(s, f))
    masks = len({shrink_factor(s, scoring.score_shrink) for s in ss} - {1}) * px   # the foreground's share of each block, once a factor
    return float(n_parts * sum(one(s) for s in ss) + masks + 2 * px * taps(scoring.sigma))


def calibration_macs(size: int, n_parts: int, n_ref: int = N_REF, scoring: ScoringConfig = ScoringConfig(),
                     thumb: int = 16, scale: int = 2) -> float:
    """Operations per image of the per-location calibration (`mtlmad.calibration.local_z`), each add or multiply counted as
    one MAC (an upper bound): the image's thumbnail, its distance to each of `n_ref` reference thumbnails; then for each
    fused part, at the reference's 1/`scale` resolution, the mean and spread of the `k` nearest references' maps, both
    smoothed by `ref_sigma` and joined with the floor, brought up to full size (bilinear: four weights a pixel) and the
    z-score (a subtraction and a division a pixel); for a part put in each image's own units (`ScoringConfig.own_spread_parts`,
    the lookup part since 0.2.19: `mtlmad.calibration.own_spread`) two more a pixel (its |z| for the median, the division);
    last, the fusion of the parts' z-maps (one operation a part a pixel). Under `ScoringConfig.distance_trend` (since 0.2.20)
    the image's distance from its references is the mean of the `k` nearest distances already found, and its log
    (`mtlmad.calibration.reference_distance`), and each part's score loses its trend (three operations a part).
    A run's reference holds at most `N_REF` training normals: the count's default."""
    r2, px = (size // scale) ** 2, size * size
    per_part = 3 * scoring.k * r2 + 2 * 2 * taps(scoring.ref_sigma) * r2 + 3 * r2 + 2 * 4 * px + 2 * px
    trend = (scoring.k + 1 + 3 * n_parts) if scoring.distance_trend else 0
    return float(px + 2 * n_ref * thumb * thumb + n_parts * per_part + n_parts * px + len(scoring.own_spread_parts) * 2 * px + trend)


def scoring_macs(joint, tasks, x: torch.Tensor, scoring: ScoringConfig = ScoringConfig(), n_ref: int = N_REF,
                 fused: list | None = None) -> dict:
    """MACs per image of what `Scorer.score` runs with the default scoring: the fused tasks' heads only (`MTLConfig.fused`), the
    trunk of every task the feature part reads, the feature part, the mirror part (`mtlmad.mirror.mirror_macs`), the
    per-location calibration against `n_ref` reference images (`calibration_macs`) and the smoothing of the calibrated maps
    (`smoothing_macs`). `fused`: the tasks a trained run fuses (`Scorer.fusion_tasks`; None: the config's, as a new run's)."""
    fused = [t for t in (joint.cfg.fused if fused is None else fused) if t in tasks]
    feats = seeing_tasks(tasks, x) if scoring.features else []
    model = count_macs([(joint, tasks)], x, heads=fused, feature_tasks=feats)
    parts = {'model (fused heads)': sum(model.values())}
    if scoring.features: parts['feature part'] = feature_part_macs(joint, tasks, x)
    learned = fused + ([FEATURES] if scoring.features else [])   # the maps the model makes: the feature part's only where it is on
    n_maps = len([t for t in scoring.mirrored if t in learned]) + bool(scoring.mirror)
    if n_maps: parts['mirror part'] = mirror_macs(x.shape[-1], n_maps)
    n_parts = len(learned) + bool(scoring.lookup) + bool(scoring.mirror)
    parts['calibration'] = calibration_macs(x.shape[-1], n_parts, n_ref, scoring)
    parts['map smoothing'] = smoothing_macs(x.shape[-1], n_parts, scoring)
    unfused = [t for t in tasks if t not in fused]
    return dict(parts=parts, total=sum(parts.values()), fused=fused, unfused=unfused, trunk_only=[t for t in unfused if t in feats], bar=100e6)


def mac_breakdown(joint, tasks, singles, x) -> dict:
    "MACs per image of the joint model (with its feature part) and of the single-task models together, by part, and the trunk-sharing floor."
    j = count_macs([(joint, tasks)], x)
    j['feature part'] = feature_part_macs(joint, tasks, x)
    s = count_macs([(m, {n: tasks[n]}) for n, m in singles.items()], x)
    distinct, total = inputs_per_call(tasks, x)
    return dict(joint=j, singles=s, joint_total=sum(j.values()), singles_total=sum(s.values()),
                ratio=sum(j.values()) / sum(s.values()), distinct_inputs=distinct, single_inputs=total)


# ---------------------------------------------------------------- memory
def _mem_run(spec: dict, dev) -> float:
    "Peak memory (MiB) of one scoring call of spec['mode'] ('joint' or 'singles'); in this process."
    cfg = MTLConfig(image_size=spec['image_size'], n_experts=spec['n_experts'])
    x = mri_batch(spec['batch'], cfg.image_size)
    joint, tasks, singles = build(cfg, dev, x)
    if spec['mode'] == 'singles': joint = None
    else: singles = None
    x = x.to(dev)
    fn = score_joint(joint, tasks, x) if joint is not None else score_singles(singles, tasks, x)
    if dev.type == 'cuda':
        fn(); sync(dev)   # warm-up (cuDNN workspaces, lazy init) is not counted
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev); fn(); sync(dev)
        return (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    base = _rss_kib('VmRSS', reset_peak=True)
    fn()
    return (_rss_kib('VmHWM') - base) / 1024


def _rss_kib(field: str, reset_peak: bool = False) -> int:
    "VmRSS / VmHWM of this process in KiB; `reset_peak` first resets the peak (Linux clear_refs 5), else falls back to ru_maxrss."
    if reset_peak:
        try: Path('/proc/self/clear_refs').write_text('5')
        except OSError: pass
    try: return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(field + ':'))
    except (OSError, StopIteration): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory(spec: dict, dev) -> float:
    "Peak memory in MiB: in-process on a GPU; in a fresh subprocess (ru_maxrss rise) on a CPU."
    if dev.type == 'cuda': return _mem_run(spec, dev)
    cmd = [sys.executable, __file__, '--mem-worker', json.dumps(spec), '--threads', str(torch.get_num_threads())]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode: raise RuntimeError(f'memory worker failed for {spec}: {out.stderr[-2000:]}')
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- machine
def machine(dev) -> dict:
    d = dict(device=str(dev), torch=torch.__version__, python=platform.python_version(), platform=platform.platform(),
             cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads())
    try: d['cpu_model'] = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): pass
    if dev.type == 'cuda': d['gpu'] = torch.cuda.get_device_name(dev)
    return d


def loadavg() -> list:
    try: return [round(v, 2) for v in os.getloadavg()]
    except OSError: return []


# ---------------------------------------------------------------- report
def scoring_lines(sm: dict, size: int) -> list:
    "The default scoring's multiply-accumulates, part by part, against the bar."
    L = [f'## What scoring one {size} px image costs with the default scoring: multiply-accumulates', '',
         '| part | MMAC |', '|---|---|']
    L += [f"| {p} | {v / 1e6:.2f} |" for p, v in sm['parts'].items()]
    text = f"The model runs the heads of the fused tasks ({', '.join(sm['fused'])}). "
    if sm['trunk_only']:
        text += (f"Trained but not fused: {', '.join(sm['unfused'])}; of these only the trunk of {', '.join(sm['trunk_only'])} runs "
                 "(the feature part reads it), the rest not at all. ")
    elif sm['unfused']: text += f"Trained but not fused: {', '.join(sm['unfused'])}; none of them runs. "
    text += f"The bar is {sm['bar'] / 1e6:.0f} M: {'met' if sm['total'] <= sm['bar'] else 'NOT met'}."
    return L + [f"| **total** | **{sm['total'] / 1e6:.2f}** |", '', text, '']


def markdown(r: dict) -> str:
    m, s = r['machine'], r['settings']
    name = m.get('gpu') or f"{m.get('cpu_model', m['cpu'])}, {m['cpu_count']} CPU(s)"
    jv = r['joint_vs_singles']
    L = [f"# mtlmad compute cost on {name}", '',
         f"Command: `{r['command']}`  ", f"Device `{m['device']}`, torch {m['torch']}, {m['torch_threads']} torch thread(s). "
         f"Load average (1, 5, 15 min) before {r['load_before']}, after {r['load_after']}.  ",
         f"Default MTLConfig at {s['image_size']} px: width {s['width']}, {s['n_experts']} experts x {s['n_moe_blocks']} MoE blocks, "
         f"{len(s['tasks'])} tasks. Medians of {s['repeats']} repeats after 1 warm-up.", '']
    if r.get('note'): L += [f"**Note:** {r['note']}", '']
    L += ['| quantity | value |', '|---|---|',
          f"| parameters, joint model (5 tasks) | {r['params']['joint']:,} |",
          f"| parameters, 5 single-task models together | {r['params']['singles_total']:,} |",
          f"| training throughput (images/s, batch {r['train']['batch']}, {r['train']['steps']} timed step(s)) | {r['train']['images_per_s']:.1f} |",
          f"| scoring latency, batch 1 (ms/image) | {r['latency']['batch1_ms']:.1f} |",
          f"| scoring latency, batch {s['batch']} (ms/batch) | {r['latency']['batch_ms']:.1f} |",
          f"| scoring latency, batch {s['batch']} (ms/image) | {r['latency']['batch_ms'] / s['batch']:.2f} |", '',
          f"## Joint model vs 5 single-task models one after another (batch {jv['batch']}, {s['image_size']} px)", '',
          '| | time (ms/batch) | peak memory (MiB) |', '|---|---|---|',
          f"| joint MoE model, all 5 tasks | {jv['joint_ms']:.1f} | {jv['mem_joint_mib']:.1f} |"]
    L += [f"| single-task: {n} | {v:.1f} | |" for n, v in jv['single_ms'].items()]
    L += [f"| 5 single-task models, total | {jv['singles_total_ms']:.1f} | {jv['mem_singles_mib']:.1f} |", '',
          f"**Joint / singles time ratio: {jv['ratio']:.3f}** (median of per-repeat ratios {jv['ratio_per_repeat']}); "
          f"the bar is <= 0.5: {'met' if jv['ratio'] <= 0.5 else 'NOT met'}.", '']
    if r.get('macs'):
        mc = r['macs']; parts = list(dict.fromkeys([*mc['joint'], *mc['singles']]))
        L += ['## Where the work goes: multiply-accumulates per image, by part', '',
              '| part | joint model (MMAC) | 5 single-task models (MMAC) |', '|---|---|---|']
        L += [f"| {p} | {mc['joint'].get(p, 0) / 1e6:.1f} | {mc['singles'].get(p, 0) / 1e6:.1f} |" for p in parts]
        L += [f"| total | {mc['joint_total'] / 1e6:.1f} | {mc['singles_total'] / 1e6:.1f} |", '',
              f"MAC ratio joint / singles: **{mc['ratio']:.3f}**. At scoring time the joint model sees "
              f"{mc['distinct_inputs']} distinct inputs per image (tasks that read the same input share the stem and the "
              f"first MoE block), the single-task models {mc['single_inputs']} together. Even if everything after "
              f"the shared trunk cost nothing, the ratio could not drop below {mc['distinct_inputs']}/{mc['single_inputs']} = "
              f"{mc['distinct_inputs'] / mc['single_inputs']:.2f}.", '']
    if r.get('scoring_macs'):
        L += scoring_lines(r['scoring_macs'], s['image_size'])
    L += [
          f"## Scaling (joint model, batch {s['scale_batch']})", '', '| image size | experts | time (ms/batch) | peak memory (MiB) |', '|---|---|---|---|']
    L += [f"| {v['image_size']} | {v['n_experts']} | {v['ms']:.1f} | {v['mem_mib']:.1f} |" for v in r['scaling']]
    if r.get('cuda_variants'):
        L += ['', f"## GPU precision and memory layout (batch {s['batch']}, {s['image_size']} px)", '',
              '| variant | joint (ms) | singles total (ms) | ratio | joint speed-up vs fp32 |', '|---|---|---|---|---|']
        base = r['cuda_variants']['fp32']['joint_ms']
        L += [f"| {k} | {v['joint_ms']:.2f} | {v['singles_total_ms']:.2f} | {v['ratio']:.3f} | {base / v['joint_ms']:.2f}x |"
              for k, v in r['cuda_variants'].items()]
        L += ['', f"Best variant for the joint model: **{r['cuda_best']}**."]
    return '\n'.join(L) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='auto')
    ap.add_argument('--image-size', type=int, default=128)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--repeats', type=int, default=None, help='timed repeats (default 10 on a GPU, 2 on a CPU)')
    ap.add_argument('--scale-batch', type=int, default=None, help='batch of the scaling runs (default --batch on a GPU, 4 on a CPU)')
    ap.add_argument('--sizes', default='64,128,256')
    ap.add_argument('--experts', default='2,4,8')
    ap.add_argument('--train-steps', type=int, default=None, help='timed training steps (default 10 on a GPU, 1 on a CPU)')
    ap.add_argument('--out', type=Path, default=None)
    ap.add_argument('--note', default='', help='a remark written into the report (e.g. that the machine is shared)')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default); 1 is far faster on a busy shared CPU')
    ap.add_argument('--macs-only', action='store_true', help="print the default scoring's multiply-accumulates and stop")
    ap.add_argument('--run', default=None, help="with --macs-only: count this trained run's model (a run folder or 'demo') instead of one built afresh")
    ap.add_argument('--mem-worker', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.mem_worker:   # subprocess mode: one peak-memory measurement
        print(_mem_run(json.loads(a.mem_worker), get_device('cpu'))); return
    dev = get_device(a.device)
    gpu = dev.type == 'cuda'
    if gpu: torch.backends.cudnn.benchmark = True
    repeats = a.repeats or (10 if gpu else 2)
    scale_batch = a.scale_batch or (a.batch if gpu else 4)
    steps = a.train_steps or (10 if gpu else 1)
    out = a.out or Path(__file__).parent / 'results' / f'cost_{dev.type}.json'
    cfg = MTLConfig(image_size=a.image_size)
    t_start, load_before = time.time(), loadavg()
    r = dict(command='python bench/cost.py ' + shlex.join(sys.argv[1:]), machine=machine(dev), load_before=load_before,
             note=a.note, settings=dict(**{k: v for k, v in cfg.to_dict().items() if k in
                                           ('image_size', 'width', 'n_experts', 'n_moe_blocks', 'top_k', 'tasks')},
                                        batch=a.batch, repeats=repeats, scale_batch=scale_batch, cudnn_benchmark=gpu))
    say = lambda *m: print(f'[{time.time() - t_start:6.1f}s]', *m, flush=True)
    say(f"device {r['machine'].get('gpu') or r['machine'].get('cpu_model', r['machine']['cpu'])}, load {load_before}")

    if a.macs_only:   # the counts alone: no timing, no memory (they do not depend on the machine's load)
        if a.run:   # a trained run routes its images its own way: its own model is counted
            from mtlmad.jobs import open_scorer
            sc = open_scorer(a.run, 'cpu'); joint, tasks, size, scoring = sc.model, sc.tasks, sc.cfg.image_size, sc.scoring
            n_ref = len(sc.reference.thumbs) if sc.reference is not None else N_REF
        else: size, scoring, n_ref = a.image_size, ScoringConfig(), N_REF; joint, tasks, _ = build(cfg, dev, mri_batch(a.batch, size))
        x = mri_batch(1, size).to(next(joint.parameters()).device)   # one image: what it costs alone
        fused = sc.fusion_tasks if a.run else None   # a trained run fuses what it was calibrated to fuse
        print('\n'.join(scoring_lines(scoring_macs(joint, tasks, x, scoring, n_ref, fused), size))); return
    x = mri_batch(a.batch, a.image_size)
    joint, tasks, singles = build(cfg, dev, x)
    x = x.to(dev)
    r['params'] = dict(joint=joint.n_params, single={n: m.n_params for n, m in singles.items()},
                       singles_total=sum(m.n_params for m in singles.values()))
    say(f"parameters: joint {joint.n_params:,}, singles {r['params']['singles_total']:,}")

    tp = throughput(cfg.replace(batch_size=a.batch), n_steps=steps, device=str(dev))
    r['train'] = dict(images_per_s=tp['images_per_s'], step_s=tp['step_s'], batch=a.batch, steps=steps, amp=cfg.amp and gpu)
    say(f"training: {tp['images_per_s']:.1f} images/s")

    r['latency'] = dict(batch1_ms=latency(score_joint(joint, tasks, x[:1]), dev, max(repeats, 3)),
                        batch_ms=latency(score_joint(joint, tasks, x), dev, repeats))
    say(f"latency: batch 1 {r['latency']['batch1_ms']:.1f} ms, batch {a.batch} {r['latency']['batch_ms']:.1f} ms")

    jv = joint_vs_singles(joint, tasks, singles, x, dev, repeats)
    r['macs'] = mac_breakdown(joint, tasks, singles, x[:2])
    r['scoring_macs'] = scoring_macs(joint, tasks, x[:2])
    say(f"MACs per image: joint {r['macs']['joint_total'] / 1e6:.1f} M, singles {r['macs']['singles_total'] / 1e6:.1f} M: ratio {r['macs']['ratio']:.3f}")
    spec = dict(image_size=a.image_size, n_experts=cfg.n_experts, batch=a.batch)
    jv['mem_joint_mib'] = peak_memory({**spec, 'mode': 'joint'}, dev)
    jv['mem_singles_mib'] = peak_memory({**spec, 'mode': 'singles'}, dev)
    r['joint_vs_singles'] = jv
    say(f"joint {jv['joint_ms']:.1f} ms vs singles {jv['singles_total_ms']:.1f} ms: ratio {jv['ratio']:.3f}")

    if gpu:   # bf16 autocast and channels_last, each on and off
        r['cuda_variants'] = {}
        for name, bf16, cl in (('fp32', 0, 0), ('bf16', 1, 0), ('channels_last', 0, 1), ('bf16+channels_last', 1, 1)):
            fmt = torch.channels_last if cl else torch.contiguous_format
            for m in [joint, *singles.values()]: m.to(memory_format=fmt)
            ctx = (lambda: torch.autocast('cuda', dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
            v = joint_vs_singles(joint, tasks, singles, x.contiguous(memory_format=fmt), dev, repeats, ctx)
            r['cuda_variants'][name] = {k: v[k] for k in ('joint_ms', 'singles_total_ms', 'ratio')}
            say(f"{name}: joint {v['joint_ms']:.2f} ms, singles {v['singles_total_ms']:.2f} ms")
        for m in [joint, *singles.values()]: m.to(memory_format=torch.contiguous_format)
        r['cuda_best'] = min(r['cuda_variants'], key=lambda k: r['cuda_variants'][k]['joint_ms'])

    r['scaling'] = []
    grid = [(int(s), cfg.n_experts) for s in a.sizes.split(',')] + [(a.image_size, int(e)) for e in a.experts.split(',') if int(e) != cfg.n_experts]
    for size, ne in grid:
        c = cfg.replace(image_size=size, n_experts=ne)
        xs = mri_batch(scale_batch, size)
        jm, tk, _ = build(c, dev, xs)
        ms = latency(score_joint(jm, tk, xs.to(dev)), dev, repeats)
        mem = peak_memory(dict(image_size=size, n_experts=ne, batch=scale_batch, mode='joint'), dev)
        r['scaling'].append(dict(image_size=size, n_experts=ne, batch=scale_batch, ms=ms, mem_mib=mem, params=jm.n_params))
        say(f"scaling {size} px, {ne} experts: {ms:.1f} ms, {mem:.1f} MiB")
        del jm
    r['scaling'].sort(key=lambda v: (v['n_experts'] != cfg.n_experts, v['image_size'], v['n_experts']))
    r['load_after'], r['wall_s'] = loadavg(), time.time() - t_start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=1) + '\n')
    md = markdown(r)
    out.with_suffix('.md').write_text(md)
    print('\n' + md)
    print(f'wrote {out} and {out.with_suffix(".md")} ({r["wall_s"]:.0f} s)')


if __name__ == '__main__':
    main()
