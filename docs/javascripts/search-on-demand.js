// Material for MkDocs fetches the search index (search/search_index.json, most of a megabyte
// here) as soon as any page loads, though most visits never search. This holds that one request
// back until the reader reaches for search: points at it, focuses the search field, or opens it
// from the header or with the keyboard (s, f or /). It must run before Material's bundle.
(() => {
  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  const held = [];
  let wanted = false;
  const fetchNow = () => {
    if (wanted) return;
    wanted = true;
    held.splice(0).forEach((release) => release());
  };
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.isSearchIndex = new URL(url, location.href).pathname.endsWith("/search/search_index.json");
    return open.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...body) {
    if (!this.isSearchIndex || wanted) return send.apply(this, body);
    held.push(() => send.apply(this, body));
  };
  const inSearch = (event) => event.target instanceof Element && event.target.closest(".md-search, label[for='__search']");
  for (const type of ["pointerover", "focusin", "click"]) {
    document.addEventListener(type, (event) => inSearch(event) && fetchNow(), { passive: true });
  }
  document.addEventListener("change", (event) => event.target.id === "__search" && fetchNow());
})();
