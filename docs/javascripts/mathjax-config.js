// MathJax 3 settings for pymdownx.arithmatex (generic mode), as in Material for MkDocs' docs:
// typeset only the arithmatex elements, again whenever Material swaps in a page.
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

document$.subscribe(() => {
  if (!window.MathJax.startup || !window.MathJax.startup.output) return; // first load: MathJax typesets on startup
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
