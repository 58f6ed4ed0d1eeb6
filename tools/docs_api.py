"""The API reference page of tools/build_docs.py: every name a package exports, with its signature and docstring.

The signature (with its docments comments) and the docstring are those nbdev's `show_doc` shows (fastcore's
`MarkdownRenderer`, without nbdev's link to the source on the code host); a class also lists its public methods that
have a docstring, a constant shows its value. A module is imported from the installed package: one that fails to
import is named on the page with its error, and the build goes on."""
import html, importlib, inspect, pkgutil, re

from fastcore.docments import MarkdownRenderer

MAX_REPR = 300  # characters of a constant's value shown


def modules(lib: str) -> list:
    """(name, module or the error that stopped its import) for `lib` and, when it is a package, each of its public
    modules, those exporting names (`__all__`)."""
    pkg = importlib.import_module(lib)
    found = [(lib, pkg)]
    for info in pkgutil.walk_packages(getattr(pkg, '__path__', []), f'{lib}.'):
        if any(part.startswith('_') for part in info.name.split('.')): continue
        try: found.append((info.name, importlib.import_module(info.name)))
        except Exception as e: found.append((info.name, e))
    return [(n, m) for n, m in found if isinstance(m, Exception) or getattr(m, '__all__', None)]


def value_doc(obj) -> str:
    "A constant's value as Python, shortened, without the memory addresses of reprs."
    r = re.sub(r' at 0x[0-9a-f]+', '', repr(obj))
    return r if len(r) <= MAX_REPR else r[:MAX_REPR] + ' ...'


def symbol_doc(obj, name: str) -> str:
    "Markdown of `obj` as `show_doc` gives it: its signature with docments comments, then its docstring."
    if not callable(obj): return f'```python\n{name.rsplit(".", 1)[-1]} = {value_doc(obj)}\n```'
    r = MarkdownRenderer(obj, name=name)
    sig = str(r.dm).strip('\n')
    if inspect.isclass(obj): sig = re.sub(r'^def ', 'class ', sig)
    return f'```python\n{sig}\n```' + (f'\n\n{r.docs}' if r.docs else '')


def methods(cls) -> list:
    "(name, method) for the public methods defined by `cls` itself that have a docstring, in definition order."
    found = []
    for k, v in vars(cls).items():
        fn = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
        if not k.startswith('_') and inspect.isfunction(fn) and fn.__doc__: found.append((k, getattr(cls, k)))
    return found


def heading(level: int, anchor: str, text: str) -> str:
    a = html.escape(anchor, quote=True)
    return f'<h{level} id="{a}">{html.escape(text)}<a class="anchor-link" href="#{a}">&#182;</a></h{level}>'


def module_html(name: str, mod, render, page, page_title) -> str:
    "A module's section: its docstring and page, then each exported name (and a class's methods)."
    out = [heading(2, name, name)]
    if isinstance(mod, Exception):
        return out[0] + f'<p class="api-error">not importable here: {html.escape(repr(mod))}</p>'
    about = (mod.__doc__ or '').strip()
    if page: about += f' See [{page_title}]({page}).'
    if about: out.append(render(about))
    for sym in mod.__all__:
        obj = getattr(mod, sym)
        out += [heading(3, f'{name}.{sym}', sym), render(symbol_doc(obj, sym))]
        if inspect.isclass(obj):
            for m, fn in methods(obj):
                out += [heading(4, f'{name}.{sym}.{m}', f'{sym}.{m}'), render(symbol_doc(fn, f'{sym}.{m}'))]
    return '\n'.join(out)


def api_html(lib: str, render, pages: dict) -> str:
    """The body of the API page for package (or module) `lib`; `render` turns markdown into HTML, `pages` maps a module name to
    (link to its notebook's page, that page's title). Modules follow the notebooks' order, the rest by name."""
    mods = sorted(modules(lib), key=lambda nm: (nm[0] not in pages, list(pages).index(nm[0]) if nm[0] in pages else 0,
                                                 nm[0]))
    intro = (f'Every name `{lib}` exports, module by module, with its signature and docstring as `show_doc` gives '
             'them; each module links to the page that explains it.')
    toc = ', '.join(f'[{n}](#{n})' for n, _ in mods)
    return '\n'.join([heading(1, 'API-reference', 'API reference'), render(intro), render(toc)]
                     + [module_html(n, m, render, *pages.get(n, (None, None))) for n, m in mods])
