// painterly studio — the page. Plain JavaScript, no build step, no libraries, nothing from the internet.
//
// State lives in a few variables below; the server is the source of truth for jobs. The page submits
// a job (multipart POST /api/jobs), follows it through its event stream (GET /api/jobs/{id}/events),
// and keeps the gallery in step by polling GET /api/jobs.
"use strict";

const $ = (id) => document.getElementById(id);

let LOSS_TERMS = ["total"];   // the loss terms of a job's losses and history: /api/config's loss_terms
const LOSS_COLORS = { total: "#b4532a", content: "#3d5a98", style: "#9b4f96", tv: "#5fa8a0", laplacian: "#c59a2b" };
const OTHER_COLORS = ["#6b8e23", "#8b5a2b", "#d2691e", "#708090"];
let LOSS_LABELS = {};          // term -> the name the page shows (tv: smoothness)
let STANDARD_SHOWN = new Set(["total"]);  // the terms every run reports (the others: listed when a run has them)
const GALLERY_POLL_MS = 3000;

let serverConfig = null;       // GET /api/config: defaults, presets, limits
let contentFile = null;        // File, or null
let styleFiles = [];           // File[]
let useDemo = false;           // the built-in pair instead of files
let initJob = null;            // id of a finished job to start from, or null
let current = null;            // the job on the stage: {id, status, ...}
let events = null;             // EventSource following `current`
let history = [];              // [iteration, ...LOSS_TERMS' values] of `current`
let frames = 0;                // preview updates shown for `current`
const cards = new Map();       // job id -> {el, version}

// --- start-up ---------------------------------------------------------------------------------------

async function init() {
  try {
    serverConfig = await getJSON("/api/config");
  } catch (err) {
    showFormError(err.message);
    return;
  }
  setLossTerms(serverConfig.loss_terms || []);
  const d = serverConfig.defaults;
  $("optimizer").value = d.optimizer;
  $("laplacian-weight").value = d.laplacian_weight || 0;
  if (d.style_loss) $("style-loss").value = d.style_loss;
  $("original-colors").value = d.original_colors;
  if (d.color_contrast) $("color-contrast").value = d.color_contrast;
  contrastApplies();
  $("multiscale").checked = d.multiscale;
  if (["content", "noise", "style"].includes(d.init)) $("init").value = d.init;
  $("size").max = serverConfig.limits.max_size;
  // What fits this machine (tiles make large sizes possible; the server refuses above it).
  $("size-limit").textContent = ` · up to ${serverConfig.limits.max_size}`;
  $("size").title = serverConfig.limits.max_size_note || `at most ${serverConfig.limits.max_size} px on this server`;
  $("iterations").max = serverConfig.limits.max_iterations;
  applyPreset("draft");
  updateStrengthLabel();
  wireInputs();
  drawChart();
  refreshGallery();
  setInterval(refreshGallery, GALLERY_POLL_MS);
  window.addEventListener("resize", () => drawChart());
  resumeFromAddress();
}

/** The loss list and the chart's lines: one per term the server reports (a new term needs no edit here). */
function setLossTerms(terms) {
  if (!terms.length) return;
  LOSS_TERMS = terms.map((t) => t.name);
  LOSS_LABELS = Object.fromEntries(terms.map((t) => [t.name, t.label]));
  STANDARD_SHOWN = new Set(terms.filter((t) => t.always).map((t) => t.name));
  terms.forEach((t, i) => { if (!LOSS_COLORS[t.name]) LOSS_COLORS[t.name] = OTHER_COLORS[i % OTHER_COLORS.length]; });
  $("losses").replaceChildren(...terms.map((t) => {
    const row = el("div", { "data-term": t.name });
    row.hidden = !t.always;  // shown once a job reports it
    row.append(el("dt", {}, t.label), el("dd", { id: `loss-${t.name}` }, "–"));
    return row;
  }));
}

