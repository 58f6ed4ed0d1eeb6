"""Detection quality of mtlmad against its ablations and baselines, over several seeds.

    python bench/quality.py [--data DIR | --keep-skull] [--seeds 0,1,2] [--steps N | --epochs N] [--image-size 128]
                            [--intensity none|percentile]
                            [--device auto] [--variants fused,single,dense,autoencoder,deepsvdd,nearest,lookup,lookup_abs,mirror,mirror_abs]
                            [--baseline-epochs 100]
                            [--threads N] [--runs DIR] [--out FILE.json]
    python bench/quality.py --merge A.json B.json [...] --out FILE.json

Variants (all trained on the same normal training images, calibrated on the same held-out normals, scored on the
same test split). The mtlmad variants are ordinary run folders: trained and calibrated by `mtlmad.jobs.train_run`,
scored by `mtlmad.jobs.open_scorer` and `task_metrics`, as `mtlmad train` and `mtlmad evaluate` do (`--runs DIR` keeps
them as DIR/VARIANT_sSEED; by default they go to a temporary folder, removed at the end):
  fused        the joint multi-task MoE model (MTLConfig defaults but --steps/--epochs/--image-size), calibrated per
               location against (up to 256 of) its training normals, the fused tasks' z-scores averaged
  single       one model per default proxy task: the same model and schedule with MTLConfig(tasks=(t,)) (rows single:<task>)
  single:<t>   just that task alone
  dense        the joint model without MoE: n_experts=1, width raised so the parameter count matches the MoE model's
  autoencoder  mtlmad.baselines: convolutional autoencoder (L1 + SSIM), |x - reconstruction|
  deepsvdd     mtlmad.baselines: patch-level Deep SVDD
  nearest      mtlmad.baselines: no learning, |x - mean of its 3 nearest normal training images|, smoothed, max (the floor)
  lookup       mtlmad.baselines: no learning, mtlmad's own scoring of the raw intensity: each pixel's z against its 10 most
               similar normal training images (per location), tissue only, max; the spread's floor chosen on the valid
               split (normals and anomalies) when it has both, else 0.05. Only brighter than normal counts, as a task error
  lookup_abs   the same with |z|: darker than normal counts too
  mirror       mtlmad.baselines: no learning, the same scoring of each pixel's asymmetry (its grey level less that of the
               pixel opposite it about the image's own midline, mtlmad.mirror); brighter than the other side counts
  mirror_abs   the same with |z|
The per-task parts of the fused model (its heads scored alone) come for free and are reported as joint:<task>.
--data defaults to the demo data built from the embedded MRI at --image-size (data seed 0 for every training seed,
so only the training seed changes between repeats). Image AUROC, pixel AUROC and AUPRO in percent,
mean ± std over the seeds (population std, ddof=0). Writes FILE.json and FILE.md (default bench/results/quality.json)
after every run, so an interrupted sweep keeps what it measured.
--merge joins result files of runs that split the variants between processes (e.g. one per CPU core): they must
agree on data, image size, epochs and seeds; the joined report lists every source command."""
import argparse, json, os, shlex, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from mtlmad.core import MTLConfig, ALL_TASKS, DEFAULT_TASKS, INTENSITY, get_device
from mtlmad.data.brain import make_demo_data
from mtlmad.data.loading import load_images, load_split, open_data
from mtlmad.jobs import calibration_split, open_scorer, task_metrics, train_run
from mtlmad.metrics import summarise, format_summary, as_percent
from mtlmad.moe import MTLModel
from mtlmad.tasks import make_task
from mtlmad.baselines import fit_baseline, evaluate_baseline

METRICS = ('image_auroc', 'pixel_auroc', 'aupro')
BASELINE_NAMES = ('autoencoder', 'deepsvdd', 'nearest', 'lookup', 'lookup_abs', 'mirror', 'mirror_abs')
TRAINED_BASELINES = ('autoencoder', 'deepsvdd')   # the baselines that train: `--baseline-epochs` is theirs
LOOKUPS = {'lookup': ('lookup', {}), 'lookup_abs': ('lookup', {'two_sided': True}),   # variant -> fit_baseline's name and options
           'mirror': ('mirror', {}), 'mirror_abs': ('mirror', {'two_sided': True})}


