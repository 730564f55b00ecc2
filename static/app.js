// Scenery: small progressive enhancements. Every page works without this script.
"use strict";

// Infinite scroll on the home grid: fetch the next page's HTML and append its tiles.
function infiniteScroll() {
  const pager = document.querySelector(".pager");
  const grid = document.querySelector(".grid");
  if (!pager || !grid || !("IntersectionObserver" in window)) return;
  let loading = false;
  const observer = new IntersectionObserver(async (entries) => {
    const next = pager.querySelector('a[rel="next"]');
    if (!entries.some((e) => e.isIntersecting) || loading || !next) return;
    loading = true;
    try {
      const response = await fetch(next.href, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      doc.querySelectorAll(".grid > .tile").forEach((tile) => grid.appendChild(document.adoptNode(tile)));
      const newPager = doc.querySelector(".pager");
      if (newPager) pager.replaceChildren(...Array.from(newPager.childNodes).map((n) => document.adoptNode(n)));
      history.replaceState(null, "", next.href);
    } finally {
      loading = false;
      // Observe afresh: if the pager is still in view, the callback runs again at once.
      observer.unobserve(pager);
      observer.observe(pager);
    }
  }, { rootMargin: "800px" });
  observer.observe(pager);
}

// Search by image: show a preview of the chosen file and accept drag and drop.
function dropzone() {
  const zone = document.querySelector(".dropzone");
  if (!zone) return;
  const input = zone.querySelector("input[type=file]");
  const show = () => {
    const file = input.files && input.files[0];
    zone.querySelector("img.preview")?.remove();
    if (!file) return;
    const img = document.createElement("img");
    img.className = "preview";
    img.alt = "";
    img.src = URL.createObjectURL(file);
    zone.appendChild(img);
  };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
  });
}

// "Fits my screen": the screen's size in device pixels goes into the filter form's fits field.
function fitsScreen() {
  document.querySelectorAll(".filter-bar .fits-screen").forEach((button) => {
    button.addEventListener("click", () => {
      const form = button.closest("form");
      const ratio = window.devicePixelRatio || 1;
      const width = Math.round(window.screen.width * ratio);
      const height = Math.round(window.screen.height * ratio);
      form.querySelector('input[name="fits"]').value = `${width}x${height}`;
      form.requestSubmit();
    });
  });
}

document.addEventListener("DOMContentLoaded", () => { infiniteScroll(); dropzone(); fitsScreen(); });