// The job on the stage is in the address (/#<id>): a reload, or the address opened in another tab,
// shows it again (and follows it if it is still running).
async function resumeFromAddress() {
  const id = location.hash.slice(1);
  if (!/^[0-9a-f]{32}$/.test(id)) return;
  try {
    show(await getJSON(`/api/jobs/${id}`));
  } catch (err) {
    // Gone (removed, another workdir): forget it. A server not reachable just now is no answer.
    if (err.status === 404) window.history.replaceState(null, "", location.pathname);
  }
}

function wireInputs() {
  $("content-input").addEventListener("change", (e) => { setContent(e.target.files[0]); e.target.value = ""; });
  $("style-input").addEventListener("change", (e) => { addStyles(e.target.files); e.target.value = ""; });
  for (const zone of [$("content-drop"), $("style-drop")]) {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const files = [...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || f.type === "" || PainterlyVideo.isClip(f));
      if (!files.length) return;
      if (zone.dataset.kind === "content") setContent(files[0]);
      else addStyles(files);
    });
  }
  $("use-demo").addEventListener("click", chooseDemo);
  $("preset").addEventListener("change", (e) => applyPreset(e.target.value));
  $("original-colors").addEventListener("change", contrastApplies);
  $("size").addEventListener("input", () => { $("preset").value = matchingPreset(); });
  $("iterations").addEventListener("input", () => { $("preset").value = matchingPreset(); });
  $("strength").addEventListener("input", updateStrengthLabel);
  $("init-job-clear").addEventListener("click", () => setInitJob(null));
  $("setup").addEventListener("submit", (e) => { e.preventDefault(); startJob(); });
  $("cancel").addEventListener("click", cancelCurrent);
  $("resume").addEventListener("click", () => current && resumeJob(current.id));
  $("use-as-init").addEventListener("click", () => current && setInitJob(current.id));
}

// --- choosing images --------------------------------------------------------------------------------

function setContent(file) {
  if (!file) return;
  leaveDemo();
  showFormError("");  // the last refusal was about the images as they were
  // A clip goes where the photo goes: the job becomes a video job.
  const clip = PainterlyVideo.isClip(file);
  PainterlyVideo.setClip(clip ? file : null);
  contentFile = clip ? null : file;
  renderThumbs();
}

function addStyles(fileList) {
  leaveDemo();
  showFormError("");
  const max = serverConfig ? serverConfig.limits.max_styles : 8;
  const left = [];
  for (const f of fileList) if (styleFiles.length < max) styleFiles.push(f); else left.push(f.name);
  // Never drop a painting without a word.
  if (left.length) showFormError(`At most ${max} style images on this server: ${left.join(", ")} not added.`);
  renderThumbs();
}

function chooseDemo() {
  useDemo = true;
  contentFile = null;
  PainterlyVideo.setClip(null);
  styleFiles = [];
  renderThumbs();
}

function leaveDemo() {
  if (!useDemo) return;
  useDemo = false;
  contentFile = null;
  styleFiles = [];
}

function renderThumbs() {
  const contentBox = $("content-thumbs");
  const styleBox = $("style-thumbs");
  contentBox.replaceChildren();
  styleBox.replaceChildren();
  if (useDemo) {
    contentBox.append(thumb("/api/demo/content", "demo content"));
    styleBox.append(thumb("/api/demo/style", "demo style"));
    PainterlyMask.setContentURL("/api/demo/content");
    PainterlyMask.setStyleCount(1);
    return;
  }
  PainterlyMask.setContentURL(contentFile ? objectURL(contentFile) : null);
  PainterlyMask.setStyleCount(styleFiles.length);
  if (contentFile) contentBox.append(thumb(objectURL(contentFile), contentFile.name, () => { contentFile = null; renderThumbs(); }));
  else if (PainterlyVideo.clip()) contentBox.append(PainterlyVideo.thumb(() => { PainterlyVideo.setClip(null); renderThumbs(); }));
  else contentBox.append(hint("Drop a photo or a clip here"));
  styleFiles.forEach((f, i) => styleBox.append(thumb(objectURL(f), f.name, () => { styleFiles.splice(i, 1); renderThumbs(); })));
  if (!styleFiles.length) styleBox.append(hint("Drop paintings here"));
}

