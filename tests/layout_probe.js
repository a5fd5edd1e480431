// Layout probe for the render test (tests/test_book.py): after the page has loaded, list
// every element of the article that reaches past the column without a sideways-scrolling box
// around it, every scrolling box without the edge shadow that shows it scrolls, every code
// block (outside cell outputs) whose lines are wider than the block, and the scale at which
// each image is shown; the result goes into <body data-layout="...">, read from the dumped DOM.
window.addEventListener("load", () => setTimeout(() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main");
  const edge = main.getBoundingClientRect().right + 1;
  const out = {column: main.getBoundingClientRect().width, overflow: [], noAffordance: [], code: [], figures: []};
  const scrollsX = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const describe = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") + " «" + (el.textContent || "").trim().slice(0, 60) + "»";
  for (const el of main.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    let box = el.parentElement, inside = false;
    while (box && box !== main) { if (scrollsX(box)) { inside = true; break; } box = box.parentElement; }
    if (!inside && r.right > edge && !scrollsX(el)) out.overflow.push(describe(el));
    if (scrollsX(el) && el.scrollWidth > el.clientWidth + 1) {
      if (!getComputedStyle(el).backgroundImage.includes("gradient")) out.noAffordance.push(describe(el));
      if (el.tagName === "PRE" && !el.closest(".cell_output")) out.code.push(describe(el));
    }
  }
  for (const img of main.querySelectorAll("img")) {
    if (img.naturalWidth) out.figures.push([img.getAttribute("src"), img.getBoundingClientRect().width / img.naturalWidth]);
  }
  document.body.setAttribute("data-layout", JSON.stringify(out));
}, 300));
