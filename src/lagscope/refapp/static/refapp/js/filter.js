// lagscope reference app: show only the rows whose text contains what is typed.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("filter");
  const table = document.getElementById("items");
  if (!input || !table) return;
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    for (const row of table.tBodies[0].rows) {
      row.classList.toggle("hidden", needle !== "" && !row.textContent.toLowerCase().includes(needle));
    }
  });
});
