// The Pi Axera SD page: plain JavaScript over the service's A1111 routes (no build step, no CDN).
"use strict";

const AUTH_KEY = "pi-axera-sd-auth"; // sessionStorage: credentials live as long as the tab
const POLL_MS = 400;
const MASK_COLOUR = "#e0245e"; // painted on the mask canvas at full alpha; CSS shows it translucent
const MASK_BLUR_DEFAULT = 4; // A1111's mask_blur
const MASK_BLUR_MAX = 64;
const TOKENS_DEBOUNCE_MS = 250; // the prompt counters ask once typing pauses this long
const TOKENS_RETRY_MS = 2000; // ... and again this often while the model loads
const DEMOGRAPHICS = [
  ["gender", "man, woman, boy, girl"],
  ["hair_color", "pink, blonde, brown, black"],
];

const $ = (id) => document.getElementById(id);
const state = {
  auth: sessionStorage.getItem(AUTH_KEY) || "",
  lastSeed: null,
  busy: false,
  images: { edit: null, tag: null }, // data URLs of the chosen input images
  polling: false,
  interruptSent: false,
  pendingRetry: null,
};

class ServiceError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// ---- talking to the service ------------------------------------------------------------------

function messageOf(status, body) {
  // A1111 routes answer {"error": kind, "detail": message}; the others {"error": message}.
  if (body && typeof body === "object") {
    if (typeof body.detail === "string" && body.detail) return body.detail;
    if (typeof body.error === "string" && body.error) return body.error;
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return `the service answered HTTP ${status}`;
}

// ``quiet``: a 401 throws without opening the sign-in box (for background requests such as the
// prompt counters); ``signal``: an AbortSignal that cancels the request.
async function api(path, body, { quiet = false, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.auth) headers.Authorization = state.auth;
  let response;
  try {
    // credentials "omit": the page sends its own Authorization header and the browser never pops
    // up its own password box for the service's Basic challenge.
    response = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      signal,
    });
  } catch (err) {
    throw new ServiceError(`The service cannot be reached: ${err.message}`, 0);
  }
  const text = await response.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    /* not JSON: keep the text */
  }
  if (response.status === 401) {
    if (quiet) throw new ServiceError("Sign in first.", 401);
    openSignin(state.auth ? "Those credentials were not accepted." : "");
    throw new ServiceError("Sign in first: the service needs a token or a user name and password.", 401);
  }
  if (!response.ok) {
    let message = messageOf(response.status, data);
    const retry = response.headers.get("Retry-After");
    if (response.status === 503 && retry) message += ` (try again in about ${retry} s)`;
    throw new ServiceError(message, response.status);
  }
  return { data, headers: response.headers };
}

// ---- status line, sign-in ----------------------------------------------------------------------

async function loadModel() {
  const status = $("model-status");
  countAllTokens(); // on load (the browser may have kept the prompts) and after a sign-in
  try {
    const { data: health } = await api("/health");
    const { data: options } = await api("/sdapi/v1/options");
    const model = options.sd_model_checkpoint || "no model loaded yet";
    status.textContent = `Model: ${model} · service ${health.version}`;
    const { data: vaes } = await api("/sdapi/v1/sd-vae");
    for (const select of document.querySelectorAll("[data-vae]")) {
      if (vaes.length && !select.querySelector('option[value="taesd"]')) {
        select.add(new Option("Tiny VAE (faster)", "taesd"));
      }
    }
    $("signin-open").hidden = !state.auth;
    $("signin-open").textContent = state.auth ? "Sign out" : "Sign in";
  } catch (err) {
    status.textContent = err.status === 401 ? "Sign in to use this service." : err.message;
    $("signin-open").hidden = false;
  }
}