const urls = new WeakMap();
function objectURL(file) {
  // One object URL per file for as long as the page lives: thumbnails are re-rendered often.
  if (!urls.has(file)) urls.set(file, URL.createObjectURL(file));
  return urls.get(file);
}

function thumb(src, title, onRemove) {
  const box = el("div", { class: "thumb", title });
  box.append(el("img", { src, alt: title }));
  if (onRemove) {
    const x = el("button", { type: "button", class: "remove", title: "Remove", "aria-label": `Remove ${title}` }, "✕");
    x.addEventListener("click", onRemove);
    box.append(x);
  }
  return box;
}

function hint(text) {
  return el("p", { class: "hint" }, text);
}

function setInitJob(id) {
  initJob = id;
  $("init-job-chip").hidden = !id;
  $("init").disabled = !!id;
  if (id) {
    $("init-job-id").textContent = id.slice(0, 8);
    $("init-job-thumb").src = `/api/jobs/${id}/preview`;
  }
}

// --- settings ---------------------------------------------------------------------------------------

function applyPreset(name) {
  const p = serverConfig && serverConfig.presets[name];
  $("preset").value = name;
  if (!p) return;
  $("size").value = Math.min(p.size, serverConfig.limits.max_size);
  $("iterations").value = p.iterations;
}

function matchingPreset() {
  const size = Number($("size").value), its = Number($("iterations").value);
  for (const [name, p] of Object.entries(serverConfig.presets)) if (p.size === size && p.iterations === its) return name;
  return "custom";
}

// The slider is log10 of a multiplier on the server's default style weight: 0 is the default, ±1 is
// ten times more or less style. Artists think in "more painting / more photo", not in betas.
function styleWeight() {
  return serverConfig.defaults.style_weight * Math.pow(10, Number($("strength").value));
}

function updateStrengthLabel() {
  const m = Math.pow(10, Number($("strength").value));
  const text = m >= 10 ? m.toFixed(0) : m >= 1 ? m.toFixed(1) : m.toFixed(2);
  let label = `${text.replace(/\.0+$/, "")}×`;
  if (serverConfig && serverConfig.defaults.content_weight > 0) {
    const ratio = styleWeight() / serverConfig.defaults.content_weight;
    label += ` · style/content ${formatNumber(ratio)}`;
  }
  $("strength-label").textContent = label;
}

// The contrast choice only means something where the style is matched to the photo's colours.
function contrastApplies() {
  const applies = ["luminance", "histogram"].includes($("original-colors").value);
  $("color-contrast").disabled = !applies;
  return applies;
}

function collectOptions() {
  const options = {
    size: Number($("size").value),
    iterations: Number($("iterations").value),
    style_weight: Number(styleWeight().toPrecision(4)),
    original_colors: $("original-colors").value,
    optimizer: $("optimizer").value,
    style_loss: $("style-loss").value,
    multiscale: $("multiscale").checked,
    laplacian_weight: Number($("laplacian-weight").value) || 0,
  };
  if (contrastApplies()) options.color_contrast = $("color-contrast").value;
  if (!initJob) options.init = $("init").value;
  const seed = $("seed").value.trim();
  if (seed !== "") options.seed = Number(seed);
  return options;
}

// --- running a job ----------------------------------------------------------------------------------

