"""Build a static HTML site from the executed notebooks: one page per notebook, nbs/index.ipynb as the home page.

    python tools/build_docs.py                      # nbs/ -> _docs/
    python tools/build_docs.py --nbs DIR --out DIR [--lib NAME]

Every notebook under nbs/ becomes a page at the same place (nbs/tutorials/01_walkthrough.ipynb ->
_docs/tutorials/01_walkthrough.html), titled by its first H1, with a sidebar listing every page, a search box over the
pages' titles and headings, and links to the previous and next page at the bottom. nbconvert's `basic` template gives
the cells; figures are the notebooks' PNG outputs embedded in the page, LaTeX (`$...$`, `$$...$$`) becomes MathML
(latex2mathml, which browsers render natively) and Quarto's `:::{.callout-note}` ... `:::` blocks become boxes, so the
site needs no network. As in nbdev's docs, `#| hide` and `#| exporti` cells are left out, `#| echo: false` shows only
the output, `#| output: false` only the code, and the `#|` lines themselves are not shown. Links to `x.ipynb` point to
`x.html`. `api.html` lists every name the package exports (settings.ini's `lib_name`, or `--lib`: a package or one of
its modules) with its signature and docstring (tools/docs_api.py)."""
import argparse, configparser, html, json, os, re, shutil, sys
from pathlib import Path
from typing import NamedTuple

import nbformat
from jinja2 import pass_context
from latex2mathml.converter import convert as tex_to_mathml
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from pygments.formatters import HtmlFormatter

