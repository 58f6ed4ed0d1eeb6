"""Fail when the notebooks are not clean, the package is not exported from them, or README.md lags.

Runs nbdev_clean, nbdev_export and tools/make_readme.py, then compares what they wrote with what was
there: any difference means the committed files disagreed (the files are left fixed, for `git diff`)."""
import hashlib, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snapshot():
    "Hash of every notebook, package file and the README."
    files = [p for d in ('nbs', 'mtlmad') for p in (ROOT / d).rglob('*')
             if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts
             and p.suffix in ('.ipynb', '.py')]
    files.append(ROOT / 'README.md')
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in files}


def main():
    before = snapshot()
    for cmd in ([str(BIN / 'nbdev_clean')], [str(BIN / 'nbdev_export')], [sys.executable, str(ROOT / 'tools' / 'make_readme.py')]):
        subprocess.run(cmd, cwd=ROOT, check=True)
    after = snapshot()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        print('Out of sync (nbdev_clean / nbdev_export / make_readme changed these; review and commit):')
        for k in changed: print('  ', k)
        sys.exit(1)
    print(f'in sync: {len(after)} notebooks, modules and README checked')


if __name__ == '__main__':
    main()