async function startJob() {
  showFormError("");
  const clip = useDemo ? null : PainterlyVideo.clip();
  if (!useDemo && ((!contentFile && !clip) || !styleFiles.length)) {
    showFormError("Choose a content image (or a clip) and at least one style image, or use the demo pair.");
    return;
  }
  const form = new FormData();
  if (clip) {
    // A video job: the clip, its styles and the options (no mask, no start from an earlier result).
    form.append("clip", clip, clip.name);
    for (const f of styleFiles) form.append("style", f, f.name);
    const options = { ...collectOptions(), ...PainterlyVideo.options() };
    if (options.init === undefined) options.init = $("init").value;
    form.append("options", JSON.stringify(options));
    await submit(form);
    return;
  }
  if (useDemo) form.append("demo", "true");
  else {
    form.append("content", contentFile, contentFile.name);
    for (const f of styleFiles) form.append("style", f, f.name);
  }
  const options = collectOptions();
  if (PainterlyMask.enabled()) {
    // The painted regions: the mask travels with the job, `regions` says what each colour gets.
    options.regions = PainterlyMask.regions();
    form.append("mask", await PainterlyMask.blob(), "mask.png");
  }
  form.append("options", JSON.stringify(options));
  if (initJob) form.append("init_job", initJob);
  await submit(form);
}

async function submit(form) {
  $("start").disabled = true;
  try {
    const res = await send("/api/jobs", { method: "POST", body: form, headers: tokenHeader() });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(errorText(res, body));
    watch(body);
    refreshGallery();
  } catch (err) {
    showFormError(err.message);
  } finally {
    $("start").disabled = false;
  }
}

function watch(job) {
  if (events) { events.close(); events = null; }
  current = job;
  // `history` here is the loss chart's; the browser's is window.history.
  if (location.hash !== `#${job.id}`) window.history.replaceState(null, "", `#${job.id}`);
  history = [];
  frames = 0;
  $("frame-count").textContent = "0";
  $("preview").hidden = true;
  $("placeholder").hidden = false;
  $("placeholder").textContent = "Waiting for the first strokes…";
  showJob(job);
  drawChart();
  markCurrentCard();
  if (job.status === "queued" || job.status === "running") follow(job.id);
}

function follow(id) {
  const es = new EventSource(`/api/jobs/${id}/events`);
  events = es;
  es.addEventListener("progress", (e) => {
    if (!current || current.id !== id) return;
    const data = JSON.parse(e.data);
    if (data.points) addPoints(data.points);
    current = data;
    showJob(data);
    scheduleChart();
  });
  es.addEventListener("end", (e) => {
    es.close();
    if (events === es) events = null;
    if (!current || current.id !== id) return;
    current = JSON.parse(e.data);
    showJob(current);
    loadHistory(id);   // the whole history, in case the stream joined late
    refreshGallery();
  });
  es.onerror = () => {
    // The browser reconnects by itself while the server is away; a server that answers but no longer
    // has the job (removed, or restarted with another workdir) would leave the page "running" forever.
    if (current && current.id === id) checkGone(id);
  };
}

const GONE_TEXT = "This job is no longer on the server: it was removed, or the server was restarted with another workdir.";

/** Ask the server for job `id`: a 404 means it is gone, and the stage says so. An unreachable server
 *  is not an answer (the stream keeps trying). */
async function checkGone(id) {
  let res;
  try {
    res = await fetch(`/api/jobs/${id}`, { cache: "no-store" });
  } catch (_) {
    return;
  }
  if (res.status === 404 && current && current.id === id) markGone(id);
}

function markGone(id) {
  if (events) { events.close(); events = null; }
  current = { ...current, status: "gone" };
  $("status").textContent = "gone";
  $("status").dataset.status = "gone";
  $("progress-text").textContent = GONE_TEXT;
  $("cancel").disabled = true;
  $("resume").hidden = true;
  $("download").hidden = true;
  $("use-as-init").hidden = true;
  if (location.hash === `#${id}`) window.history.replaceState(null, "", location.pathname);
}

async function cancelCurrent() {
  if (!current) return;
  $("cancel").disabled = true;
  try {
    const res = await send(`/api/jobs/${current.id}`, { method: "DELETE", headers: tokenHeader() });
    const body = await res.json().catch(() => ({}));
    if (!res.ok && res.status !== 409) throw new Error(errorText(res, body));
    if (res.ok && current && current.id === body.id) { current = body; showJob(body); }
  } catch (err) {
    showFormError(err.message);
  }
  refreshGallery();
}

