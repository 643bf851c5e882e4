// Live parts of a page: an element with `data-events` is redrawn by each server-sent event
// of that address, with the very markup the page was first sent with (`html`). One with
// `data-follow` holds a scrolled list (the log) that stays at its end while it is there.
"use strict";

function atEnd(list) {
  return !list || list.scrollHeight - list.scrollTop - list.clientHeight < 24;
}

function toEnd(part) {
  const list = part.querySelector(".log");
  if (list) list.scrollTop = list.scrollHeight;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const part of document.querySelectorAll("[data-events]")) {
    const follow = part.hasAttribute("data-follow");
    if (follow) toEnd(part);
    const events = new EventSource(part.dataset.events);
    events.onmessage = (message) => {
      const following = follow && atEnd(part.querySelector(".log"));
      part.innerHTML = JSON.parse(message.data).html;
      if (following) toEnd(part);
    };
  }
});
