// The Now page, live: one server-sent event per second carries what runs on every worker,
// drawn by the server with the very markup the page was first sent with.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (!live) return;
  const events = new EventSource(live.dataset.events);
  events.onmessage = (message) => { live.innerHTML = JSON.parse(message.data).html; };
});