def expand_variants(spec: str) -> list[str]:
    "The variant names of a comma list ('single' expands to one per task)."
    out = []
    for v in (s.strip() for s in spec.split(',') if s.strip()):
        if v == 'single': out += [f'single:{t}' for t in DEFAULT_TASKS]
        elif v in ('fused', 'dense', *BASELINE_NAMES) or (v.startswith('single:') and v[7:] in ALL_TASKS): out.append(v)
        else: raise ValueError(f'unknown variant {v!r}; known: fused, single, single:<task> ({", ".join(ALL_TASKS)}), dense, '
                               f'{", ".join(BASELINE_NAMES)}')
    return list(dict.fromkeys(out))


def n_params(cfg: MTLConfig) -> int:
    "Parameters of the joint model of `cfg`."
    tasks = {n: make_task(n, cfg) for n in cfg.tasks}
    return MTLModel(cfg, {n: t.out_channels for n, t in tasks.items()}).n_params


def matched_dense_config(cfg: MTLConfig) -> tuple[MTLConfig, int, int]:
    "The config with n_experts=1 and the width whose parameter count is closest to `cfg`'s: (config, its params, target)."
    target = n_params(cfg)
    best = min(range(cfg.width, 4 * cfg.width + 1), key=lambda w: abs(n_params(cfg.replace(n_experts=1, top_k=0, width=w)) - target))
    c = cfg.replace(n_experts=1, top_k=0, width=best)
    return c, n_params(c), target


def validation_split(data, image_size, channels, intensity='none') -> tuple[torch.Tensor, np.ndarray] | None:
    "(images, labels) of the valid split when it holds normal and anomalous images (the lookup chooses its floor on it)."
    try: v = load_split(data, 'valid', image_size, channels, intensity=intensity)
    except (FileNotFoundError, ValueError): return None
    return (v.images, v.labels) if set(np.unique(v.labels).tolist()) == {0, 1} else None


def run_mtlmad(cfg: MTLConfig, data, test, device, run: Path) -> tuple[dict, dict]:
    "Train, calibrate and score one mtlmad config as `mtlmad train` and `mtlmad evaluate` do: (fused metrics, {task: that head alone})."
    scorer = open_scorer(train_run(data, run, cfg, device=device, progress=False), device)
    m = task_metrics(test, scorer.score(test.images, every_part=True), scorer.sigma)
    return m.pop('fused'), m


def run_baseline(name: str, epochs, seed, train_x, test, device, valid=None):
    "Train (or, with no learning, keep the normals of) and score one baseline: (metrics in percent, the baseline)."
    if name in LOOKUPS: b = fit_baseline(LOOKUPS[name][0], train_x, valid=valid, **LOOKUPS[name][1])
    else: b = fit_baseline(name, train_x, epochs=epochs, seed=seed, device=device, progress=False)
    return as_percent(evaluate_baseline(b, test.images, test.masks, test.labels)), b


def table(results: dict, keys=METRICS) -> tuple[dict, str]:
    "Per-variant summaries over seeds and a markdown table."
    summ, rows = {}, []
    present = [k for k in keys if any(k in m for v in results.values() for m in v['runs'].values())]
    rows.append('| variant | params | seeds | ' + ' | '.join(present) + ' | train s/seed |')
    rows.append('|---' * (len(present) + 4) + '|')
    for name, v in results.items():
        runs = [{k: m[k] for k in present if k in m} for m in v['runs'].values()]
        if not runs: continue
        s = summarise(runs); summ[name] = s
        f = format_summary(s, percent=False)
        t = f"{np.mean(v['train_s']):.0f}" if v.get('train_s') else '-'
        rows.append(f"| {name} | {v.get('params', '')} | {len(runs)} | " + ' | '.join(f.get(k, '-') for k in present) + f' | {t} |')
    return summ, '\n'.join(rows)


TARGETS = {'image_auroc': 90.0, 'pixel_auroc': 98.0, 'aupro': 90.0}   # the brain-only demo bars (percent, 3-seed mean)


