// The Now page's live bars: one server-sent event per second lists what runs on every worker.
"use strict";

function clock(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s % 60).padStart(2, "0");
}

function taskElement(task) {
  const box = document.createElement("div");
  box.className = "task";
  const title = document.createElement("div");
  title.textContent = task.name + " · " + task.label + " · " + task.worker;
  const bar = document.createElement("progress");
  bar.max = task.total || 1;
  bar.value = Math.min(task.done, task.total || 0);
  const figures = document.createElement("div");
  figures.className = "figures";
  const part = task.total ? Math.floor(100 * task.done / task.total) + "% · " : "";
  const left = task.lost_since === null
    ? " · ETA " + clock(task.remaining)
    : " · stalled: worker lost, last heard " + new Date(task.lost_since * 1000).toLocaleString();
  figures.textContent = part + clock(task.done) + " of " + clock(task.total) +
    (task.speed && task.lost_since === null ? " · " + task.speed.toFixed(2) + "×" : "") + left;
  box.append(title, bar, figures);
  return box;
}

function show(section, running) {
  section.replaceChildren();
  if (!running.tasks.length) {
    const idle = document.createElement("p");
    idle.className = "idle";
    idle.textContent = running.paused ? "Paused: nothing new starts." : "Nothing runs.";
    section.append(idle);
  }
  for (const task of running.tasks) section.append(taskElement(task));
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("tasks");
  if (!section) return;
  const events = new EventSource(section.dataset.events);
  events.onmessage = (message) => show(section, JSON.parse(message.data));
});
