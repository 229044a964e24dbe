// lagscope reference app: sort the items table by a column when its header is clicked.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("items");
  if (!table) return;
  const body = table.tBodies[0];
  table.tHead.querySelectorAll("th").forEach((th, column) => {
    th.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.tHead.querySelectorAll("th").forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = body.rows.length > 0 && body.rows[0].cells[column].classList.contains("num");
      const key = (row) => row.cells[column].textContent;
      const rows = Array.from(body.rows).sort((a, b) => {
        const order = numeric ? Number(key(a)) - Number(key(b)) : key(a).localeCompare(key(b));
        return ascending ? order : -order;
      });
      body.append(...rows);
    });
  });
});