/** Run an interrupted job again from where it was (POST /api/jobs/{id}/resume), and watch it. */
async function resumeJob(id) {
  $("resume").disabled = true;
  try {
    const res = await send(`/api/jobs/${id}/resume`, { method: "POST", headers: tokenHeader() });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(errorText(res, body));
    showFormError("");
    await openJob(id);
  } catch (err) {
    showFormError(err.message);
    $("resume").disabled = false;
  }
  refreshGallery();
}

async function openJob(id) {
  try {
    show(await getJSON(`/api/jobs/${id}`));
    window.scrollTo({ top: 0, behavior: "smooth" });
  } catch (err) {
    showFormError(err.message);
  }
}

/** Put a job (as GET /api/jobs/{id} gives it, with its history) on the stage. */
function show(job) {
  watch(job);
  addPoints(job.history || []);
  drawChart();
}

/** Loss points onto the chart, each iteration once: a stream that starts (or reconnects) sends every
 *  point from the job's first, some of which the chart may have already. */
function addPoints(points) {
  let last = history.length ? history[history.length - 1][0] : -Infinity;
  for (const p of points) if (p[0] > last) { history.push(p); last = p[0]; }
}

async function loadHistory(id) {
  try {
    const job = await getJSON(`/api/jobs/${id}`);
    if (current && current.id === id) { history = job.history || history; drawChart(); }
  } catch (_) { /* the chart keeps what it has */ }
}

