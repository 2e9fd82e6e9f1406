// painterly studio — video jobs on the page: a clip dropped where the content photo goes, its options
// (temporal weight, frame iterations, start, duration), frame i of n while it runs, and the finished
// video to play and download. app.js calls in here; the server's API is the image jobs' own
// (POST /api/jobs with a `clip` file, the same events, preview and result URLs).
"use strict";

const PainterlyVideo = (() => {
  const $ = (id) => document.getElementById(id);
  // What browsers call a clip; a GIF stays an image (the studio paints it as one picture).
  const CLIP_NAME = /\.(mp4|m4v|mov|mkv|webm|avi|mpe?g|ts|3gp|ogv|flv|wmv)$/i;
  let clipFile = null;

  function isClip(file) {
    return !!file && ((file.type || "").startsWith("video/") || CLIP_NAME.test(file.name || ""));
  }

  function setClip(file) {
    clipFile = file || null;
    $("video-options").hidden = !clipFile;
  }

  /** The thumbnail of the chosen clip: its name (the page may not play local files: see guard.py's CSP). */
  function thumb(onRemove) {
    const box = document.createElement("div");
    box.className = "thumb clip-thumb";
    box.title = clipFile.name;
    const label = document.createElement("span");
    label.textContent = `▶ ${clipFile.name}`;
    box.append(label);
    const x = document.createElement("button");
    x.type = "button";
    x.className = "remove";
    x.title = "Remove";
    x.setAttribute("aria-label", `Remove ${clipFile.name}`);
    x.textContent = "✕";
    x.addEventListener("click", onRemove);
    box.append(x);
    return box;
  }

  /** The video options as the request sends them (blank fields: the server's defaults). */
  function options() {
    const out = {};
    const weight = $("temporal-weight").value.trim();
    if (weight !== "") out.temporal_weight = Number(weight);
    const its = $("frame-iterations").value.trim();
    if (its !== "") out.frame_iterations = Number(its);
    const start = $("clip-start").value.trim();
    if (start !== "") out.start = start;
    const duration = $("clip-duration").value.trim();
    if (duration !== "") out.duration = duration;
    return out;
  }

  /** "frame 2 of 5 · " for a video job (frames of an unknown count: "frame 2 · "). */
  function progressPrefix(job) {
    const v = job.video;
    if (!v || !v.frame) return "";
    return v.frames ? `frame ${v.frame} of ${v.frames} · ` : `frame ${v.frame} · `;
  }

  /** The finished video on the stage, playing in place of the preview; hidden for other jobs. */
  function show(job) {
    const player = $("result-video");
    const ready = job.kind === "video" && job.has_result && job.urls && job.urls.result;
    if (!ready) {
      if (!player.hidden) { player.pause(); player.removeAttribute("src"); player.load(); }
      player.hidden = true;
      return;
    }
    const src = new URL(`${job.urls.result}?v=${job.version}`, location.href).href;
    if (player.src !== src) player.src = src;
    player.hidden = false;
    $("preview").hidden = true;
    $("placeholder").hidden = true;
  }

  return { isClip, setClip, clip: () => clipFile, thumb, options, progressPrefix, show };
})();
