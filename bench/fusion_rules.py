"""Ways to fuse the parts' image scores, compared on the same forward passes: validation in-sample and cross-fitted, test reported.

    python bench/fusion_rules.py RUN [RUN ...] [--rules top2,top1,...] [--scorer JSON] [--halves 20] [--data DIR] [--out OUT.json]

Every rule here acts on the parts' image scores after the calibration (`TaskNorm`), so one scoring pass of each split
serves them all. For each run and each rule it prints the image AUROC (percent) of:
- `valid`: the validation split under the run's calibration (on its own data: on all its validation normals), what
  `mtlmad evaluate --split valid` reports;
- `cross`: the validation split cross-fitted (`bench/crossfit.py`: calibrated on half of its patients' normals, judged on
  the other half, averaged over the halves);
- `test`: the test split under the run's calibration (reported only).

Each rule is paired against the first (by default today's, `two_kinds`: `ScoringConfig.image_votes='kinds'` since mtlmad
0.2.21; until 0.2.20 `top2`), and against the mirror part alone. The rules (`RULES`):
- `top1`, `top2`, `top3`, `all`: the mean of the 1, 2, 3 or all largest votes (`ScoringConfig.top_parts`); a group
  (`ScoringConfig.groups`) is one vote, its parts' largest z;
- `map_max`: the fused map's maximum (`ScoringConfig.fusion='max'`);
- `fisher`: each vote's z as a one-sided normal tail probability, combined by Fisher's sum of -2 log p;
- `two_kinds`: two votes, the largest z of the learned parts and the largest of the no-learning parts, averaged;
- `RULE-no_PART` (e.g. `top2-no_lookup`): the rule without PART's vote (its map stays in the fused map); several
  `-no_PART` leave several out (`top2-no_tissue-no_pseudo_anomaly`: the joint model's denoising head and the two
  no-learning parts, fused as a run trained on that task alone fuses them)."""
import argparse, json, re, shlex, sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm as normal

from ablate import run_scorer
from crossfit import distances, fit_norms, halves, one_scores, patient_groups
from mtlmad.calibration import LOOKUP, MIRROR
from mtlmad.checkpoint import run_data
from mtlmad.jobs import load_run_split
from mtlmad.metrics import image_auroc
from mtlmad.score import fuse_maps, fuse_votes, kind_votes, merge_groups



def zscores(norms: dict, scores: dict, idx, u=None) -> dict:
    """Each part's image z-score on the images `idx` selects, as the scorer fuses them (per smoothing first under
    `score_scales='max'`; less its trend in the distance `u` from the references, `crossfit.distances`, when given)."""
    return {t: norms[t].z_score(s if u is None else norms[t].detrend(s, u[idx])) for t, s in one_scores(norms, scores, idx).items()}


def parse_rule(rule: str) -> tuple[str, tuple]:
    "A rule's name and the parts it leaves out (none: `()`); a clear error for a rule that is not one of `RULES`' kinds."
    base, *drops = rule.split('-no_')
    if not (base in ('all', 'map_max', 'fisher', 'two_kinds', MIRROR) or re.fullmatch(r'top[1-9][0-9]*', base)) or not all(drops):
        raise ValueError(f'unknown rule {rule!r}: one of topN (N >= 1), all, map_max, fisher, two_kinds, each optionally -no_PART (one or more)')
    return base, tuple(drops)


def rule_scores(rule: str, sc, z: dict, norms: dict, maps: dict, idx) -> np.ndarray:
    """The fused image scores, under `rule`, of the images `idx` selects, from their parts' z-scores `z` (`zscores`) or, for
    `map_max`, from `maps` under `norms`; `RULE-no_PART[-no_PART...]`: with those parts' votes left out; `mirror`: the mirror part alone."""
    rule, drops = parse_rule(rule)
    z = {t: v for t, v in z.items() if t not in drops}
    if not z or (rule == MIRROR and MIRROR not in z) or (rule == 'two_kinds' and kind_votes(z) is None):
        raise ValueError(f'rule {rule!r} without {list(drops)}: the parts left, {sorted(z)}, cannot make it')
    if rule == MIRROR: return z[MIRROR]
    if rule == 'map_max':
        m = fuse_maps({t: maps[t][idx] for t in z}, norms, list(z), sc.sigma, sc.top_parts, sc.groups, sc.lookup_map)
        return m.reshape(len(m), -1).max(1)
    if rule == 'two_kinds': return fuse_votes(z, 'kinds')   # the package's rule since 0.2.21
    if rule == 'fisher': return -2 * np.sum([normal.logsf(x) for x in merge_groups(z, sc.groups)], 0)
    return fuse_votes(z, 'parts', sc.groups, 0 if rule == 'all' else int(rule[3:]))


RULES = ('two_kinds', 'top2', 'top1', 'top3', 'all', 'map_max', 'fisher')