function openSignin(message) {
  const dialog = $("signin");
  const error = $("signin-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("signin-open").hidden = false;
  if (!dialog.open) dialog.showModal();
  $("signin-token").focus();
}

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

async function submitSignin(event) {
  event.preventDefault();
  const token = $("signin-token").value.trim();
  const user = $("signin-user").value;
  const password = $("signin-password").value;
  state.auth = token ? `Bearer ${token}` : user ? basic(user, password) : "";
  sessionStorage.setItem(AUTH_KEY, state.auth);
  $("signin").close();
  $("signin-form").reset();
  await loadModel();
}

function signOutOrIn() {
  if (state.auth) {
    state.auth = "";
    sessionStorage.removeItem(AUTH_KEY);
    $("signin-open").textContent = "Sign in";
    $("model-status").textContent = "Signed out.";
  } else {
    openSignin("");
  }
}

// ---- errors, busy state, progress ----------------------------------------------------------------

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy, canInterrupt) {
  state.busy = busy;
  for (const button of document.querySelectorAll("[data-busy-disable]")) {
    button.disabled = busy;
    button.setAttribute("aria-busy", String(busy));
  }
  $("interrupt").disabled = !(busy && canInterrupt);
}

function describeProgress(p, expected) {
  const s = p.state || {};
  if (!s.job_count) return "Waiting for the service…";
  const parts = [];
  if (s.sampling_steps) parts.push(`Step ${s.sampling_step} of ${s.sampling_steps}`);
  if (expected > 1) parts.push(`image ${Math.min(s.job_no + 1, expected)} of ${expected}`);
  const waiting = s.job_count - 1;
  parts.push(waiting > 0 ? `${waiting} more job${waiting > 1 ? "s" : ""} in the queue` : "queue empty");
  if (p.eta_relative > 0) parts.push(`about ${p.eta_relative.toFixed(1)} s left`);
  return parts.join(" · ");
}

// The service runs one job at a time. Progress describes the running job, whoever sent it, so the
// page counts the jobs that were there when it sent its own (job_count) and the distinct jobs seen
// running since (current_task): the difference is how many are still ahead. An estimate: a job
// that starts and ends between two polls is not seen.
async function queueSnapshot() {
  try {
    const { data: p } = await api("/sdapi/v1/progress?skip_current_image=true");
    return { ahead: p.state?.job_count || 0, seen: new Set(p.current_task ? [p.current_task] : []) };
  } catch (_) {
    return { ahead: 0, seen: new Set() };
  }
}

