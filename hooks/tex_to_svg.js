// Typesets TeX into SVG with MathJax 3 in Node, for hooks/drawing.py, one equation per line:
// stdin gets {"tex": "...", "display": true|false} lines, stdout answers {"svg": "..."} or
// {"error": "..."} lines in the same order. Argument: the folder of MathJax's es5 components.
const readline = require("readline");
const root = process.argv[2];

require(`${root}/node-main.js`).init({
  loader: { paths: { mathjax: root }, load: ["input/tex", "output/svg", "a11y/assistive-mml"] },
  tex: {
    packages: { "[-]": ["noundefined"] },
    formatError: (jax, error) => { throw error; }, // a TeX mistake fails the build, not the page
  },
  svg: { fontCache: "none" },
  startup: { typeset: false },
}).then((MathJax) => {
  const adaptor = MathJax.startup.adaptor;
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const { tex, display } = JSON.parse(line);
    let answer;
    try {
      const node = MathJax.tex2svg(tex, { display });
      const error = adaptor.getAttribute(node.children[0], "data-mjx-error");
      answer = error ? { error } : { svg: adaptor.outerHTML(node) };
    } catch (err) {
      answer = { error: String(err.message || err) };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
  });
  process.stdout.write(JSON.stringify({ css: adaptor.textContent(MathJax.svgStylesheet()) }) + "\n");
});