def split_passes(sc, valid, test) -> tuple:
    """One scoring pass of each split, every fused part's maxima per smoothing (`Scorer._parts`): the validation split's
    maps, scores and pixels that count, the test split's maps and scores, and both splits' labels."""
    vmaps, vscores, _, vfg = sc._parts(valid.images, parts=list(sc.fusion_tasks), per_scale=True)
    tmaps, tscores, _, _ = sc._parts(test.images, parts=list(sc.fusion_tasks), per_scale=True)
    return vmaps, vscores, vfg, tmaps, tscores, np.asarray(valid.labels), np.asarray(test.labels)


def figures(names, valid, test, cross) -> dict:
    "Each name's image AUROC in percent: on `valid`, on `test`, and cross-fitted (the mean over the halves' `cross`), from fractions in `names`' order."
    c = np.mean(cross, 0) if cross else [float('nan')] * len(names)
    return {r: dict(valid=100 * valid[i], test=100 * test[i], cross=100 * float(c[i])) for i, r in enumerate(names)}


def judge(sc, rules, valid, test, groups, n_halves: int = 20, seed: int = 0) -> dict:
    "Every rule's valid / cross-fitted / test image AUROC (percent), and the mirror part alone's (`mirror`), on one run."
    vmaps, vscores, vfg, tmaps, tscores, vl, tl = split_passes(sc, valid, test)
    vu, tu = distances(sc, valid.images), distances(sc, test.images)
    full = {t: sc.norms[t] for t in vscores}   # the run's calibration (on its own data: fitted on these normals, `bench/crossfit.py`)
    rules = list(dict.fromkeys([*rules, MIRROR]))   # the mirror part alone, once
    def aurocs(norms, scores, maps, labels, idx, u):
        z = zscores(norms, scores, idx, u)
        return [image_auroc(labels[idx], rule_scores(r, sc, z, norms, maps, idx)) for r in rules]
    v = aurocs(full, vscores, vmaps, vl, np.ones(len(vl), bool), vu)
    t = aurocs(full, tscores, tmaps, tl, np.ones(len(tl), bool), tu)
    cross = [aurocs(fit_norms(vscores, vmaps, vfg, a & (vl == 0), vu), vscores, vmaps, vl, ~a, vu) for a in halves(groups, vl, n_halves, seed)]
    return figures(rules, v, t, cross)


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', metavar='RUN')
    ap.add_argument('--scorer', type=json.loads, default={}, help='scoring settings to calibrate each run under, as JSON (default: its own)')
    ap.add_argument('--rules', default=','.join(RULES), help=f'comma list of {RULES}; the first is the one the others are paired against')
    ap.add_argument('--halves', type=int, default=20, help='random halves of the validation patients (default 20; `bench/crossfit.py`)')
    ap.add_argument('--data', default=None, help="dataset folder (default: each run's own)")
    ap.add_argument('--out', default=None, help='also write every run\'s figures here, as JSON')
    a = ap.parse_args(argv)
    rules = a.rules.split(',')
    for r in rules: parse_rule(r)
    res = {}
    for run in a.runs:
        data = a.data or run_data(run)
        sc = run_scorer(Path(run), a.scorer, data)
        valid, test = (load_run_split(run, sc.cfg, data, s) for s in ('valid', 'test'))
        res[run] = judge(sc, rules, valid, test, patient_groups(valid.paths, valid.labels), a.halves)
        print(Path(run).name, ' '.join(f"{r}={res[run][r]['valid']:.1f}/{res[run][r]['cross']:.1f}/{res[run][r]['test']:.1f}" for r in res[run]), flush=True)
        if a.out: Path(a.out).write_text(json.dumps(dict(command=shlex.join(['python', 'bench/fusion_rules.py', *(argv if argv is not None else sys.argv[1:])]), runs=res), indent=1))
    summarise(res, rules)
    return res


def summarise(res: dict, rules) -> None:
    "Means, and each rule paired against the first rule and against the mirror part alone (SE; runs above)."
    se = lambda d: np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float('nan')
    pair = lambda d: f'{np.mean(d):+.2f} ({se(d):.2f}; {sum(x > 0 for x in d)}/{len(d)})'
    print('| rule | valid | cross | test | vs ' + rules[0] + ': valid | cross | test | vs mirror: valid | cross | test |')
    print('|---' * 10 + '|')
    for r in [*rules, 'mirror']:
        row = [f"{np.mean([x[r][k] for x in res.values()]):.1f}" for k in ('valid', 'cross', 'test')]
        row += [pair([x[r][k] - x[rules[0]][k] for x in res.values()]) for k in ('valid', 'cross', 'test')]
        row += [pair([x[r][k] - x['mirror'][k] for x in res.values()]) for k in ('valid', 'cross', 'test')]
        print(f'| {r} | ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
