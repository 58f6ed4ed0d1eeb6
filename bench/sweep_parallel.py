"""Run many bench jobs side by side until a deadline: a quality sweep on a machine with many cores and one GPU.

    python bench/sweep_parallel.py JOBS.txt --workers 20 --deadline 540 --logs DIR [--collect OUT.jsonl]

JOBS.txt holds one job per line: shell commands joined by `&&` (e.g. train a model, then score it again several ways),
run in file order, `--workers` at a time, each with one torch thread (`OMP_NUM_THREADS=1`) and its output in
`DIR/job_N.out`. At `--deadline` seconds every job still running is stopped (what it logged so far stays), and every
`*.jsonl` under DIR is joined into `--collect`; it is joined every 30 s as well, so a run cut off from outside keeps
most of its figures. Lines starting with `#` are skipped."""
import argparse, os, subprocess, time
from pathlib import Path


def collect(logs: Path, out: Path | None):
    "Join the jobs' JSON-lines logs (complete lines only) into one file."
    if out is None: return
    lines = [l for f in sorted(logs.glob('*.jsonl')) for l in f.read_text().splitlines(True) if l.endswith('\n')]
    tmp = out.with_suffix('.tmp'); tmp.write_text(''.join(lines)); tmp.replace(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('jobs', type=Path); ap.add_argument('--workers', type=int, default=os.cpu_count())
    ap.add_argument('--deadline', type=float, default=540); ap.add_argument('--logs', type=Path, required=True)
    ap.add_argument('--collect', type=Path, default=None)
    a = ap.parse_args(argv)
    jobs = [l.strip() for l in a.jobs.read_text().splitlines() if l.strip() and not l.startswith('#')]
    if not jobs: raise SystemExit(f'{a.jobs}: no jobs')
    a.logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    t0, todo, running, done, last = time.time(), list(enumerate(jobs)), {}, {}, 0.0
    while todo or running:
        while todo and len(running) < a.workers:
            i, cmd = todo.pop(0)
            running[i] = subprocess.Popen(['bash', '-c', cmd], env=env, stdout=open(a.logs / f'job_{i}.out', 'w'),
                                          stderr=subprocess.STDOUT, start_new_session=True)
        for i, p in list(running.items()):
            if p.poll() is not None: done[i] = p.returncode; del running[i]
        el = time.time() - t0
        if el > a.deadline:
            for i, p in running.items(): os.killpg(p.pid, 9); done[i] = 'stopped'
            running, skipped = {}, [i for i, _ in todo]
            todo = []
            print(f'deadline {a.deadline:.0f} s: stopped {sum(v == "stopped" for v in done.values())} jobs, never started {skipped}', flush=True)
        if el - last > 30: collect(a.logs, a.collect); last = el
        time.sleep(1)
    collect(a.logs, a.collect)
    for i in sorted(done): print(f'job {i}: {done[i]}  ({jobs[i][:100]})', flush=True)
    print(f'{len(jobs)} jobs in {time.time() - t0:.0f} s', flush=True)


if __name__ == '__main__': main()
