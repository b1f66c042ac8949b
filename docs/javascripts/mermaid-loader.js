// Material for MkDocs draws each diagram with the global `mermaid` (and fetches Mermaid from a
// CDN when there is none). This stand-in is that global: it keeps Material's settings and
// loads the site's own copy of Mermaid (3.5 MB, path in data-src) only after the page's `load`
// event, so the text is readable and usable first; diagrams follow a moment later.
(() => {
  const source = document.currentScript.dataset.src;
  let settings = {};
  let loading = null;

  function loadMermaid() {
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const start = () => {
          const script = document.createElement("script");
          script.src = source;
          script.onload = () => {
            window.mermaid.initialize(settings); // the real Mermaid replaced this stand-in
            resolve(window.mermaid);
          };
          script.onerror = () => reject(new Error(`could not load ${source}`));
          document.head.append(script);
        };
        if (document.readyState === "complete") start();
        else window.addEventListener("load", start, { once: true });
      });
    }
    return loading;
  }

  window.mermaid = {
    initialize(options) {
      settings = options;
    },
    async render(id, text) {
      const mermaid = await loadMermaid();
      return mermaid.render(id, text);
    },
  };
})();
