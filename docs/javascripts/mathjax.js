// MathJax 3 set up for pymdownx.arithmatex (generic mode), as in the Material for MkDocs docs.
// MathJax itself is served by the site (assets/mathjax/, copied by docs/hooks.py from the
// django-static-mathjax package), so formulas render without a network. This object must be
// defined before assets/mathjax/tex-mml-chtml.js loads (mkdocs.yml lists this file first).
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
  startup: {
    // After the first typesetting pass, mark the page (tests/test_docs_browser.py waits for it).
    pageReady: function () {
      return MathJax.startup.defaultPageReady().then(function () {
        document.documentElement.setAttribute("data-mathjax", "done");
      });
    },
  },
};

// Material's document$ emits for every page, also after instant navigation (if enabled).
document$.subscribe(function () {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.output)) {
    return; // first page: MathJax is still starting and will typeset it in pageReady
  }
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
