// The site's search box (copied to _docs/search.js by tools/build_docs.py): page titles and headings containing
// every word typed, from SEARCH_INDEX (search_index.js: JSON written at build time, as a script so that pages opened
// from file:// can load it). Each entry: t the heading, p its page's title, u its URL from the site's root.
(function () {
  const box = document.getElementById('search'), list = document.getElementById('search-results');
  const root = document.body.dataset.root || '';
  function matches(query) {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return [];
    const rank = e => e.t.toLowerCase().startsWith(words[0]) ? 0 : e.t.toLowerCase().includes(words[0]) ? 1 : 2;
    return SEARCH_INDEX.filter(e => words.every(w => (e.t + ' ' + e.p).toLowerCase().includes(w)))
      .map((e, i) => [rank(e), i, e]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, 20).map(x => x[2]);
  }
  function show() {
    const items = matches(box.value).map(e => {
      const li = document.createElement('li'), a = document.createElement('a');
      a.href = root + e.u;
      a.textContent = e.t;
      if (e.t !== e.p) { const s = document.createElement('small'); s.textContent = e.p; a.append(' ', s); }
      li.append(a);
      return li;
    });
    if (box.value.trim() && !items.length) {
      const li = document.createElement('li'); li.className = 'none'; li.textContent = 'no match'; items.push(li);
    }
    list.replaceChildren(...items);
  }
  box.addEventListener('input', show);
  box.addEventListener('keydown', ev => {
    const first = list.querySelector('a');
    if (ev.key === 'Enter' && first) location.href = first.href;
    if (ev.key === 'Escape') { box.value = ''; show(); }
  });
  show();
})();