async function pollProgress(expected, queue) {
  state.polling = true;
  const bar = $("progress");
  const text = $("progress-text");
  const preview = $("preview");
  while (state.polling) {
    try {
      const { data: p } = await api("/sdapi/v1/progress");
      if (!state.polling) break;
      if (p.current_task) queue.seen.add(p.current_task);
      const ahead = Math.max(0, queue.ahead - Math.max(0, queue.seen.size - 1));
      if (ahead > 0) {
        text.textContent = `Waiting: ${ahead} job${ahead > 1 ? "s" : ""} ahead of yours in the queue.`;
        bar.value = 0;
        preview.hidden = true; // the running job's preview is someone else's image
        $("interrupt").disabled = true; // it would stop their job, not this one
      } else {
        $("interrupt").disabled = state.interruptSent;
        bar.value = p.progress || 0;
        bar.textContent = `${Math.round((p.progress || 0) * 100)}%`;
        text.textContent = describeProgress(p, expected);
        if (p.current_image) {
          preview.src = `data:image/png;base64,${p.current_image}`;
          preview.hidden = false;
        }
      }
    } catch (_) {
      /* the request itself reports errors; progress is best effort */
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function stopProgress(summary, finished) {
  state.polling = false;
  $("progress").value = finished ? 1 : 0;
  $("progress-text").textContent = summary || "Idle.";
  $("preview").hidden = true;
}

async function interrupt() {
  state.interruptSent = true;
  $("interrupt").disabled = true;
  $("progress-text").textContent = "Interrupting after the current step…";
  try {
    await api("/sdapi/v1/interrupt", {});
  } catch (err) {
    showError(err.message);
  }
}

// ---- prompt token counters ("42/75" per 75-token chunk, as the service reads the prompt) ----------
// Each prompt textarea names its counter in data-token-count. The service answers with the loaded
// model's own tokenizer; a newer request aborts the one before, and a sequence number drops any
// answer that still arrives late, so only the latest text's count is shown.

const tokenCounters = new Map(); // textarea id -> { timer, seq, controller }

function setTokenCount(out, text, { over = false, note = "", waiting = false } = {}) {
  out.textContent = text;
  out.classList.toggle("over", over);
  out.classList.toggle("waiting", waiting);
  if (note) out.title = note;
  else out.removeAttribute("title");
}

function tokenNote(data) {
  const lines = [...(data.warnings || [])];
  const tags = data.extra_networks || [];
  if (tags.length && !lines.some((line) => tags.every((tag) => line.includes(tag)))) {
    lines.push(`${tags.join(" ")} not applied: extra networks are not loaded at run time.`);
  }
  return lines.join("\n");
}

function showTokenCount(out, data) {
  const chunks = data.chunks || [];
  setTokenCount(out, chunks.map((c) => `${c.tokens}/${c.of}`).join(" · "), {
    over: data.dropped_tokens > 0,
    note: tokenNote(data),
  });
}

async function countTokens(field) {
  const counter = tokenCounters.get(field);
  const out = $($(field).dataset.tokenCount);
  clearTimeout(counter.timer);
  counter.controller?.abort();
  const controller = new AbortController();
  counter.controller = controller;
  const seq = ++counter.seq;
  try {
    const { data } = await api(
      "/prompt/tokens",
      { prompt: $(field).value },
      { quiet: true, signal: controller.signal },
    );
    if (seq !== counter.seq) return;
    showTokenCount(out, data);
  } catch (err) {
    if (seq !== counter.seq) return; // aborted or overtaken by a newer request
    if (err.status === 503) {
      // the model is loading: a quiet "…", and ask again later
      setTokenCount(out, "…", { waiting: true, note: "Counting once the model has loaded" });
      scheduleTokenCount(field, TOKENS_RETRY_MS);
    } else {
      setTokenCount(out, ""); // a counter is a hint: no count rather than an error
    }
  } finally {
    if (counter.controller === controller) counter.controller = null;
  }
}

function scheduleTokenCount(field, delay = TOKENS_DEBOUNCE_MS) {
  const counter = tokenCounters.get(field);
  clearTimeout(counter.timer);
  counter.timer = setTimeout(() => countTokens(field), delay);
}

function wireTokenCounters() {
  for (const field of document.querySelectorAll("textarea[data-token-count]")) {
    tokenCounters.set(field.id, { timer: null, seq: 0, controller: null });
    field.addEventListener("input", () => scheduleTokenCount(field.id));
  }
}

function countAllTokens() {
  for (const field of tokenCounters.keys()) countTokens(field);
}

// ---- making images -------------------------------------------------------------------------------

function seedOf(id) {
  const value = Number.parseInt($(id).value, 10);
  return Number.isFinite(value) ? value : -1;
}

function vaeSettings(id) {
  const value = $(id).value;
  return value === "taesd" ? { override_settings: { sd_vae: "taesd" } } : {};
}

// Resolves to the service's answer ({images, parameters, info}), or null when the request failed.
async function generate(route, payload, count) {
  showError("");
  setBusy(true, true);
  state.interruptSent = false;
  const started = performance.now();
  pollProgress(count, await queueSnapshot());
  let summary = "";
  let finished = false;
  let answer = null;
  try {
    const { data, headers } = await api(`/sdapi/v1/${route}`, payload);
    const info = JSON.parse(data.info);
    const seconds = (performance.now() - started) / 1000;
    const service = Number.parseFloat(headers.get("X-Process-Time") || "0");
    data.images.forEach((b64, i) => {
      const item = {
        b64,
        seed: info.all_seeds[i],
        infotext: info.infotexts[i] || "",
        prompt: payload.prompt,
        mode: route,
        timing: `${seconds.toFixed(2)} s in the browser, ${service.toFixed(2)} s in the service for ${data.images.length} image${data.images.length > 1 ? "s" : ""}`,
      };
      addToGallery(item);
      keepImage(item);
    });
    if (info.all_seeds.length) rememberSeed(info.all_seeds[0]);
    summary = info.interrupted
      ? `Interrupted: ${data.images.length} of ${count} image${count > 1 ? "s" : ""} made.`
      : `Done: ${data.images.length} image${data.images.length > 1 ? "s" : ""} in ${seconds.toFixed(1)} s.`;
    finished = true;
    answer = data;
  } catch (err) {
    showError(err.message);
    summary = "Failed; see the message below the form.";
  } finally {
    stopProgress(summary, finished);
    setBusy(false);
  }
  return answer;
}

function rememberSeed(seed) {
  state.lastSeed = seed;
  for (const button of document.querySelectorAll("[data-seed-reuse]")) {
    button.disabled = false;
    button.textContent = `Reuse last seed (${seed})`;
  }
}

async function submitCreate(event) {
  event.preventDefault();
  const count = Math.max(1, Number.parseInt($("create-count").value, 10) || 1);
  const payload = {
    prompt: $("create-prompt").value,
    seed: seedOf("create-seed"),
    batch_size: count,
    ...vaeSettings("create-vae"),
  };
  await generate("txt2img", payload, count);
}

async function submitEdit(event) {
  event.preventDefault();
  if (!state.images.edit) {
    showError("Choose, drop or paste a start image first.");
    $("edit-file").focus();
    return;
  }
  const payload = {
    prompt: $("edit-prompt").value,
    init_images: [state.images.edit],
    denoising_strength: Number.parseFloat($("edit-strength").value),
    resize_mode: Number.parseInt($("edit-resize").value, 10),
    seed: seedOf("edit-seed"),
    ...vaeSettings("edit-vae"),
  };
  // A painted mask makes it inpainting (A1111's fields); with nothing painted, plain img2img.
  const mask = maskPng();
  if (mask) {
    payload.mask = mask;
    payload.mask_blur = maskBlur();
    payload.inpainting_mask_invert = $("mask-invert").checked ? 1 : 0;
  }
  const original = state.images.edit;
  const data = await generate("img2img", payload, 1);
  if (data?.images?.length) showComparison(original, data.images[0], Boolean(mask));
}

function showComparison(original, b64, masked) {
  $("edit-original").src = original;
  $("edit-result").src = `data:image/png;base64,${b64}`;
  $("edit-result").alt = masked ? "The edited image, changed inside the mask" : "The edited image";
  $("edit-result-caption").textContent = masked ? "After (inpainted)" : "After";
  $("edit-compare").hidden = false;
}

// ---- the inpainting mask: painted over the start image's preview ---------------------------------
// The canvas has the start image's own pixel size and is stretched over its preview, so the mask is
// painted as shown and exported at the size the service gets. Paint is opaque on the canvas (CSS
// shows it translucent); the eraser removes it. The brush size is in screen pixels.

const mask = { drawing: false, last: null };

function maskContext() {
  return $("mask-canvas").getContext("2d", { willReadFrequently: true });
}

// Lay the canvas exactly over the preview (the preview's size follows the page's width).
function placeMaskCanvas() {
  const img = $("edit-image");
  const canvas = $("mask-canvas");
  canvas.style.left = `${img.offsetLeft}px`;
  canvas.style.top = `${img.offsetTop}px`;
  canvas.style.width = `${img.offsetWidth}px`;
  canvas.style.height = `${img.offsetHeight}px`;
}

function resetMask() {
  const img = $("edit-image");
  const canvas = $("mask-canvas");
  mask.drawing = false;
  mask.last = null;
  const ready = !img.hidden && img.naturalWidth > 0;
  canvas.hidden = !ready;
  $("mask-tools").hidden = !ready;
  // Setting the size empties the canvas: a new start image starts with no mask.
  canvas.width = ready ? img.naturalWidth : 0;
  canvas.height = ready ? img.naturalHeight : 0;
  if (ready) placeMaskCanvas();
}

function clearMask() {
  const canvas = $("mask-canvas");
  maskContext().clearRect(0, 0, canvas.width, canvas.height);
}

function maskPoint(event) {
  const canvas = $("mask-canvas");
  const box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width; // image pixels per screen pixel
  return {
    x: (event.clientX - box.left) * scale,
    y: ((event.clientY - box.top) * canvas.height) / box.height,
    radius: (Number.parseInt($("mask-size").value, 10) / 2) * scale,
  };
}

function paintMask(point) {
  const ctx = maskContext();
  ctx.globalCompositeOperation = $("mask-eraser").checked ? "destination-out" : "source-over";
  ctx.fillStyle = ctx.strokeStyle = MASK_COLOUR;
  ctx.beginPath();
  if (mask.last) {
    ctx.lineWidth = point.radius * 2;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.moveTo(mask.last.x, mask.last.y);
    ctx.lineTo(point.x, point.y);
    ctx.stroke();
  } else {
    ctx.arc(point.x, point.y, point.radius, 0, 2 * Math.PI);
    ctx.fill();
  }
  mask.last = point;
}

function startStroke(event) {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  $("mask-canvas").setPointerCapture(event.pointerId);
  mask.drawing = true;
  mask.last = null;
  paintMask(maskPoint(event));
}

function continueStroke(event) {
  if (!mask.drawing) return;
  const events = event.getCoalescedEvents?.() || [];
  for (const e of events.length ? events : [event]) paintMask(maskPoint(e));
}

function endStroke() {
  mask.drawing = false;
  mask.last = null;
}

function maskBlur() {
  const blur = Number.parseInt($("mask-blur").value, 10);
  return Number.isFinite(blur) ? Math.min(MASK_BLUR_MAX, Math.max(0, blur)) : MASK_BLUR_DEFAULT;
}

// The mask as A1111 takes it: a PNG data URL the start image's size, white where painted (to be
// changed) and black elsewhere; null when nothing is painted or no start image is shown.
function maskPng() {
  const img = $("edit-image");
  const canvas = $("mask-canvas");
  if (canvas.hidden || !canvas.width || canvas.width !== img.naturalWidth || canvas.height !== img.naturalHeight) {
    return null;
  }
  const { width, height } = canvas;
  const paint = maskContext().getImageData(0, 0, width, height).data;
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  const ctx = out.getContext("2d");
  const bw = ctx.createImageData(width, height);
  let painted = false;
  for (let i = 0; i < paint.length; i += 4) {
    const value = paint[i + 3] >= 128 ? 255 : 0; // the brush's soft rim: painted from half alpha
    if (value) painted = true;
    bw.data[i] = bw.data[i + 1] = bw.data[i + 2] = value;
    bw.data[i + 3] = 255;
  }
  if (!painted) return null;
  ctx.putImageData(bw, 0, 0);
  return out.toDataURL("image/png");
}

function wireMask() {
  const img = $("edit-image");
  const canvas = $("mask-canvas");
  img.addEventListener("load", resetMask);
  img.addEventListener("error", resetMask);
  const follow = new ResizeObserver(() => {
    if (!canvas.hidden) placeMaskCanvas();
  });
  follow.observe(img);
  follow.observe($("edit-stage"));
  canvas.addEventListener("pointerdown", startStroke);
  canvas.addEventListener("pointermove", continueStroke);
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("lostpointercapture", endStroke);
  $("mask-size").addEventListener("input", (e) => {
    $("mask-size-value").textContent = e.target.value;
  });
  $("mask-clear").addEventListener("click", clearMask);
}

// ---- the gallery ---------------------------------------------------------------------------------

function addToGallery(item) {
  const node = $("gallery-item").content.firstElementChild.cloneNode(true);
  const url = `data:image/png;base64,${item.b64}`;
  const img = node.querySelector("img");
  img.src = url;
  img.alt = `${item.mode === "img2img" ? "Edited" : "Made"} from “${item.prompt}”, seed ${item.seed}`;
  node.querySelector(".meta").textContent = `Seed ${item.seed} · ${item.timing}`;
  node.querySelector(".infotext").textContent = item.infotext;
  const download = node.querySelector("[data-download]");
  download.href = url;
  download.download = `pi-axera-sd-${item.seed}.png`;
  download.setAttribute("aria-label", `Download the image with seed ${item.seed}`);
  node.querySelector("[data-use-seed]").addEventListener("click", () => {
    $("create-seed").value = String(item.seed);
    $("create-prompt").value = item.prompt;
    countTokens("create-prompt");
    selectTab("create");
    $("create-prompt").focus();
  });
  node.querySelector("[data-to-edit]").addEventListener("click", () => {
    setImage("edit", url);
    $("edit-prompt").value = item.prompt;
    countTokens("edit-prompt");
    selectTab("edit");
    $("edit-prompt").focus();
  });
  node.querySelector("[data-to-tag]").addEventListener("click", () => {
    setImage("tag", url);
    selectTab("tag");
  });
  $("gallery").prepend(node);
  $("gallery-empty").hidden = true;
}

// ---- the kept gallery: the last N images, in this browser's IndexedDB ------------------------------
// A reload (or a restart of the service) keeps them; nothing leaves the browser. Where IndexedDB is
// unavailable (some private windows) the gallery lasts for the page's life only, as it says.

const KEEP_DB = "pi-axera-sd";
const KEEP_STORE = "gallery";
const KEEP_LIMIT_KEY = "pi-axera-sd.keep";
const KEEP_DEFAULT = 50;
let keepDb = null;

function keepLimit() {
  const saved = Number.parseInt(localStorage.getItem(KEEP_LIMIT_KEY) || "", 10);
  return Number.isFinite(saved) && saved >= 0 ? saved : KEEP_DEFAULT;
}

function openKeep() {
  if (keepDb) return Promise.resolve(keepDb);
  return new Promise((resolve, reject) => {
    if (!window.indexedDB) {
      reject(new Error("IndexedDB is not available"));
      return;
    }
    const opening = indexedDB.open(KEEP_DB, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(KEEP_STORE, { autoIncrement: true });
    opening.onsuccess = () => {
      keepDb = opening.result;
      resolve(keepDb);
    };
    opening.onerror = () => reject(opening.error);
  });
}

function keepRequest(mode, act) {
  return openKeep().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction(KEEP_STORE, mode);
        const result = act(tx.objectStore(KEEP_STORE));
        tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
        tx.onerror = () => reject(tx.error);
      }),
  );
}

async function keepImage(item) {
  try {
    await keepRequest("readwrite", (store) => store.add({ ...item, keptAt: Date.now() }));
    await trimKept(keepLimit());
  } catch (err) {
    keepUnavailable(err);
  }
}

// Drop the oldest images beyond ``limit`` (keys grow with time: the first keys are the oldest).
async function trimKept(limit) {
  const keys = await keepRequest("readonly", (store) => store.getAllKeys());
  const extra = keys.length - limit;
  if (extra > 0) await keepRequest("readwrite", (store) => store.delete(IDBKeyRange.upperBound(keys[extra - 1])));
}

async function restoreKept() {
  try {
    const items = await keepRequest("readonly", (store) => store.getAll());
    for (const item of items) addToGallery(item);
  } catch (err) {
    keepUnavailable(err);
  }
}

async function clearKept() {
  try {
    await keepRequest("readwrite", (store) => store.clear());
  } catch (err) {
    keepUnavailable(err);
  }
  $("gallery").replaceChildren();
  $("gallery-empty").hidden = false;
}

function keepUnavailable(err) {
  $("keep-note").textContent = `This browser does not keep images across reloads (${err.message}).`;
  $("keep-note").hidden = false;
}

function setKeepLimit(event) {
  const limit = Math.max(0, Number.parseInt(event.target.value, 10) || 0);
  localStorage.setItem(KEEP_LIMIT_KEY, String(limit));
  trimKept(limit).catch(keepUnavailable);
}

// ---- input images: pick, drop, paste -------------------------------------------------------------

function setImage(target, dataUrl, name = "") {
  state.images[target] = dataUrl;
  const img = $(`${target}-image`);
  const note = $(`${target}-image-note`);
  note.hidden = true;
  img.onerror = () => {
    // The browser cannot show it; the service checks it and says what is wrong, if anything.
    img.hidden = true;
    note.textContent = `No preview of ${name || "this file"}: the browser cannot show it.`;
    note.hidden = false;
  };
  img.src = dataUrl;
  img.hidden = false;
  if (target === "edit") resetMask(); // a new start image, no mask (the same picture fires no load)
  showError("");
}

function readFile(target, file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => setImage(target, reader.result, file.name);
  reader.onerror = () => showError(`Could not read ${file.name}.`);
  reader.readAsDataURL(file);
}

function wireDropZone(target) {
  const zone = $(`${target}-drop`);
  $(`${target}-file`).addEventListener("change", (e) => readFile(target, e.target.files[0]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    readFile(target, e.dataTransfer.files[0]);
  });
}

function onPaste(event) {
  const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (!file) return; // ordinary text paste into a field
  event.preventDefault();
  const target = currentTab() === "tag" ? "tag" : "edit";
  selectTab(target);
  readFile(target, file);
}

// ---- tagging -------------------------------------------------------------------------------------

function addCategoryRow(name = "", labels = "") {
  const index = $("category-rows").children.length + 1;
  const row = document.createElement("li");
  row.className = "row";
  row.innerHTML = `
    <input class="cat-name" aria-label="Category ${index} name" placeholder="name">
    <input class="cat-labels" aria-label="Category ${index} choices" placeholder="choice, choice, …">
    <button type="button" class="ghost" aria-label="Remove category ${index}">Remove</button>`;
  row.querySelector(".cat-name").value = name;
  row.querySelector(".cat-labels").value = labels;
  row.querySelector("button").addEventListener("click", () => row.remove());
  $("category-rows").append(row);
  return row;
}

function categories() {
  const out = {};
  for (const row of $("category-rows").children) {
    const name = row.querySelector(".cat-name").value.trim();
    const labels = row
      .querySelector(".cat-labels")
      .value.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (name) out[name] = labels;
  }
  return out;
}

function tagKind() {
  return document.querySelector('input[name="tag-kind"]:checked').value;
}

function resultTable(caption, headings, rows) {
  const table = document.createElement("table");
  table.createCaption().textContent = caption;
  const head = table.createTHead().insertRow();
  for (const h of headings) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = h;
    head.append(th);
  }
  const body = table.createTBody();
  for (const cells of rows) {
    const tr = body.insertRow();
    for (const cell of cells) tr.insertCell().textContent = cell;
  }
  return table;
}