from docs_api import api_html
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
math { font-size: 1.1em; font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", math; }
math[display=block] { display: block math; margin: .8rem 0; overflow-x: auto; }
.callout { border: 1px solid #c9d7ea; border-left: 5px solid #2f6db5; border-radius: 4px; background: #f3f7fc;
           padding: .2rem 1rem; margin: 1rem 0; }
.callout-title { font-weight: bold; margin: .5rem 0 -.3rem; color: #1a4f8b; }
.callout-tip { border-color: #cfe6d4; border-left-color: #2e8540; background: #f3faf4; }
.callout-tip .callout-title { color: #246b33; }
.callout-warning, .callout-caution, .callout-important { border-color: #f0dcc0; border-left-color: #d07a12;
                                                          background: #fdf8f1; }
.callout-warning .callout-title, .callout-caution .callout-title, .callout-important .callout-title { color: #8a4f06; }
nav input { width: 100%; box-sizing: border-box; padding: .3rem .5rem; margin-bottom: .3rem; font: inherit;
            border: 1px solid #ccc; border-radius: 4px; }
#search-results { margin-bottom: .8rem; overflow-wrap: anywhere; }
#search-results small, #search-results .none { color: #777; }
.pager { display: flex; justify-content: space-between; gap: 1rem; margin-top: 3rem; padding-top: 1rem;
         border-top: 1px solid #ddd; }
.pager a { text-decoration: none; color: #1a4f8b; } .pager .next { margin-left: auto; text-align: right; }
.pager small { display: block; color: #777; }
.api-error { color: #a00; }
"""
CALLOUT = re.compile(r'^:::+[ \t]*\{\.callout-(?P<kind>[\w-]+)(?P<attrs>[^}]*)\}[ \t]*\n(?P<body>.*?)^:::+[ \t]*$',
                     re.M | re.S)
HEADING = re.compile(r'<h([1-4])\b[^>]*\bid="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


class Page(NamedTuple):
    "A page of the site: where it goes (relative to the site's root), its title, and its group in the sidebar."
    dst: Path
    title: str
    group: str


def math_html(tex: str, display: str) -> str:
    "LaTeX as MathML; LaTeX that latex2mathml cannot read is shown as written (and reported)."
    try: return tex_to_mathml(tex, display=display)
    except Exception as e:
        print(f'warning: LaTeX left as written ({type(e).__name__}: {e}): {tex!r}', file=sys.stderr)
        return f'<code class="tex">{html.escape(tex)}</code>'


class MathRenderer(IPythonRenderer):
    "nbconvert's markdown renderer with its math as MathML instead of the `$...$` MathJax would read."
    def block_math(self, body: str) -> str: return math_html(body, 'block')
    def inline_math(self, body: str) -> str: return math_html(body, 'inline')
    def latex_environment(self, name: str, body: str) -> str:
        return math_html(f'\\begin{{{name}}}{body}\\end{{{name}}}', 'block')


def callouts(source: str, render) -> str:
    """Markdown to HTML with `render`, each Quarto callout (`:::{.callout-KIND}` ... `:::`) a box titled by its
    `title="..."`, else by its leading heading, else by its kind."""
    out, pos = [], 0
    for m in CALLOUT.finditer(source):
        body, named = m['body'], re.search(r'title="([^"]*)"', m['attrs'])
        lead = re.match(r'\s*#+\s+(.+?)\s*#*\s*\n', body)
        if named: ttl = named[1]
        elif lead: ttl, body = lead[1], body[lead.end():]
        else: ttl = m['kind'].capitalize()
        ttl = re.sub(r'^<p>|</p>\s*$', '', render(ttl).strip())
        box = f'<div class="callout callout-{m["kind"]}"><div class="callout-title">{ttl}</div>\n{render(body)}</div>\n'
        out += [render(source[pos:m.start()]), box]
        pos = m.end()
    return ''.join(out + [render(source[pos:])])


class SiteExporter(HTMLExporter):
    "nbconvert's HTML exporter whose markdown (cells and markdown outputs) has MathML and callout boxes."
    @pass_context  # a jinja filter that reads the cell (its attachments) from the template's context
    def markdown2html(self, context, source):
        cell = context.get('cell', {})
        path = context.get('resources', {}).get('metadata', {}).get('path', '')
        def render(md: str) -> str:
            if not md.strip(): return ''
            renderer = MathRenderer(escape=False, attachments=cell.get('attachments', {}),
                                    embed_images=self.embed_images, path=path, anchor_link_text=self.anchor_link_text,
                                    exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
            return MarkdownWithMath(renderer=renderer).render(md)
        return callouts(source, render)


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
    "The navigation: the site's name, the search box, then the pages by group, `here` marked."
    groups = {}
    for p in pages: groups.setdefault(p.group, []).append(p)
    out = [f'<nav><a class="site" href="{link(here, Path("index.html"))}">{html.escape(site)}</a>',
           '<input id="search" type="search" placeholder="Search" aria-label="Search the titles and headings">',
           '<ul id="search-results"></ul>']
    for group, items in groups.items():
        if group != '.': out.append(f'<h2>{html.escape(group)}</h2>')
        current = {here: ' class="current"'}
        out.append('<ul>' + ''.join(f'<li><a href="{link(here, p.dst)}"{current.get(p.dst, "")}>'
                                    f'{html.escape(p.title)}</a></li>' for p in items) + '</ul>')
    return '\n'.join(out) + '</nav>'


def pager(pages: list, here: Path) -> str:
    "Links to the pages before and after `here` in the sidebar's order."
    i = [p.dst for p in pages].index(here)
    prev, nxt = pages[i - 1] if i else None, pages[i + 1] if i + 1 < len(pages) else None
    a = lambda p, cls, word: (f'<a class="{cls}" href="{link(here, p.dst)}"><small>{word}</small>'
                              f'{html.escape(p.title)}</a>' if p else '')
    return f'<div class="pager">{a(prev, "prev", "&larr; previous")}{a(nxt, "next", "next &rarr;")}</div>'


def page(body: str, here: Path, pages: list, site: str) -> str:
    "A whole HTML page: sidebar, body, pager; links to other notebooks point to their pages."
    body = re.sub(r'href="(?![a-z][\w+.-]*:|#|/)([^"#]*?)\.ipynb(#[^"]*)?"', r'href="\1.html\2"', body)
    ttl = next(p.title for p in pages if p.dst == here)
    root = link(here, Path('x')).removesuffix('x')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(ttl)} - {html.escape(site)}</title>\n'
            f'<link rel="stylesheet" href="{root}style.css"></head>\n'
            f'<body data-root="{root}">{sidebar(pages, here, site)}\n<main>\n{body}\n{pager(pages, here)}\n</main>\n'
            f'<script src="{root}search_index.js"></script><script src="{root}search.js"></script></body></html>\n')


def headings(body: str, here: Path, ttl: str) -> list:
    "Search entries for a page: its title, then each heading (H1 to H4) with its anchor, placed by its page and H2."
    entries, section = [{'t': ttl, 'p': ttl, 'u': here.as_posix()}], None
    for level, anchor, inner in HEADING.findall(body):
        text = html.unescape(re.sub(r'<a class="anchor-link".*?</a>|<[^>]+>', '', inner, flags=re.S)).strip()
        if level == '2': section = text
        where = f'{ttl} › {section}' if level > '2' and section else ttl
        if text and text != ttl: entries.append({'t': text, 'p': where, 'u': f'{here.as_posix()}#{anchor}'})
    return entries


def settings(nbs: Path) -> dict:
    "settings.ini next to the notebook folder (empty when there is none)."
    cfg = configparser.ConfigParser()
    cfg.read(nbs.parent / 'settings.ini')
    return dict(cfg['DEFAULT'])


def module_pages(nbs_read: dict) -> dict:
    "{module (without the package's name): its notebook's page} from the notebooks' `#| default_exp`, in order."
    found = {}
    for src, nb in nbs_read.items():
        exp = next((directives(c)['default_exp'] for c in nb.cells if 'default_exp' in directives(c)), None)
        if exp: found[exp] = src.with_suffix('.html')
    return found


def write_pages(out: Path, pages: list, bodies: dict, site: str) -> list:
    "Write each page and the search index; returns (page, title, figures, bytes) for each page."
    summary, index = [], []
    for pg in pages:
        text = page(bodies[pg.dst], pg.dst, pages, site)
        (out / pg.dst).parent.mkdir(parents=True, exist_ok=True)
        (out / pg.dst).write_text(text, encoding='utf-8')
        index += headings(bodies[pg.dst], pg.dst, pg.title)
        summary.append((pg.dst, pg.title, len(FIGURE.findall(bodies[pg.dst])), len(text.encode())))
    # JSON, loaded as a script: Chromium does not let a page opened from file:// fetch() a file
    index_js = f'const SEARCH_INDEX = {json.dumps(index, ensure_ascii=False)};\n'
    (out / 'search_index.js').write_text(index_js, encoding='utf-8')
    return summary


def build(nbs: Path, out: Path, lib=None) -> list:
    """Write the site for the notebooks under `nbs` into `out`, with the API page of package `lib` (default:
    settings.ini's `lib_name`; none when neither names one); returns (page, title, figures, bytes) for each page."""
    if out.exists():
        if not (out / MARK).exists() and any(out.iterdir()):
            sys.exit(f'{out} exists and was not made by this tool: choose another --out, or empty it first')
        shutil.rmtree(out)  # a fresh build: no page left over from a renamed notebook
    out.mkdir(parents=True)
    (out / MARK).touch()
    (out / 'style.css').write_text(CSS + HtmlFormatter().get_style_defs('.highlight'), encoding='utf-8')
    shutil.copyfile(Path(__file__).with_name('docs_search.js'), out / 'search.js')
    sources = pages_in_order(nbs)
    if Path('index.ipynb') not in sources: print(f'warning: no {nbs}/index.ipynb: the site has no home page')
    nbs_read = {p: nbformat.read(nbs / p, as_version=4) for p in sources}
    cfg = settings(nbs)
    site, lib = cfg.get('title', nbs.resolve().parent.name), lib or cfg.get('lib_name')
    pages = [Page(p.with_suffix('.html'), title(nb, p.stem), p.parent.as_posix()) for p, nb in nbs_read.items()]
    exports = module_pages(nbs_read)  # before for_reader drops the `#| default_exp` lines
    exporter = SiteExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
    bodies = {pg.dst: exporter.from_notebook_node(for_reader(nb))[0] for pg, nb in zip(pages, nbs_read.values())}
    if lib:
        titles = {p.dst: p.title for p in pages}
        package = lib.split('.')[0]  # `#| default_exp` names a module of the package: tasks.base
        mods = {f'{package}.{m}': (link(Path('api.html'), dst), titles[dst]) for m, dst in exports.items()}
        pages.append(Page(Path('api.html'), 'API reference', 'reference'))
        bodies[pages[-1].dst] = api_html(lib, lambda md: exporter.markdown2html({}, md), mods)
    return write_pages(out, pages, bodies, site)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nbs', type=Path, default=ROOT / 'nbs', help='the notebook folder (default nbs/)')
    ap.add_argument('--out', type=Path, default=ROOT / '_docs', help='where the site goes (default _docs/)')
    ap.add_argument('--lib', help="the package (or one module of it) the API page documents "
                                  "(default: settings.ini's lib_name next to --nbs)")
    args = ap.parse_args(argv)
    summary = build(args.nbs, args.out, args.lib)
    for dst, ttl, figs, size in summary: print(f'{dst.as_posix():38} {figs:3} figures {size / 1e3:8.1f} kB  {ttl}')
    total = sum(f.stat().st_size for f in args.out.rglob('*') if f.is_file())
    print(f'{len(summary)} pages, {sum(s[2] for s in summary)} figures, {total / 1e6:.2f} MB in {args.out}')


if __name__ == '__main__':
    main()
