"""Fail when the package is not exported from the notebooks, or README.md lags; report notebooks that were not clean.

Runs nbdev_clean, nbdev_export and tools/make_readme.py, then compares what they wrote with what was there. A
notebook is compared by its cells' sources only: running it (in JupyterLab, with autosave) changes its outputs and
metadata, which nbdev_clean tidies and this check lists without failing. Any change to a module, to README.md or to a
notebook's sources means the committed files disagreed (the files are left fixed, for `git diff`)."""
import hashlib, json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _digest(p: Path, sources_only: bool) -> str | None:
    "A file's hash; for a notebook with `sources_only`, the hash of its cells' types and sources."
    if not p.exists(): return None
    data = p.read_bytes()
    if sources_only and p.suffix == '.ipynb':
        try: data = json.dumps([(c['cell_type'], ''.join(c['source'])) for c in json.loads(data)['cells']]).encode()
        except (ValueError, KeyError): pass   # not a readable notebook: compare its bytes
    return hashlib.sha256(data).hexdigest()


def snapshot(sources_only: bool = True):
    "Hash of every notebook (its sources), package file and the README."
    files = [p for d in ('nbs', 'mtlmad') for p in (ROOT / d).rglob('*')
             if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts
             and p.suffix in ('.ipynb', '.py')]
    files.append(ROOT / 'README.md')
    return {str(p.relative_to(ROOT)): _digest(p, sources_only) for p in files}


def main():
    before, before_bytes = snapshot(), snapshot(sources_only=False)
    for cmd in ([str(BIN / 'nbdev_clean')], [str(BIN / 'nbdev_export')], [sys.executable, str(ROOT / 'tools' / 'make_readme.py')]):
        subprocess.run(cmd, cwd=ROOT, check=True)
    after = snapshot()
    tidied = sorted(k for k, v in snapshot(sources_only=False).items() if k.endswith('.ipynb') and v != before_bytes.get(k) and before.get(k) == after.get(k))
    if tidied:
        print('Outputs or metadata tidied by nbdev_clean (sources unchanged; commit them if you meant to keep the run):')
        for k in tidied: print('  ', k)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        print('Out of sync (nbdev_clean / nbdev_export / make_readme changed these; review and commit):')
        for k in changed: print('  ', k)
        sys.exit(1)
    print(f'in sync: {len(after)} notebooks, modules and README checked')


if __name__ == '__main__':
    main()
