// A montage's tiles as moments of the video. On a gallery card, moving the pointer across
// the thumbnail shows the tile of that moment (the sheet as a background, one tile of it in
// view); on a file page, a click on a tile plays the preview from that moment. The sheet is
// N×N tiles, row by row; `data-times` holds each tile's time in seconds.
"use strict";

function tileAt(element, event) {
  const n = Number(element.dataset.n);
  const box = element.getBoundingClientRect();
  const x = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 0.9999);
  const y = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 0.9999);
  return { n, x, y };
}

function clock(seconds) {
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  return `${minutes}:${String(whole % 60).padStart(2, "0")}`;
}

function scrubbed(thumb) {
  // Across the card, left to right: every tile of the sheet in turn.
  const n = Number(thumb.dataset.n);
  const times = thumb.dataset.times.split(",").map(Number);
  const layer = document.createElement("span");
  layer.className = "scrub";
  layer.hidden = true;
  layer.innerHTML = '<span class="frame"></span><span class="when"></span><span class="line"></span>';
  const frame = layer.querySelector(".frame");
  frame.style.aspectRatio = thumb.dataset.tile;
  frame.style.backgroundImage = `url("${thumb.dataset.sheet}")`;
  frame.style.backgroundSize = `${n * 100}% ${n * 100}%`;
  thumb.append(layer);
  const show = (event) => {
    const { x } = tileAt(thumb, event);
    const tile = Math.floor(x * n * n);
    const column = tile % n, row = Math.floor(tile / n);
    const at = (i) => (n > 1 ? (i / (n - 1)) * 100 : 0);
    frame.style.backgroundPosition = `${at(column)}% ${at(row)}%`;
    frame.dataset.tile = String(tile);
    layer.querySelector(".when").textContent = clock(times[tile] ?? 0);
    layer.querySelector(".line").style.width = `${((tile + 1) / (n * n)) * 100}%`;
    layer.hidden = false;
  };
  thumb.addEventListener("pointermove", show);
  thumb.addEventListener("pointerenter", show);
  thumb.addEventListener("pointerleave", () => { layer.hidden = true; });
}

function seeking(montage) {
  // A click on a tile: the preview from that tile's moment.
  const times = montage.dataset.times.split(",").map(Number);
  const video = document.querySelector("video.preview");
  if (!video) return;
  montage.title = "Click a tile to play the preview from there";
  montage.addEventListener("click", (event) => {
    const { n, x, y } = tileAt(montage, event);
    const tile = Math.floor(y * n) * n + Math.floor(x * n);
    video.currentTime = times[tile] ?? 0;
    video.play().catch(() => {});  // a browser may ask for a gesture of its own first
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".thumb[data-sheet]").forEach(scrubbed);
  document.querySelectorAll(".montage[data-times]").forEach(seeking);
});