/** m:ss (or h:mm:ss) for a number of seconds, as the command line's progress shows it. */
function formatClock(seconds) {
  const s = Math.round(seconds);
  const pad = (n) => String(n).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}` : `${Math.floor(s / 60)}:${pad(s % 60)}`;
}

// --- showing the current job ------------------------------------------------------------------------

/** What the library found odd but usable in the job's request (an upscaled photo, an option without effect). */
function showNotes(notes) {
  const list = $("notes");
  if (list.dataset.shown === JSON.stringify(notes)) return;
  list.dataset.shown = JSON.stringify(notes);
  list.replaceChildren(...notes.map((note) => Object.assign(document.createElement("li"), { textContent: `Note: ${note}` })));
  list.hidden = notes.length === 0;
}

function showJob(job) {
  const status = $("status");
  status.textContent = job.status;
  status.dataset.status = job.status;
  const running = job.status === "running" || job.status === "queued";
  $("cancel").disabled = !running;
  $("resume").hidden = !job.resumable;
  $("resume").disabled = !job.resumable;

  let text;
  if (job.status === "queued") text = job.position ? `Waiting: place ${job.position} in the queue` : "Waiting in the queue";
  else if (job.status === "failed" || job.status === "interrupted") {
    text = job.error || job.status;
    if (job.resumable) text += "; Resume continues it from where it stopped";
  }
  else if (job.total_iterations) {
    text = `${PainterlyVideo.progressPrefix(job)}iteration ${job.iteration} / ${job.total_iterations}`;
    if (job.levels > 1) text += ` · level ${job.level + 1} of ${job.levels}`;
    if (job.size) text += ` · ${job.size.width}×${job.size.height}`;
    if (job.elapsed) text += ` · ${job.elapsed.toFixed(1)} s`;
    if (job.status === "running") text += job.eta === null || job.eta === undefined ? " · ETA –" : ` · ETA ${formatClock(job.eta)}`;
  } else text = job.status;
  $("progress-text").textContent = text;
  showNotes(job.notes || []);
  // The bar fills by work (iterations weighted by their level's pixels), as the ETA counts it.
  const frac = job.work_fraction !== undefined ? job.work_fraction : (job.total_iterations ? job.iteration / job.total_iterations : 0);
  $("bar-fill").style.width = `${Math.round((job.status === "done" ? 1 : frac) * 100)}%`;

  for (const term of LOSS_TERMS) {
    const v = job.losses ? job.losses[term] : undefined;
    $(`loss-${term}`).textContent = v === undefined || v === null ? "–" : formatNumber(v);
    // A term a run does not have (the Laplacian one, off) is not listed for it.
    $(`loss-${term}`).parentElement.hidden = !STANDARD_SHOWN.has(term) && (v === undefined || v === null);
  }

  const previewURL = job.urls && job.urls.preview;
  if (previewURL) {
    const img = $("preview");
    const src = new URL(previewURL, location.href).href;
    if (img.src !== src) {
      img.src = src;
      frames += 1;
      $("frame-count").textContent = String(frames);
    }
    img.hidden = false;
    $("placeholder").hidden = true;
  } else if (job.status === "failed" || job.status === "cancelled" || job.status === "interrupted") {
    $("placeholder").textContent = {
      failed: "Nothing to show: the job failed.",
      cancelled: "Cancelled before it started.",
      interrupted: "Nothing to show: the server stopped before the job painted anything.",
    }[job.status];
  }

  const download = $("download");
  if (job.has_result && job.urls.download) {
    download.href = job.urls.download;
    const video = job.kind === "video";
    download.setAttribute("download", `painterly-${job.id.slice(0, 8)}.${video ? "mp4" : "png"}`);
    download.textContent = video ? "Download MP4" : "Download PNG";
    download.hidden = false;
    $("use-as-init").hidden = video;
  } else {
    download.hidden = true;
    download.removeAttribute("href");
    $("use-as-init").hidden = true;
  }
  showParams(job);
  PainterlyOverlay.show(job);
  PainterlyVideo.show(job);
}

function showParams(job) {
  const list = $("params-list");
  list.replaceChildren();
  const shown = { ...(job.options || {}) };
  if (job.seed !== null && job.seed !== undefined) shown.seed = job.seed;
  const inputs = job.inputs || {};
  const rows = [];
  if (inputs.content) rows.push(["content image", inputs.content]);
  if (inputs.clip) rows.push(["clip", inputs.clip]);
  if (inputs.styles) rows.push(["style images", inputs.styles.join(", ")]);
  for (const key of Object.keys(shown).sort()) rows.push([key.replace(/_/g, "-"), shown[key]]);
  for (const [k, v] of rows) {
    list.append(el("dt", {}, k));
    list.append(el("dd", {}, Array.isArray(v) ? v.join(",") : v === null ? "default" : String(v)));
  }
  $("params").hidden = rows.length === 0;
}

// --- the loss chart (hand-drawn on a canvas) -----------------------------------------------------------

let chartPending = false;
function scheduleChart() {
  if (chartPending) return;
  chartPending = true;
  requestAnimationFrame(() => { chartPending = false; drawChart(); });
}

function drawChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, h = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const style = getComputedStyle(document.body);
  const muted = style.getPropertyValue("--muted").trim() || "#888";
  const line = style.getPropertyValue("--line").trim() || "#ddd";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = muted;

  if (history.length < 2) {
    ctx.textAlign = "center";
    ctx.fillText("loss (log scale) appears here while the job runs", w / 2, h / 2);
    return;
  }
  // Losses fall over orders of magnitude: a log scale keeps the tail readable.
  const pad = { l: 52, r: 10, t: 10, b: 20 };
  let lo = Infinity, hi = -Infinity;
  for (const p of history) for (let k = 1; k <= LOSS_TERMS.length; k++) {
    const v = p[k];
    if (v > 0 && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (!isFinite(lo)) return;
  let lLo = Math.floor(Math.log10(lo)), lHi = Math.ceil(Math.log10(hi));
  if (lHi === lLo) lHi += 1;
  const x0 = history[0][0], x1 = history[history.length - 1][0];
  const X = (it) => pad.l + ((it - x0) / Math.max(1, x1 - x0)) * (w - pad.l - pad.r);
  const Y = (v) => pad.t + (1 - (Math.log10(v) - lLo) / (lHi - lLo)) * (h - pad.t - pad.b);

  ctx.strokeStyle = line;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const step = Math.max(1, Math.ceil((lHi - lLo) / 4));
  for (let e = lLo; e <= lHi; e += step) {
    const y = Y(Math.pow(10, e));
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(`1e${e}`, pad.l - 6, y);
  }
  ctx.textAlign = "left";
  ctx.textBaseline = "alphabetic";
  ctx.fillText(String(x0), pad.l, h - 5);
  ctx.textAlign = "right";
  ctx.fillText(`iteration ${x1}`, w - pad.r, h - 5);

  // At most ~2 points per pixel column are drawn: long runs stay cheap to redraw.
  const stride = Math.max(1, Math.floor(history.length / ((w - pad.l - pad.r) * 2)));
  LOSS_TERMS.forEach((term, i) => {
    ctx.strokeStyle = LOSS_COLORS[term];
    ctx.lineWidth = term === "total" ? 2 : 1.2;
    ctx.beginPath();
    let started = false;
    for (let j = 0; j < history.length; j += stride) {
      const v = history[j][i + 1];
      if (!(v > 0) || !isFinite(v)) { started = false; continue; }
      const x = X(history[j][0]), y = Y(v);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    }
    ctx.stroke();
  });
  // Legend.
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let lx = pad.l + 8;
  const shown = LOSS_TERMS.filter((term, i) => STANDARD_SHOWN.has(term) || history.some((p) => p[i + 1] > 0));
  const names = shown.map((term) => LOSS_LABELS[term] || term);
  const widths = names.map((name) => ctx.measureText(name).width);
  // 16 px between entries, less on a narrow (phone) chart so that the last one is not cut off.
  const room = w - pad.r - lx - widths.reduce((a, b) => a + b, 0) - 14 * names.length;
  const gap = Math.max(4, Math.min(16, room / (names.length - 1)));
  shown.forEach((term, i) => {
    ctx.fillStyle = LOSS_COLORS[term];
    ctx.fillRect(lx, pad.t + 4, 10, 3);
    ctx.fillStyle = muted;
    ctx.fillText(names[i], lx + 14, pad.t + 6);
    lx += 14 + widths[i] + gap;
  });
}

// --- gallery ----------------------------------------------------------------------------------------

async function refreshGallery() {
  let data;
  try {
    data = await getJSON("/api/jobs");
  } catch (_) {
    $("queue-status").textContent = "queue: server unreachable";
    return;
  }
  const q = data.queue;
  $("queue-status").textContent = `${q.running} running · ${q.waiting} waiting (room for ${q.capacity})`;
  const box = $("gallery");
  const jobs = data.jobs.filter((j) => j.status !== "cancelled" || j.has_result);
  $("gallery-count").textContent = jobs.length ? `${jobs.length} job${jobs.length === 1 ? "" : "s"}` : "";
  const keep = new Set(jobs.map((j) => j.id));
  for (const [id, c] of cards) if (!keep.has(id)) { c.el.remove(); cards.delete(id); }
  if (!jobs.length) {
    if (!box.querySelector(".hint")) box.replaceChildren(hint("Finished paintings collect here."));
    return;
  }
  const hintEl = box.querySelector(".hint");
  if (hintEl) hintEl.remove();
  jobs.forEach((job, index) => {
    let c = cards.get(job.id);
    if (!c || c.version !== job.version) {
      const fresh = card(job);
      if (c) c.el.replaceWith(fresh);
      c = { el: fresh, version: job.version };
      cards.set(job.id, c);
    }
    if (box.children[index] !== c.el) box.insertBefore(c.el, box.children[index] || null);
  });
  markCurrentCard();
  // Keep the stage in step for a job we are not streaming (e.g. reopened while queued elsewhere).
  if (current && !events) {
    const fresh = data.jobs.find((j) => j.id === current.id);
    if (fresh && fresh.version !== current.version && (fresh.status === "queued" || fresh.status === "running")) follow(fresh.id);
  }
  // The job on the stage is not in the list: removed, or this is another server (another workdir).
  if (current && current.status !== "gone" && !data.jobs.some((j) => j.id === current.id)) checkGone(current.id);
}

function card(job) {
  const root = el("article", { class: "card", "data-id": job.id });
  const open = el("button", { type: "button", class: "card-image", title: "Open" });
  if (job.urls.preview) open.append(el("img", { src: job.urls.preview, alt: `result ${job.id.slice(0, 8)}`, loading: "lazy" }));
  else open.append(el("span", {}, job.status === "queued" ? `queued · #${job.position || "?"}` : job.status));
  open.addEventListener("click", () => openJob(job.id));
  root.append(open);

  const body = el("div", { class: "card-body" });
  const meta = el("div", { class: "card-meta" });
  meta.append(el("span", { class: "badge", "data-status": job.status }, job.status === "queued" && job.position ? `#${job.position}` : job.status));
  const o = job.options || {};
  meta.append(el("span", { class: "muted" }, `${o.size || "?"} px · ${o.iterations || "?"} it`));
  body.append(meta);

  const actions = el("div", { class: "card-actions" });
  const openBtn = el("button", { type: "button", class: "secondary" }, "Open");
  openBtn.addEventListener("click", () => openJob(job.id));
  actions.append(openBtn);
  if (job.has_result) {
    const ext = job.kind === "video" ? "mp4" : "png";
    actions.append(el("a", { class: "button secondary", href: job.urls.download, download: `painterly-${job.id.slice(0, 8)}.${ext}` }, "Download"));
  }
  if (job.has_result && job.kind !== "video") {
    const initBtn = el("button", { type: "button", class: "secondary", title: "Start the next run from this result" }, "Use as start");
    initBtn.addEventListener("click", () => setInitJob(job.id));
    actions.append(initBtn);
  }
  if (job.resumable) {
    const resume = el("button", { type: "button", class: "primary", title: "Run it again from where it was" }, "Resume");
    resume.addEventListener("click", () => { resume.disabled = true; resumeJob(job.id); });
    const drop = el("button", { type: "button", class: "danger", title: "Not to be resumed: free the disk space its saved run takes" }, "Discard");
    drop.addEventListener("click", async () => {
      drop.disabled = true;
      await fetch(`/api/jobs/${job.id}`, { method: "DELETE", headers: tokenHeader() }).catch(() => {});
      refreshGallery();
    });
    actions.append(resume, drop);
  }
  if (job.status === "queued" || job.status === "running") {
    const cancel = el("button", { type: "button", class: "danger" }, "Cancel");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      await fetch(`/api/jobs/${job.id}`, { method: "DELETE", headers: tokenHeader() }).catch(() => {});
      refreshGallery();
    });
    actions.append(cancel);
  }
  body.append(actions);
  root.append(body);
  return root;
}

function markCurrentCard() {
  for (const [id, c] of cards) c.el.classList.toggle("current", !!current && current.id === id);
}

// --- small helpers ----------------------------------------------------------------------------------

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// The server's token, written into the page by the server: requests that change something carry it
// (the server refuses those from anywhere else; see web/guard.py).
function tokenHeader() {
  const meta = document.querySelector('meta[name="painterly-token"]');
  return { "X-Painterly-Token": meta ? meta.content : "" };
}

const UNREACHABLE = "Cannot reach the studio server: is painterly serve still running?";

/** fetch(), whose failure to reach any server ("Failed to fetch") becomes an error in words. */
async function send(url, options) {
  try {
    return await fetch(url, options);
  } catch (_) {
    throw new Error(UNREACHABLE);
  }
}

async function getJSON(url) {
  const res = await send(url, { cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(errorText(res, body)), { status: res.status });
  return body;
}

function errorText(res, body) {
  const d = body && body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d) && d.length) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  return `${res.status} ${res.statusText}`;
}

function showFormError(text) {
  const p = $("form-error");
  p.textContent = text;
  p.hidden = !text;
}

function formatNumber(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-2) return v.toExponential(2);
  return a >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

init();
