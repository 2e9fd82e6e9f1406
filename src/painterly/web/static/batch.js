// The studio's batch view: submit a grid (one content × styles, × the values of a sweep) to the
// studio's queue, then follow its jobs and show the contact sheet as it fills in. Talks only to
// /api/batches (web/batch.py); shares nothing with app.js.
"use strict";

const POLL_MS = 400;
const $b = (id) => document.getElementById(id);
let polling = null;

function batchToken() {
  const meta = document.querySelector('meta[name="painterly-token"]');
  return { "X-Painterly-Token": meta ? meta.content : "" };
}

function batchError(text) {
  const p = $b("batch-error");
  p.textContent = text || "";
  p.hidden = !text;
}

function detailText(res, body) {
  const d = body && body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d) && d.length) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  return `${res.status} ${res.statusText}`;
}

async function startGrid(event) {
  event.preventDefault();
  batchError("");
  const form = new FormData();
  if ($b("batch-demo").checked) {
    form.append("demo", "true");
  } else {
    const content = $b("batch-content").files[0];
    if (content) form.append("content", content);
    for (const file of $b("batch-styles").files) form.append("style", file);
  }
  const options = { size: Number($b("batch-size").value), iterations: Number($b("batch-iterations").value) };
  form.append("options", JSON.stringify(options));
  const sweep = $b("batch-sweep").value.trim();
  if (sweep) form.append("sweep", sweep);
  $b("batch-start").disabled = true;
  try {
    let res;
    try {
      res = await fetch("/api/batches", { method: "POST", body: form, headers: batchToken() });
    } catch (_) {  // no server answered ("Failed to fetch"): say so in words
      batchError("Cannot reach the studio server: is painterly serve still running?");
      return;
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      batchError(detailText(res, body));
      return;
    }
    history.replaceState(null, "", `/batch#${body.id}`);
    follow(body);
  } catch (err) {
    batchError(String(err));
  } finally {
    $b("batch-start").disabled = false;
  }
}

function render(batch) {
  $b("batch-status").textContent = `${batch.done}/${batch.total} done` + (batch.over > batch.done ? `, ${batch.over - batch.done} failed` : "");
  const sheet = $b("batch-sheet");
  // The sheet's URL changes each time a cell is over: the picture is fetched again only then.
  if (sheet.dataset.url !== batch.urls.sheet) {
    sheet.dataset.url = batch.urls.sheet;
    sheet.src = batch.urls.sheet;
    sheet.hidden = false;
  }
  const table = $b("batch-cells");
  table.replaceChildren();
  for (const cell of batch.cells) {
    const row = document.createElement("tr");
    row.dataset.status = cell.status;
    const label = document.createElement("td");
    label.textContent = `${cell.row} · ${cell.column}`;
    const status = document.createElement("td");
    status.className = "cell-status";
    status.textContent = cell.error ? `${cell.status}: ${cell.error}` : cell.status;
    const bar = document.createElement("td");
    const progress = document.createElement("progress");
    progress.max = 1;
    progress.value = cell.status === "done" ? 1 : cell.work_fraction;
    bar.append(progress);
    row.append(label, status, bar);
    if (cell.result) {
      const link = document.createElement("td");
      const a = document.createElement("a");
      a.href = cell.result;
      a.textContent = "result";
      link.append(a);
      row.append(link);
    }
    table.append(row);
  }
}

function follow(batch) {
  if (polling) clearTimeout(polling);
  render(batch);
  if (batch.finished) return;
  polling = setTimeout(async () => {
    try {
      const res = await fetch(batch.urls.self, { cache: "no-store" });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) {
        lost(res, body);
        return;
      }
      follow(body);
    } catch (err) {
      polling = setTimeout(() => follow(batch), POLL_MS * 5); // the server may be restarting: try again
    }
  }, POLL_MS);
}

// The server no longer answers for the batch (404: its record is gone, or another workdir): polling
// stops, and the status says so instead of keeping the last count as if the grid were still running.
function lost(res, body) {
  batchError(detailText(res, body));
  $b("batch-status").textContent = res.status === 404 ? "gone: the server no longer has this batch" : `stopped following: ${res.status} ${res.statusText}`;
}

async function resume() {
  const id = location.hash.slice(1);
  if (!/^[0-9a-f]{32}$/.test(id)) return;
  const res = await fetch(`/api/batches/${id}`, { cache: "no-store" });
  if (res.ok) {
    follow(await res.json());
  } else {
    lost(res, await res.json().catch(() => ({})));
  }
}

$b("batch-form").addEventListener("submit", startGrid);
resume();