async function submitTag(event) {
  event.preventDefault();
  const out = $("tag-result");
  if (!state.images.tag) {
    showError("Choose, drop or paste an image to tag first.");
    $("tag-file").focus();
    return;
  }
  showError("");
  out.replaceChildren();
  setBusy(true, false);
  $("progress-text").textContent = "Tagging…";
  try {
    if (tagKind() === "flat") {
      const { data } = await api("/sdapi/v1/interrogate", {
        image: state.images.tag,
        model: "clip",
        top_k: Number.parseInt($("tag-topk").value, 10) || 10,
        threshold: Number.parseFloat($("tag-threshold").value),
      });
      const rows = data.interrogations.map((t) => [t.tag, t.score.toFixed(3)]);
      out.append(
        rows.length
          ? resultTable("Tags, best first", ["Tag", "Score"], rows)
          : document.createTextNode("No tag scored above the lowest score."),
      );
    } else {
      const { data } = await api("/sdapi/v1/interrogate/structured", {
        image: state.images.tag,
        categories: categories(),
      });
      const rows = Object.entries(data.results).map(([name, r]) => [name, r.winner, r.confidence.toFixed(3)]);
      out.append(resultTable("One answer per category", ["Category", "Answer", "Confidence"], rows));
      if (data.general_tags.length) {
        const p = document.createElement("p");
        p.textContent = `General tags: ${data.general_tags.join(", ")}`;
        out.append(p);
      }
    }
  } catch (err) {
    showError(err.message);
  } finally {
    $("progress-text").textContent = "Idle.";
    setBusy(false);
  }
}

