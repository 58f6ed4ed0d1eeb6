"""Build a static HTML site from the executed notebooks: one page per notebook, nbs/index.ipynb as the home page.

    python tools/build_docs.py                      # nbs/ -> _docs/
    python tools/build_docs.py --nbs DIR --out DIR

Every notebook under nbs/ becomes a page at the same place (nbs/tutorials/01_walkthrough.ipynb ->
_docs/tutorials/01_walkthrough.html), titled by its first H1, with a sidebar listing every page. nbconvert's `basic`
template gives the cells; figures are the notebooks' PNG outputs embedded in the page, so the site needs no network.
As in nbdev's docs, `#| hide` and `#| exporti` cells are left out, `#| echo: false` shows only the output,
`#| output: false` only the code, and the `#|` lines themselves are not shown. Links to `x.ipynb` point to `x.html`."""
import argparse, configparser, html, os, re, shutil, sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter

from execute_notebooks import directives, notebooks

ROOT = Path(__file__).resolve().parents[1]
MARK = '.built-by-build_docs'  # an output folder holding this file may be wiped and rebuilt
FIGURE = re.compile(r'<img[^>]+src="data:image/')
CSS = """body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #222; display: flex; }
nav { width: 15rem; flex: none; height: 100vh; position: sticky; top: 0; overflow-y: auto; padding: 1rem;
      box-sizing: border-box; background: #f6f7f9; border-right: 1px solid #ddd; font-size: 14px; }
nav .site { font-weight: bold; font-size: 18px; display: block; margin-bottom: 1rem; }
nav h2 { font-size: 12px; text-transform: uppercase; color: #777; margin: 1rem 0 .3rem; }
nav ul { list-style: none; padding: 0; margin: 0; } nav li { margin: .15rem 0; }
nav a { color: #1a4f8b; text-decoration: none; } nav a.current { font-weight: bold; color: #000; }
main { padding: 1rem 2rem 4rem; max-width: 60rem; min-width: 0; flex: 1; }
img { max-width: 100%; height: auto; }
pre { background: #f6f7f9; padding: .6rem .8rem; overflow-x: auto; font-size: 13px; border-radius: 4px; }
.output_area pre { background: none; border-left: 3px solid #ddd; border-radius: 0; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: .2rem .5rem; }
.anchor-link { visibility: hidden; margin-left: .3rem; } :hover > .anchor-link { visibility: visible; }
"""


def pages_in_order(nbs: Path) -> list:
    "Every notebook under `nbs` (relative), the home page first, then the top folder's, then each subfolder's."
    found = [p.relative_to(nbs) for p in notebooks(nbs)]
    return sorted(found, key=lambda p: (p != Path('index.ipynb'), len(p.parts) > 1, p.parent.as_posix(), p.name))


def title(nb, fallback: str) -> str:
    "The notebook's first H1 (markdown `# ...`), else `fallback`."
    for cell in nb.cells:
        m = re.search(r'^#\s+(.+?)\s*#*\s*$', cell.source, re.M) if cell.cell_type == 'markdown' else None
        if m: return m.group(1)
    return fallback


def for_reader(nb):
    "The notebook as a reader sees it: hidden cells out, directive lines out of the code (see the module docstring)."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            d = directives(cell)
            if 'hide' in d or 'exporti' in d or d.get('include', '').lower() == 'false': continue
            if d.get('output', '').lower() == 'false': cell.outputs = []
            cell.source = '\n'.join(l for l in cell.source.splitlines() if not l.lstrip().startswith('#|')).strip('\n')
            if d.get('echo', '').lower() == 'false' or not cell.source:
                if not cell.outputs: continue
                cell.metadata['transient'] = {'remove_source': True}
        cells.append(cell)
    nb.cells = cells
    return nb


def link(src: Path, dst: Path) -> str:
    "The relative URL from page `src` to page `dst` (both relative to the site's root)."
    return Path(os.path.relpath(dst, src.parent)).as_posix()


