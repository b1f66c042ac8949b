// MathJax 3 settings for pymdownx.arithmatex (generic mode), as in Material for MkDocs' docs:
// typeset only the arithmatex elements. The site's own copy of MathJax (path in data-src) is
// loaded after the page's `load` event, so the text is readable first; MathJax typesets the
// page as soon as it starts.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

(() => {
  const source = document.currentScript.dataset.src;
  const start = () => {
    const script = document.createElement("script");
    script.src = source;
    document.head.append(script);
  };
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start, { once: true });
})();

// Material may swap in a new page without a reload: typeset that one too. The first page is
// typeset by MathJax's own start-up (re-typesetting it here would drop its glyph styles).
let firstPage = true;
document$.subscribe(() => {
  if (firstPage) {
    firstPage = false;
    return;
  }
  if (!window.MathJax.typesetPromise) return; // MathJax not started yet: it will typeset on start-up
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