def bars(summ: dict) -> list[str]:
    "Does fused reach the targets, and beat every other variant (mean over seeds), on each metric?"
    if 'fused' not in summ: return []
    out = []
    if not any(n != 'fused' and not n.startswith('joint:') for n in summ):
        return ['- only the fused model was run: no comparison with other variants']
    for k in METRICS:
        if k not in summ['fused']: continue
        f = summ['fused'][k]['mean']
        others = {n: s[k]['mean'] for n, s in summ.items() if n != 'fused' and not n.startswith('joint:') and k in s}
        lost = {n: round(v, 2) for n, v in others.items() if v >= f}
        out.append(f"- {k}: fused {f:.2f} ({'reaches' if f >= TARGETS[k] else 'does NOT reach'} the {TARGETS[k]:.0f} target) "
                   f"vs best other {max(others.values(), default=float('nan')):.2f} "
                   f"({max(others, key=others.get) if others else '-'}): " +
                   ('fused beats every other variant' if not lost else f'fused does NOT beat {lost}'))
    return out


def write(out: Path, r: dict):
    summ, md = table(r['variants'])
    jsumm, jmd = table(r['joint_parts'])
    r['summary'], r['joint_parts_summary'], r['verdict'] = summ, jsumm, bars(summ)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=1) + '\n')
    s = r['settings']
    text = (f"# mtlmad detection quality\n\nCommand: `{r['command']}`  \n"
            f"Data: {s['data']} ({s['n_train']} training normals, {s['n_calibration']} calibration normals, "
            f"{s['n_test']} test images of which {s['n_test_anomalous']} anomalous). Image size {s['image_size']} px"
            + (f", intensity {s['intensity']}" if s.get('intensity', 'none') != 'none' else '') + ", "
            f"{s['epochs']} (trained baselines {s['baseline_epochs']} epochs), seeds {s['seeds']}, device {s['device']} "
            f"({s['machine']}), {s['threads']} torch thread(s). Metrics in percent, mean ± std over seeds.\n\n"
            + (f"**Note:** {r['note']}\n\n" if r.get('note') else '') +
            f"{md}\n\n" + '\n'.join(r['verdict']) + lookup_floors(r['variants']) +
            (f"\n\n## Each head of the fused model scored alone\n\n{jmd}" if jsumm else '') + "\n\n"
            f"dense = n_experts 1, width {s['dense_width']} ({s['dense_params']:,} params) to match the MoE model's "
            f"{s['moe_params']:,}. Wall time {r.get('wall_s', 0):.0f} s.\n")
    out.with_suffix('.md').write_text(text)
    return text


def lookup_floors(variants: dict) -> str:
    "A line saying which spread floor each lookup variant used, and where it came from."
    parts = [f"{n} {', '.join(map(str, sorted(set(v['floor'].values()))))}" for n, v in variants.items() if v.get('floor')]
    if not parts: return ''
    how = {v.get('floor_from') for v in variants.values() if v.get('floor')}
    return f"\n\nLookup spread floors ({', '.join(sorted(how))}): {'; '.join(parts)}."


MERGE_KEYS = ('data', 'image_size', 'intensity', 'epochs', 'n_train', 'n_calibration', 'n_test',
              'n_test_anomalous', 'moe_params', 'dense_width')   # what must agree (and baseline_epochs where baselines trained); seeds may differ


def join_variant(have: dict, v: dict, name: str, f) -> None:
    "Add `v`'s seeds of one variant to `have` (the same variant from an earlier file); a seed in both is refused."
    twice = sorted(set(have['runs']) & set(v['runs']), key=int)
    if twice: raise SystemExit(f'{f}: variant {name!r} seed(s) {", ".join(twice)} also in an earlier file; merge other variants or other seeds')
    for k, val in v.items():
        if isinstance(val, dict): have[k] = {**have.get(k, {}), **val}   # runs, and what else is kept per seed
        elif isinstance(val, list): have[k] = have.get(k, []) + val      # train_s: one entry a seed