def sidebar(pages: list, here: Path, site: str) -> str:
    "The navigation: the site's name, then the pages grouped by folder, `here` marked."
    groups = {}
    for page, ttl in pages: groups.setdefault(page.parent.as_posix(), []).append((page, ttl))
    out = [f'<nav><a class="site" href="{link(here, Path("index.html"))}">{html.escape(site)}</a>']
    for folder, items in groups.items():
        if folder != '.': out.append(f'<h2>{html.escape(folder)}</h2>')
        current = {here: ' class="current"'}
        out.append('<ul>' + ''.join(f'<li><a href="{link(here, p)}"{current.get(p, "")}>{html.escape(t)}</a></li>'
                                    for p, t in items) + '</ul>')
    return '\n'.join(out) + '</nav>'


def page(body: str, ttl: str, nav: str, css: str, site: str) -> str:
    "A whole HTML page; links to other notebooks point to their pages."
    body = re.sub(r'href="(?![a-z][\w+.-]*:|#|/)([^"#]*?)\.ipynb(#[^"]*)?"', r'href="\1.html\2"', body)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(ttl)} - {html.escape(site)}</title><link rel="stylesheet" href="{css}"></head>\n'
            f'<body>{nav}\n<main>\n{body}\n</main></body></html>\n')


def site_name(nbs: Path) -> str:
    "settings.ini's `title` next to the notebook folder, else that folder's parent's name."
    cfg = configparser.ConfigParser()
    cfg.read(nbs.parent / 'settings.ini')
    return cfg.get('DEFAULT', 'title', fallback=nbs.resolve().parent.name)


def build(nbs: Path, out: Path) -> list:
    "Write the site for the notebooks under `nbs` into `out`; returns (page, title, figures, bytes) for each page."
    if out.exists():
        if not (out / MARK).exists() and any(out.iterdir()):
            sys.exit(f'{out} exists and was not made by this tool: choose another --out, or empty it first')
        shutil.rmtree(out)  # a fresh build: no page left over from a renamed notebook
    out.mkdir(parents=True)
    (out / MARK).touch()
    (out / 'style.css').write_text(CSS + HtmlFormatter().get_style_defs('.highlight'), encoding='utf-8')
    sources = pages_in_order(nbs)
    if Path('index.ipynb') not in sources: print(f'warning: no {nbs}/index.ipynb: the site has no home page')
    nbs_read = {p: nbformat.read(nbs / p, as_version=4) for p in sources}
    pages = [(p.with_suffix('.html'), title(nb, p.stem)) for p, nb in nbs_read.items()]
    exporter = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    site, summary = site_name(nbs), []
    for (src, nb), (dst, ttl) in zip(nbs_read.items(), pages):
        body, _ = exporter.from_notebook_node(for_reader(nb))
        text = page(body, ttl, sidebar(pages, dst, site), link(dst, Path('style.css')), site)
        (out / dst).parent.mkdir(parents=True, exist_ok=True)
        (out / dst).write_text(text, encoding='utf-8')
        summary.append((dst, ttl, len(FIGURE.findall(body)), len(text.encode())))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', type=Path, default=ROOT / 'nbs', help='the notebook folder (default nbs/)')
    ap.add_argument('--out', type=Path, default=ROOT / '_docs', help='where the site goes (default _docs/)')
    args = ap.parse_args(argv)
    summary = build(args.nbs, args.out)
    for dst, ttl, figs, size in summary: print(f'{dst.as_posix():38} {figs:3} figures {size / 1e3:8.1f} kB  {ttl}')
    total = sum(f.stat().st_size for f in args.out.rglob('*') if f.is_file())
    print(f'{len(summary)} pages, {sum(s[2] for s in summary)} figures, {total / 1e6:.2f} MB in {args.out}')


if __name__ == '__main__':
    main()
