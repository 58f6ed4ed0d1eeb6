"""Write a notebook from a list of (kind, source) cells: a small helper for adding notebooks by script."""
import json, sys, uuid
def write(path, cells):
    nb = {'cells': [], 'metadata': {'jupytext': {'cell_metadata_filter': '-all', 'main_language': 'python',
          'notebook_metadata_filter': '-all'}}, 'nbformat': 4, 'nbformat_minor': 5}
    for kind, src in cells:
        src = src.strip('\n')
        c = {'cell_type': kind, 'id': uuid.uuid4().hex[:8], 'metadata': {}, 'source': src.splitlines(True)}
        if kind == 'code': c.update(execution_count=None, outputs=[])
        nb['cells'].append(c)
    json.dump(nb, open(path, 'w'), indent=1); open(path, 'a').write('\n')
