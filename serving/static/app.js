// The page: pick a model, send an image to POST /v1/object-detection/<model>, draw what comes back.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem("apiKey") || "";
let models = {};

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

// Calls the API with the key when there is one; a 401 brings up the key form.
async function api(path, options = {}) {
  const headers = apiKey ? { "X-API-Key": apiKey } : {};
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("key-form").hidden = false;
    throw new Error("the server needs an API key");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`${response.status}: ${body.detail ? JSON.stringify(body.detail) : response.statusText}`);
  }
  return response;
}

async function loadModels() {
  const list = await (await api("/v1/models")).json();
  models = Object.fromEntries(list.map((m) => [m.name, m]));
  $("model").replaceChildren(...list.map((m) => new Option(`${m.name} (${m.task}, ${m.imgsz} px)`, m.name)));
  $("key-form").hidden = true;
  setStatus(`${list.length} model${list.length === 1 ? "" : "s"} ready`);
}

// A distinct, stable colour per class index (golden-angle hues).
const classColor = (c, alpha = 1) => `hsla(${(c * 137.508) % 360}, 85%, 45%, ${alpha})`;

function drawDetections(ctx, records) {
  const lw = Math.max(2, Math.round(Math.max(ctx.canvas.width, ctx.canvas.height) / 300));
  ctx.font = `${6 * lw + 4}px sans-serif`;
  for (const r of records.slice().reverse()) {  // the most confident drawn last, on top
    if (r.segments && r.segments.length) {
      ctx.beginPath();
      r.segments.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.fillStyle = classColor(r.class, 0.4);
      ctx.fill();
    }
    ctx.lineWidth = lw;
    ctx.strokeStyle = classColor(r.class);
    ctx.strokeRect(r.xmin, r.ymin, r.xmax - r.xmin, r.ymax - r.ymin);
    const label = `${r.name} ${r.confidence.toFixed(2)}`;
    const h = 6 * lw + 8;
    const y = r.ymin >= h ? r.ymin - h : r.ymin;
    ctx.fillStyle = classColor(r.class);
    ctx.fillRect(r.xmin, y, ctx.measureText(label).width + 2 * lw, h);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, r.xmin + lw, y + h - lw - 2);
  }
}

function fillTable(records, task) {
  const columns = task === "classify" ? ["class", "name", "confidence"]
    : ["class", "name", "confidence", "xmin", "ymin", "xmax", "ymax"].concat(task === "segment" ? ["points"] : []);
  const head = $("results").tHead.rows[0];
  head.replaceChildren(...["#"].concat(columns).map((c) => Object.assign(document.createElement("th"), { textContent: c })));
  const rows = records.map((r, i) => {
    const tr = document.createElement("tr");
    const cells = [i + 1].concat(columns.map((c) => (c === "points" ? (r.segments || []).length
      : c === "confidence" ? r.confidence.toFixed(3) : r[c])));
    cells.forEach((v, k) => tr.appendChild(Object.assign(document.createElement("td"),
      { textContent: v, className: columns[k - 1] === "name" ? "name" : "" })));
    return tr;
  });
  $("results").tBodies[0].replaceChildren(...rows);
  $("results").hidden = false;
}

async function predict(file) {
  const name = $("model").value;
  if (!name) return setStatus("no model to send the image to", true);
  const params = new URLSearchParams({ conf: $("conf").value, iou: $("iou").value });
  if ($("size").value) params.set("size", $("size").value);
  const form = new FormData();
  form.append("image", file);
  setStatus(`running ${name} on ${file.name}...`);
  const canvas = $("canvas");
  canvas.dataset.state = "busy";
  try {
    const response = await api(`/v1/object-detection/${encodeURIComponent(name)}?${params}`, { method: "POST", body: form });
    const records = await response.json();
    const timing = /dur=([\d.]+)/.exec(response.headers.get("Server-Timing") || "");
    const bitmap = await createImageBitmap(file);
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const task = models[name].task;
    if (task !== "classify") drawDetections(ctx, records);
    canvas.hidden = false;
    fillTable(records, task);
    $("timing").textContent = `server inference: ${timing ? timing[1] : "?"} ms (batch of ${response.headers.get("X-Batch-Size") || "?"}), ${records.length} result${records.length === 1 ? "" : "s"}`;
    setStatus(`${file.name}: done`);
    canvas.dataset.state = "done";
  } catch (e) {
    setStatus(e.message, true);
    canvas.dataset.state = "error";
  }
}

$("file").addEventListener("change", (e) => {
  if (e.target.files.length) predict(e.target.files[0]);
  e.target.value = "";  // so that choosing the same file again (say, for another model) fires again
});
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => e.dataTransfer.files.length && predict(e.dataTransfer.files[0]));
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey = $("key").value;
  sessionStorage.setItem("apiKey", apiKey);
  loadModels().catch((err) => setStatus(err.message, true));
});

(async () => {
  try {
    const health = await (await fetch("/health")).json();
    if (health.auth && !apiKey) {
      $("key-form").hidden = false;
      return setStatus("enter the API key to start");
    }
    await loadModels();
  } catch (e) {
    setStatus(e.message, true);
  }
})();