def merge(files: list[Path]) -> dict:
    "One result from quality.py result files on the same data and settings: different variants, or a variant's other seeds."
    rs = []
    for f in files:
        try: rs.append(json.loads(Path(f).read_text()))
        except (OSError, json.JSONDecodeError) as e: raise SystemExit(f'{f}: not a readable quality.py result ({e})')
        if 'variants' not in rs[-1] or 'settings' not in rs[-1]: raise SystemExit(f'{f}: not a quality.py result (no variants/settings)')
    first = rs[0]['settings']
    for f, r in zip(files[1:], rs[1:]):
        diff = {k: (first.get(k), r['settings'].get(k)) for k in MERGE_KEYS if first.get(k) != r['settings'].get(k)}
        if diff: raise SystemExit(f'{f}: cannot merge with {files[0]}, settings differ: {diff}')
    # --baseline-epochs matters only to files that trained a baseline: those must agree
    epochs = {str(f): r['settings'].get('baseline_epochs') for f, r in zip(files, rs) if any(v in TRAINED_BASELINES for v in r['variants'])}
    if len(set(epochs.values())) > 1: raise SystemExit(f'cannot merge trained baselines of different epochs: {epochs}')
    out = json.loads(json.dumps(rs[0]))
    if epochs: out['settings']['baseline_epochs'] = next(iter(epochs.values()))
    out['command'] = ' ; '.join(r['command'] for r in rs) + ' ; python bench/quality.py --merge ' + ' '.join(map(str, files))
    out['settings']['machine'] = ' | '.join(dict.fromkeys(r['settings']['machine'] for r in rs))
    out['variants'], out['joint_parts'] = {}, {}
    for f, r in zip(files, rs):
        for part in ('variants', 'joint_parts'):
            for name, v in r[part].items():
                if name in out[part]: join_variant(out[part][name], v, name, f)
                else: out[part][name] = json.loads(json.dumps(v))
    order = expand_variants('fused,single,dense,' + ','.join(BASELINE_NAMES))
    out['variants'] = dict(sorted(out['variants'].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    out['settings']['variants'] = list(out['variants'])
    out['settings']['seeds'] = sorted({int(k) for part in ('variants', 'joint_parts') for v in out[part].values() for k in v['runs']})
    out['wall_s'] = max(r.get('wall_s', 0) for r in rs)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', type=Path, default=None, help='dataset folder (BMAD or MVTec layout); default: demo data')
    ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--steps', type=int, default=None, help='optimiser steps of the mtlmad variants (default: the default schedule, which grows with the training images)')
    ap.add_argument('--epochs', type=int, default=None, help='a schedule in passes instead of --steps')
    ap.add_argument('--baseline-epochs', type=int, default=100, help='epochs of the trained baselines')
    ap.add_argument('--keep-skull', action='store_true', help='demo data with the whole head (default: brain only)')
    ap.add_argument('--image-size', type=int, default=128)
    ap.add_argument('--intensity', default='none', choices=INTENSITY,
                    help="input preparation of every image (MTLConfig.intensity): 'none' or 'percentile'")
    ap.add_argument('--device', default='auto')
    ap.add_argument('--variants', default='fused,single,dense,autoencoder,deepsvdd,nearest,lookup,lookup_abs,mirror,mirror_abs')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default); 1 is far faster on a busy shared CPU')
    ap.add_argument('--out', type=Path, default=None)
    ap.add_argument('--runs', type=Path, default=None, help="folder that keeps the mtlmad variants' run folders (default: a temporary folder)")
    ap.add_argument('--note', default='', help='a remark written into the report (e.g. that the machine is shared)')
    ap.add_argument('--merge', type=Path, nargs='+', default=None, help='join these result files (other variants, or other seeds of a variant) into --out')
    a = ap.parse_args()
    if a.merge:
        if a.out is None: ap.error('--merge needs --out')
        m = merge(a.merge)
        if a.note: m['note'] = a.note   # else the first file's
        print(write(a.out, m))
        print(f'wrote {a.out} and {a.out.with_suffix(".md")}')
        return
    if a.threads: torch.set_num_threads(a.threads)
    variants, seeds = expand_variants(a.variants), [int(s) for s in a.seeds.split(',')]
    dev = get_device(a.device)
    out = a.out or Path(__file__).parent / 'results' / 'quality.json'
    t0 = time.time()
    runs = a.runs or Path(tempfile.mkdtemp(prefix='mtlmad-bench-runs-'))   # the mtlmad variants' run folders
    say = lambda *m: print(f'[{time.time() - t0:7.1f}s]', *m, flush=True)
    data = a.data
    if data is None:
        data = make_demo_data(Path(tempfile.mkdtemp(prefix='mtlmad-bench-')) / 'data', image_size=a.image_size, seed=0, keep_skull=a.keep_skull)
        data_name = f'demo data from the embedded MRI (make_demo_data, image_size={a.image_size}, seed=0, {"whole head" if a.keep_skull else "brain only"})'
    else:
        if not data.is_dir(): ap.error(f'--data {data}: no such dataset folder')
        data_name = str(data)
    base = MTLConfig(image_size=a.image_size, epochs=a.epochs or 0, intensity=a.intensity, **({'steps': a.steps} if a.steps else {}))
    channels = open_data(data).channels or 1   # the dataset preset's (RGB histopathology), else grey
    base = base.replace(channels=channels)
    train_samples, cal_x, _ = calibration_split(data, base)   # what train_run trains and calibrates on
    train_x = load_images(train_samples, base)
    schedule = f'{base.epochs} epochs' if base.epochs else f'{base.total_steps(len(train_x))} steps'
    test = load_split(data, 'test', a.image_size, channels, intensity=a.intensity)
    valid = validation_split(data, a.image_size, channels, a.intensity) if any(v in LOOKUPS for v in variants) else None
    dense_cfg, dense_params, moe_params = matched_dense_config(base)
    bep = a.baseline_epochs
    machine = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{os.cpu_count()} CPU(s), load {[round(x, 2) for x in os.getloadavg()]} at start'
    r = dict(command='python bench/quality.py ' + shlex.join(sys.argv[1:]), note=a.note,
             settings=dict(data=data_name, image_size=a.image_size, intensity=a.intensity, epochs=schedule, baseline_epochs=bep,
                           seeds=seeds,
                           device=str(dev), machine=machine, threads=torch.get_num_threads(), variants=variants,
                           n_train=len(train_x), n_calibration=len(cal_x), n_test=len(test), n_test_anomalous=int(test.labels.sum()),
                           moe_params=moe_params, dense_params=dense_params, dense_width=dense_cfg.width,
                           config=base.to_dict()),
             variants={v: dict(runs={}, train_s=[]) for v in variants}, joint_parts={})
    say(f'{len(train_x)} train / {len(cal_x)} calibration / {len(test)} test images; variants {variants}; seeds {seeds}')
    for seed in seeds:
        for v in variants:
            t1 = time.time(); rec = r['variants'][v]
            if v in BASELINE_NAMES:
                m, b = run_baseline(v, bep, seed, train_x, test, dev, valid)
                rec['params'] = b.n_params
                if v in LOOKUPS:   # which floor, and why (validation image AUROC of each candidate)
                    rec.setdefault('floor', {})[str(seed)] = b.floor
                    rec['floor_from'] = 'chosen on the valid split by image AUROC' if valid else 'default: no valid split with anomalies'
                    rec.setdefault('valid_auroc_by_floor', {})[str(seed)] = {str(f): round(100 * x, 2)
                                                                             for f, x in b.valid_auroc.items()}
            else:
                cfg = {'fused': base, 'dense': dense_cfg}.get(v) or base.replace(tasks=(v.split(':')[1],))
                cfg = cfg.replace(seed=seed)
                rec['params'] = n_params(cfg)
                m, parts = run_mtlmad(cfg, data, test, dev, runs / f"{v.replace(':', '_')}_s{seed}")
                if v == 'fused':
                    for t, pm in parts.items():
                        jp = r['joint_parts'].setdefault(f'joint:{t}', dict(runs={}, train_s=[]))
                        jp['runs'][str(seed)] = pm
            rec['runs'][str(seed)] = m; rec['train_s'].append(time.time() - t1)
            say(f'seed {seed} {v:22s} ' + '  '.join(f"{k} {m[k]:.1f}" for k in METRICS if k in m) + f'  ({time.time() - t1:.0f} s)')
            r['wall_s'] = time.time() - t0
            text = write(out, r)
    if not a.runs: shutil.rmtree(runs, ignore_errors=True)
    print('\n' + text)
    print(f'wrote {out} and {out.with_suffix(".md")} ({time.time() - t0:.0f} s)')


if __name__ == '__main__':
    main()
