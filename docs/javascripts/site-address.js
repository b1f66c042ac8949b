// A command on the page names a file of this site by its full address (curl on Puma needs one).
// Where the site's address is not known at build time, the page holds a stand-in; this puts the
// address the reader's browser is on in its place, in the text that the copy button copies too.
(() => {
  const token = document.currentScript.dataset.token;
  const config = JSON.parse(document.getElementById("__config").textContent);
  const root = new URL(config.base + "/", location.href).href.replace(/\/$/, "");
  const swap = () => {
    for (const code of document.querySelectorAll("code")) {
      const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (node.nodeValue.includes(token)) node.nodeValue = node.nodeValue.replaceAll(token, root);
      }
    }
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", swap);
  else swap();
})();
