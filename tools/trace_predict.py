"""The walk of one image through mtlmad: every mtlmad function `mtlmad predict` calls, in the order of their first call.

    python tools/trace_predict.py IMAGE RUN [--repo DIR] [--out DIR]

`--repo` runs the package found in another checkout (e.g. a git worktree of an older commit), to compare walks before
and after a change. Functions run at import (class bodies, module code) are left out; methods of the model and the
tasks are listed like any other function. The prediction is written to `--out` (default: a temporary folder), so the
scores of two walks can be compared too."""
import argparse, os, sys, tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('image'); ap.add_argument('run')
    ap.add_argument('--repo', help='the checkout whose mtlmad runs (default: the installed one)')
    ap.add_argument('--out', default=None, help='where predict writes (default: a temporary folder)')
    a = ap.parse_args()
    if a.repo: sys.path.insert(0, os.path.abspath(a.repo))
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    from mtlmad import cli
    seen, order = set(), []

    def tracer(frame, event, arg):
        code = frame.f_code
        if event != 'call' or '/mtlmad/' not in code.co_filename or '_modidx' in code.co_filename: return None
        if not code.co_flags & 0x1 or code.co_name.startswith('<'): return None   # import-time code, comprehensions
        name = code.co_filename.split('/mtlmad/')[-1].removesuffix('.py').replace('/', '.') + '.' + code.co_qualname
        if name not in seen: seen.add(name); order.append(name)
        return None

    out = a.out or tempfile.mkdtemp(prefix='mtlmad_trace_')
    sys.settrace(tracer)
    try: rc = cli.main(['predict', '--run', a.run, a.image, '--out', out, '--device', 'cpu'])
    finally: sys.settrace(None)
    dunder = ('__init__', '__post_init__', '__len__', '__repr__', '__getattr__', '__iter__', '__getitem__')
    print(' -> '.join(n for n in order if not n.endswith(dunder)))
    print(f'\nexit status {rc}; prediction in {out}')


if __name__ == '__main__': main()