// ---- tabs (WAI-ARIA tabs pattern: arrow keys move between tabs) ---------------------------------

const TABS = ["create", "edit", "tag"];

function currentTab() {
  return TABS.find((t) => $(`tab-${t}`).getAttribute("aria-selected") === "true");
}

function selectTab(name, focus = false) {
  for (const t of TABS) {
    const selected = t === name;
    const tab = $(`tab-${t}`);
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`panel-${t}`).hidden = !selected;
  }
  if (focus) $(`tab-${name}`).focus();
}

function wireTabs() {
  TABS.forEach((name, i) => {
    const tab = $(`tab-${name}`);
    tab.addEventListener("click", () => selectTab(name));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (step) selectTab(TABS[(i + step + TABS.length) % TABS.length], true);
    });
  });
}

// ---- start -------------------------------------------------------------------------------------

function init() {
  wireTabs();
  wireTokenCounters();
  wireDropZone("edit");
  wireDropZone("tag");
  wireMask();
  document.addEventListener("paste", onPaste);
  $("create-form").addEventListener("submit", submitCreate);
  $("edit-form").addEventListener("submit", submitEdit);
  $("tag-form").addEventListener("submit", submitTag);
  $("interrupt").addEventListener("click", interrupt);
  $("signin-form").addEventListener("submit", submitSignin);
  $("signin-cancel").addEventListener("click", () => $("signin").close());
  $("signin-open").addEventListener("click", signOutOrIn);
  $("edit-strength").addEventListener("input", (e) => {
    $("edit-strength-value").textContent = Number.parseFloat(e.target.value).toFixed(2);
  });
  for (const button of document.querySelectorAll("[data-seed-random]")) {
    button.addEventListener("click", () => {
      $(button.dataset.seedRandom).value = "-1";
    });
  }
  for (const button of document.querySelectorAll("[data-seed-reuse]")) {
    button.addEventListener("click", () => {
      if (state.lastSeed !== null) $(button.dataset.seedReuse).value = String(state.lastSeed);
    });
  }
  for (const radio of document.querySelectorAll('input[name="tag-kind"]')) {
    radio.addEventListener("change", () => {
      const structured = tagKind() === "structured";
      $("tag-categories").hidden = !structured;
      $("tag-flat-options").hidden = structured;
    });
  }
  $("category-add").addEventListener("click", () => addCategoryRow().querySelector("input").focus());
  for (const [name, labels] of DEMOGRAPHICS) addCategoryRow(name, labels);
  $("keep-count").value = String(keepLimit());
  $("keep-count").addEventListener("change", setKeepLimit);
  $("gallery-clear").addEventListener("click", clearKept);
  restoreKept();
  loadModel();
}

document.addEventListener("DOMContentLoaded", init);
