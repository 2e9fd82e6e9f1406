// painterly studio — what is drawn over the live preview: the job's painted regions (its saved mask,
// GET /api/jobs/{id}/mask) and, when a level is evaluated by tiles, the tile grid with the tile in
// work highlighted (the job's `tiles`: {grid: [[top, left, height, width], ...], active}).
//
// Both overlays cover exactly the picture the <img> shows (it is letterboxed by object-fit: contain),
// so they are laid out again whenever the preview, the stage or the job changes. docs/masks.md, docs/tiles.md.
"use strict";

const PainterlyOverlay = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const REGION_ALPHA = 115;      // of 255: the painting stays visible under the regions
  const OUTLINE_ALPHA = 235;     // region borders, nearly opaque
  const q = (id) => document.getElementById(id);
  let job = null;
  let maskURL = null;            // the mask the regions canvas was drawn from
  const mask = new Image();      // that job's mask, once loaded

  // The rectangle (in the stage's pixels) where the preview's picture is actually drawn.
  function pictureRect() {
    const img = q("preview");
    if (img.hidden || !img.naturalWidth || !img.clientWidth) return null;
    const scale = Math.min(img.clientWidth / img.naturalWidth, img.clientHeight / img.naturalHeight);
    const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
    return { left: img.offsetLeft + (img.clientWidth - w) / 2, top: img.offsetTop + (img.clientHeight - h) / 2, width: w, height: h };
  }

  function place(node, rect) {
    node.style.left = `${rect.left}px`;
    node.style.top = `${rect.top}px`;
    node.style.width = `${rect.width}px`;
    node.style.height = `${rect.height}px`;
  }

  // The mask scaled to the shown picture: unpainted (white) clear, each colour translucent, borders drawn.
  function drawRegions(rect) {
    const canvas = q("regions-overlay");
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr)), h = Math.max(1, Math.round(rect.height * dpr));
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;  // the mask's colours, not blends of neighbours, at every pixel
    ctx.drawImage(mask, 0, 0, w, h);
    const data = ctx.getImageData(0, 0, w, h);
    const px = data.data;
    const key = (i) => (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
    const keys = new Int32Array(w * h);
    for (let p = 0; p < w * h; p++) keys[p] = key(p * 4);
    const edge = Math.max(1, Math.round(dpr));
    for (let p = 0; p < w * h; p++) {
      const i = p * 4, x = p % w;
      const white = px[i] > 245 && px[i + 1] > 245 && px[i + 2] > 245;
      let border = false;
      for (let d = 1; d <= edge && !border; d++) {
        border = (x >= d && keys[p - d] !== keys[p]) || (p >= d * w && keys[p - d * w] !== keys[p]);
      }
      px[i + 3] = border ? OUTLINE_ALPHA : white ? 0 : REGION_ALPHA;
    }
    ctx.putImageData(data, 0, 0);
  }

  function drawTiles(rect, tiles) {
    const svg = q("tile-grid");
    const size = job.size;
    svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
    svg.dataset.active = tiles.active === null || tiles.active === undefined ? "" : String(tiles.active);
    if (svg.dataset.grid !== JSON.stringify(tiles.grid)) {
      svg.dataset.grid = JSON.stringify(tiles.grid);
      svg.replaceChildren();
      tiles.grid.forEach(([top, left, height, width], index) => {
        const r = document.createElementNS(SVG, "rect");
        for (const [k, v] of Object.entries({ x: left, y: top, width, height, "data-index": index })) r.setAttribute(k, v);
        svg.append(r);
      });
    }
    for (const r of svg.children) r.classList.toggle("active", r.dataset.index === svg.dataset.active);
    place(svg, rect);
  }

  function layout() {
    const rect = pictureRect();
    const regions = q("regions-overlay"), grid = q("tile-grid");
    const url = job && job.urls && job.urls.mask;
    q("regions-toggle").hidden = !url;
    const tiles = job && job.tiles && job.size ? job.tiles : null;
    q("tiles-toggle").hidden = !tiles;
    const showRegions = !!(rect && url && q("show-regions").checked && mask.complete && mask.naturalWidth && maskURL === url);
    regions.hidden = !showRegions;
    if (showRegions) {
      place(regions, rect);
      if (regions.dataset.drawn !== `${url} ${rect.width}x${rect.height}`) {
        regions.dataset.drawn = `${url} ${rect.width}x${rect.height}`;
        drawRegions(rect);
      }
    }
    const showTiles = !!(rect && tiles && q("show-tiles").checked);
    grid.toggleAttribute("hidden", !showTiles);  // an SVG element has no `hidden` property
    if (showTiles) drawTiles(rect, tiles);
  }

  function show(next) {
    job = next;
    const url = job && job.urls && job.urls.mask;
    if (url && url !== maskURL) {
      maskURL = url;
      q("regions-overlay").dataset.drawn = "";
      mask.src = url;
    }
    layout();
  }

  function wire() {
    mask.addEventListener("load", layout);
    q("preview").addEventListener("load", layout);
    q("show-regions").addEventListener("change", layout);
    q("show-tiles").addEventListener("change", layout);
    window.addEventListener("resize", layout);
  }

  document.addEventListener("DOMContentLoaded", wire);
  return { show };
})();
