// lagscope reference app: the page's own load time and connections, as the browser saw them.
"use strict";
window.addEventListener("load", () => {
  setTimeout(() => {
    const out = document.getElementById("timing");
    const [nav] = performance.getEntriesByType("navigation");
    if (!out || !nav) return;
    const assets = performance.getEntriesByType("resource").length;
    out.textContent = `This page loaded in ${Math.round(nav.loadEventStart)} ms with ${assets} assets.`;
  }, 0);
});
