// painterly studio — the region brush: paint a mask over the content, a style for each colour.
//
// The mask is a canvas the content's shape (longest side MASK_SIDE). Painted colours are pure
// primaries; what is left unpainted is sent as white, with its own choice. app.js asks this module for
// the mask (a PNG blob) and the `regions` option when a job starts (docs/masks.md).
"use strict";

const PainterlyMask = (() => {
  const MASK_SIDE = 512;
  const COLORS = { red: [255, 0, 0], blue: [0, 0, 255], green: [0, 255, 0], yellow: [255, 255, 0] };
  const q = (id) => document.getElementById(id);
  let tool = "red";          // a colour name, or "eraser"
  let drawing = false;
  let last = null;
  let styleCount = 0;
  const choice = { white: "1", red: "1", blue: "2", green: "photo", yellow: "photo" };

  function enabled() { return q("mask-on").checked && q("mask-canvas").width > 0; }

  function setContentURL(url) {
    const img = q("mask-photo");
    if ((img.dataset.url || null) === (url || null)) return; // the same photo: keep what is painted
    img.dataset.url = url || "";
    img.onload = () => {
      const scale = MASK_SIDE / Math.max(img.naturalWidth, img.naturalHeight);
      const canvas = q("mask-canvas");
      canvas.width = Math.max(1, Math.round(img.naturalWidth * Math.min(1, scale)));
      canvas.height = Math.max(1, Math.round(img.naturalHeight * Math.min(1, scale)));
      renderRegions();
    };
    img.src = url || "";
    if (!url) q("mask-canvas").width = 0;
  }

  function setStyleCount(n) { styleCount = n; renderRegions(); }

  function point(e) {
    const canvas = q("mask-canvas");
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  }

  function stroke(from, to) {
    const ctx = q("mask-canvas").getContext("2d");
    ctx.globalCompositeOperation = tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = tool === "eraser" ? "#000" : `rgb(${COLORS[tool].join(",")})`;
    ctx.lineWidth = Number(q("brush-size").value) * q("mask-canvas").width / q("mask-canvas").getBoundingClientRect().width;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0], to[1]);
    ctx.stroke();
  }

  // Flood fill from a point: the connected area of the same (opaque or empty) colour takes the tool's.
  function fill(at) {
    const canvas = q("mask-canvas");
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    const data = ctx.getImageData(0, 0, width, height);
    const px = data.data;
    const x0 = Math.floor(at[0]), y0 = Math.floor(at[1]);
    const start = (y0 * width + x0) * 4;
    const target = [px[start], px[start + 1], px[start + 2], px[start + 3]];
    const paint = tool === "eraser" ? [0, 0, 0, 0] : [...COLORS[tool], 255];
    const same = (i) => Math.abs(px[i] - target[0]) + Math.abs(px[i + 1] - target[1]) + Math.abs(px[i + 2] - target[2]) + Math.abs(px[i + 3] - target[3]) < 96;
    if (paint.every((v, k) => v === target[k])) return;
    const seen = new Uint8Array(width * height);
    const stack = [y0 * width + x0];
    while (stack.length) {
      const p = stack.pop();
      if (seen[p]) continue;
      seen[p] = 1;
      if (!same(p * 4)) continue;
      px.set(paint, p * 4);
      const x = p % width;
      if (x > 0) stack.push(p - 1);
      if (x < width - 1) stack.push(p + 1);
      if (p >= width) stack.push(p - width);
      if (p < width * (height - 1)) stack.push(p + width);
    }
    ctx.putImageData(data, 0, 0);
    renderRegions();
  }

  // Which palette colours are on the canvas (a pixel counts when it is opaque and nearly that colour).
  function usedColors() {
    const canvas = q("mask-canvas");
    if (!canvas.width) return [];
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const used = new Set();
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] < 250) continue;
      for (const [name, c] of Object.entries(COLORS)) {
        if (Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1]) + Math.abs(px[i + 2] - c[2]) < 12) used.add(name);
      }
    }
    return Object.keys(COLORS).filter((n) => used.has(n));
  }

  function renderRegions() {
    const list = q("region-list");
    list.replaceChildren();
    for (const name of ["white", ...usedColors()]) {
      const row = document.createElement("label");
      row.className = "region-row";
      const sw = document.createElement("span");
      sw.className = `swatch sw-${name}`;
      const select = document.createElement("select");
      select.dataset.color = name;
      const opts = [["photo", "keep the photo"], ...Array.from({ length: styleCount }, (_, i) => [String(i + 1), `style ${i + 1}`])];
      for (const [value, text] of opts) select.append(new Option(text, value));
      select.value = assigned(name);
      select.addEventListener("change", () => { choice[name] = select.value; });
      row.append(sw, document.createTextNode(name === "white" ? " unpainted" : ` ${name}`), select);
      list.append(row);
    }
  }

  // What a colour gets: its choice while that exists (a style may have been removed since), else the
  // first style. The choice itself is kept, so the defaults do not depend on whether the photo or the
  // paintings were chosen first.
  function assigned(name) {
    const want = choice[name];
    if (want === "photo" || (Number(want) >= 1 && Number(want) <= styleCount)) return want;
    return styleCount ? "1" : "photo";
  }

  function regions() { return ["white", ...usedColors()].map((name) => `${name}=${assigned(name)}`); }

  // The mask as sent: the canvas over white (so that unpainted is white, a soft edge a blend).
  function blob() {
    const canvas = q("mask-canvas");
    const out = document.createElement("canvas");
    out.width = canvas.width;
    out.height = canvas.height;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(canvas, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }

  function wire() {
    const canvas = q("mask-canvas");
    q("mask-on").addEventListener("change", () => { q("mask-tools").hidden = !q("mask-on").checked; });
    for (const button of document.querySelectorAll("#mask-tools [data-tool]")) {
      button.addEventListener("click", () => {
        tool = button.dataset.tool;
        for (const b of document.querySelectorAll("#mask-tools [data-tool]")) b.setAttribute("aria-pressed", String(b === button));
      });
    }
    q("mask-fill").addEventListener("click", () => { q("mask-fill").setAttribute("aria-pressed", String(q("mask-fill").getAttribute("aria-pressed") !== "true")); });
    q("mask-clear").addEventListener("click", () => {
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      renderRegions();
    });
    canvas.addEventListener("pointerdown", (e) => {
      if (q("mask-fill").getAttribute("aria-pressed") === "true") { fill(point(e)); return; }
      drawing = true;
      last = point(e);
      stroke(last, last);
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      const p = point(e);
      stroke(last, p);
      last = p;
    });
    const end = () => { if (drawing) { drawing = false; renderRegions(); } };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  document.addEventListener("DOMContentLoaded", wire);
  return { enabled, setContentURL, setStyleCount, regions, blob };
})();
