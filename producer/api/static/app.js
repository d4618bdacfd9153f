/* voxfarm console: plain JavaScript, no build step. Talks only to /v1 on the same origin.
 *
 * The token stays in this tab (sessionStorage) and goes out as a Bearer header; signing in also
 * sets an HttpOnly cookie that the server accepts for GET only, so <audio> elements and
 * EventSource (which cannot send headers) can stream chapters and progress.
 */
"use strict";

const TOKEN_KEY = "voxfarm.token";
const $ = (selector, root = document) => root.querySelector(selector);
const state = { me: null, jobsTimer: null, events: null, jobId: null, detailAt: 0, lastDone: -1, lastState: "" };

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body: options.body, credentials: "same-origin" });
  if (response.status === 401 && path !== "/v1/session") { signOut(); throw new Error("Your session ended; sign in again."); }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function toast(message) {
  const box = $("#toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 3500);
}

function showError(id, error) {
  const box = $(id);
  box.textContent = error ? (error.message || String(error)) : "";
  box.hidden = !error;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

function clock(seconds) {
  seconds = Math.round(seconds || 0);
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

function ago(epoch) {
  const seconds = Date.now() / 1000 - epoch;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(epoch * 1000).toLocaleDateString();
}

function setProgress(bar, fraction, jobState) {
  const percent = Math.round(fraction * 1000) / 10;
  bar.querySelector(".fill").style.width = `${percent}%`;
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", `${percent} percent, ${jobState}`);
  bar.classList.toggle("done", jobState === "done");
  bar.classList.toggle("failed", jobState === "failed");
  bar.classList.toggle("cancelled", jobState === "cancelled");
}

function progressBar(label) {
  return el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": label },
    el("div", { class: "fill" }));
}

/* --- sign in / out ------------------------------------------------------------------------ */

async function signIn(value) {
  const response = await fetch("/v1/session", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: value }),
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(response.status === 401 ? "That token is not valid, or it was revoked." : `Sign-in failed (${response.status}).`);
  sessionStorage.setItem(TOKEN_KEY, value);
  state.me = await response.json();
  // The farm caps the priority a tenant's token may give; the controls offer no more than that.
  for (const input of [$("#priority"), $("#job-priority")]) input.max = String(state.me.max_priority ?? 100);
  if (Number($("#priority").value) > state.me.max_priority) {
    $("#priority").value = String(state.me.max_priority);
    $("#priority-out").textContent = $("#priority").value;
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = null;
  fetch("/v1/session", { method: "DELETE", credentials: "same-origin" }).catch(() => {});
  location.hash = "#/signin";
}

/* --- jobs list ---------------------------------------------------------------------------- */

function jobRow(job) {
  const bar = progressBar(`Progress of ${job.title}`);
  const row = el("li", { class: "job", "data-job": job.job },
    el("div", {},
      el("a", { class: "job-title", href: `#/job/${encodeURIComponent(job.job)}`, text: job.title || job.job }),
      el("div", { class: "job-meta" })),
    el("div", {}, bar, el("div", { class: "job-numbers" }, el("span", { class: "count" }), el("span", { class: "eta" }))),
    el("span", { class: "badge" }));
  return row;
}

function updateJobRow(row, job) {
  $(".job-meta", row).textContent = `${job.voice || "voice"} · priority ${job.priority} · ${ago(job.created_at)}`;
  setProgress($(".progress", row), job.progress, job.state);
  $(".count", row).textContent = `${Math.round(job.progress * 100)} % · ${job.segments_done}/${job.segments_total} sentences`;
  $(".eta", row).textContent = job.eta_s ? `about ${duration(job.eta_s)} left` : (job.state === "done" ? "finished" : "");
  const badge = $(".badge", row);
  badge.className = `badge ${job.state}`;
  badge.textContent = job.state;
}

function renderStats(jobs) {
  const count = (s) => jobs.filter((j) => j.state === s).length;
  const active = count("rendering") + count("queued") + count("assembling");
  const stats = $("#stats");
  stats.replaceChildren(
    ...[["Active", active], ["Paused", count("paused")], ["Finished", count("done")], ["Failed or cancelled", count("failed") + count("cancelled")]]
      .map(([label, value]) => el("div", { class: "stat" }, el("b", { text: String(value) }), el("span", { text: label }))));
}

async function refreshJobs() {
  const filter = $("#state-filter").value;
  const response = await api(`/v1/jobs${filter ? `?state=${encodeURIComponent(filter)}` : ""}`);
  const jobs = (await response.json()).filter((job) => job.kind !== "speech");
  const list = $("#job-list");
  const existing = new Map([...list.children].map((row) => [row.dataset.job, row]));
  const rows = jobs.map((job) => {
    const row = existing.get(job.job) || jobRow(job);
    updateJobRow(row, job);
    return row;
  });
  list.replaceChildren(...rows);
  if (!filter) renderStats(jobs);
  $("#jobs-empty").hidden = jobs.length > 0 || Boolean(filter);
}

function watchJobs() {
  const tick = () => refreshJobs().catch((error) => toast(error.message));
  tick();
  state.jobsTimer = setInterval(tick, 1500);
}

/* --- submit ------------------------------------------------------------------------------- */

async function loadVoices() {
  const select = $("#voice");
  if (select.options.length) return;
  const voices = await (await api("/v1/voices")).json();
  for (const voice of voices) {
    select.append(el("option", { value: voice.id, text: voice.id.replace(/[-_]/g, " "), selected: voice.default === true }));
  }
}

async function preview() {
  const button = $("#preview");
  const player = $("#preview-audio");
  button.disabled = true;
  button.textContent = "Rendering preview…";
  try {
    const response = await api("/v1/audio/speech", {
      method: "POST",
      json: { model: "voxfarm", input: $("#preview-text").value || "Hello.", voice: $("#voice").value, response_format: "mp3", speed: Number($("#speed").value) },
    });
    if (player.src) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(await response.blob());
    player.hidden = false;
    await player.play().catch(() => {});
  } catch (error) {
    toast(error.message);
  } finally {
    button.disabled = false;
    button.textContent = "▶ Hear a preview";
  }
}

function chooseFile(file) {
  const drop = $("#drop");
  drop.classList.toggle("has-file", Boolean(file));
  $("#drop-title").textContent = file ? `${file.name} · ${(file.size / 1024).toFixed(0)} KiB` : "Drop a book here, or choose a file";
  $("#chapter-picker").hidden = true;
  $("#chapter-options").replaceChildren();
  $("#chapters").value = "";
  if (file) loadContents(file).catch((error) => showError("#submit-error", error));
}

async function loadContents(file) {
  const form = new FormData();
  form.append("file", file);
  const contents = await (await api("/v1/books/contents", { method: "POST", body: form })).json();
  if ($("#book").files[0] !== file) return;  // another file was chosen meanwhile
  $("#book-heading").textContent = `${contents.title}${contents.author ? ` by ${contents.author}` : ""}: ${contents.chapters.length} chapters.`;
  $("#chapter-options").replaceChildren(...contents.chapters.map((chapter) => el("li", {},
    el("label", { class: "check" },
      el("input", { type: "checkbox", value: String(chapter.number), checked: true }),
      `${chapter.number}. ${chapter.title}`,
      el("span", { class: "muted", text: `${Math.max(1, Math.round(chapter.chars / 900))} min` })))));
  $("#chapter-picker").hidden = false;
}

/* "1-3,5" from the ticked boxes; empty when every chapter is ticked. */
function chapterSelection() {
  const boxes = [...document.querySelectorAll("#chapter-options input")];
  const picked = boxes.filter((box) => box.checked).map((box) => Number(box.value));
  if (picked.length === boxes.length) return "";
  const parts = [];
  for (let i = 0; i < picked.length; i++) {
    let j = i;
    while (j + 1 < picked.length && picked[j + 1] === picked[j] + 1) j++;
    parts.push(i === j ? `${picked[i]}` : `${picked[i]}-${picked[j]}`);
    i = j;
  }
  return parts.join(",");
}

function pickAll(checked) {
  for (const box of document.querySelectorAll("#chapter-options input")) box.checked = checked;
  $("#chapters").value = chapterSelection();
}

async function submitBook(event) {
  event.preventDefault();
  showError("#submit-error", null);
  const file = $("#book").files[0];
  if (!file) { showError("#submit-error", new Error("Choose a book file first.")); $("#book").focus(); return; }
  const boxes = document.querySelectorAll("#chapter-options input");
  if (boxes.length && ![...boxes].some((box) => box.checked)) {
    showError("#submit-error", new Error("Tick at least one chapter."));
    boxes[0].focus();
    return;
  }
  const form = new FormData();
  form.append("file", file);
  for (const name of ["voice", "chapters", "priority", "chapter_format", "book_format", "subtitles"]) {
    const value = $(`#${name}`).value.trim();
    if (value) form.append(name, value);
  }
  if ($("#no_titles").checked) form.append("no_titles", "true");
  const speed = Number($("#speed").value);
  if (speed !== 1) form.append("length_scale", (1 / speed).toFixed(3));
  const button = $("#submit-button");
  button.disabled = true;
  button.textContent = "Uploading…";
  try {
    const submitted = await (await api("/v1/jobs", { method: "POST", body: form })).json();
    toast(`${submitted.chapters} chapters, ${submitted.segments_total} sentences queued`);
    $("#submit-form").reset();
    chooseFile(null);
    location.hash = `#/job/${encodeURIComponent(submitted.job)}`;
  } catch (error) {
    showError("#submit-error", error);
  } finally {
    button.disabled = false;
    button.textContent = "Render audiobook";
  }
}

/* --- one job ------------------------------------------------------------------------------ */

function chapterRow(jobId, chapter) {
  const complete = chapter.segments_done >= chapter.segments;
  const body = el("div", {},
    el("div", { class: "chapter-title", text: chapter.title }),
    el("div", { class: "chapter-sub", text: chapter.duration_s ? `${clock(chapter.duration_s)} · ${chapter.segments} sentences` : `${chapter.segments_done}/${chapter.segments} sentences` }));
  let media;
  if (chapter.file) {
    media = el("audio", { controls: true, preload: "metadata", src: `/v1/jobs/${encodeURIComponent(jobId)}/files/${encodeURIComponent(chapter.file)}`, "aria-label": `Play chapter ${chapter.index + 1}: ${chapter.title}` });
  } else {
    media = progressBar(`Chapter ${chapter.index + 1} progress`);
    setProgress(media, chapter.segments ? chapter.segments_done / chapter.segments : 0, complete ? "done" : "rendering");
  }
  return el("li", { class: `chapter${complete ? " complete" : ""}`, "data-chapter": String(chapter.index) },
    el("span", { class: "chapter-number", "aria-hidden": "true", text: String(chapter.index + 1) }), body, media);
}

function renderHead(job) {
  $("#job-title").textContent = job.title || job.job;
  $("#job-sub").textContent = `${job.voice} · ${job.segments_total} sentences · ${job.segments_reused} reused · started ${ago(job.created_at)}`;
  setProgress($("#job-progress"), job.progress, job.state);
  $("#job-percent").textContent = `${Math.round(job.progress * 1000) / 10} %`;
  $("#job-eta").textContent = job.eta_s ? `about ${duration(job.eta_s)} left` : job.state === "assembling" ? "assembling the book…" : "";
  const badge = $("#job-state");
  badge.className = `badge ${job.state}`;
  badge.textContent = job.state;
  const live = ["queued", "rendering", "paused"].includes(job.state);
  $("#job-pause").hidden = !["queued", "rendering"].includes(job.state);
  $("#job-resume").hidden = job.state !== "paused";
  $("#job-cancel").hidden = !live && job.state !== "failed";
  $("#priority-form").hidden = !live;
  if (document.activeElement !== $("#job-priority")) $("#job-priority").value = job.priority;
}

function renderDetail(job) {
  renderHead(job);
  const total = (job.chapters || []).reduce((sum, c) => sum + (c.duration_s || 0), 0);
  if (total) $("#job-eta").textContent = `${duration(total)} of audio in ${job.chapters.length} chapters`;
  $("#chapters-list").replaceChildren(...(job.chapters || []).map((c) => chapterRow(job.job, c)));
  const failures = job.failures || [];
  const reasons = failures.map((f) => el("li", { text: `Sentence ${f.segment + 1}: ${f.reason}${f.attempts ? ` (after ${f.attempts} attempts)` : ""}` }));
  if (job.error) reasons.unshift(el("li", { text: `The job: ${job.error}` }));
  $("#failures-card").hidden = reasons.length === 0;
  $("#failures").replaceChildren(...reasons);
  const downloads = $("#job-downloads");
  downloads.replaceChildren();
  const labels = { m4b: "⬇ Audiobook (M4B)", cover: "Cover image" };
  const files = Object.entries(job.files || {}).sort(([a], [b]) => (a === "m4b" ? -1 : b === "m4b" ? 1 : a.localeCompare(b)));
  for (const [kind, name] of files) {
    downloads.append(el("a", { class: `button ${kind === "m4b" ? "primary" : "ghost"}`, href: `/v1/jobs/${encodeURIComponent(job.job)}/files/${encodeURIComponent(name)}`, download: name, text: labels[kind] || kind }));
  }
  if (job.state === "done") {
    downloads.append(el("a", { class: "button ghost", href: `/v1/jobs/${encodeURIComponent(job.job)}/manifest`, target: "_blank", rel: "noopener", text: "manifest.json" }));
  }
}

async function loadDetail() {
  const job = await (await api(`/v1/jobs/${encodeURIComponent(state.jobId)}`)).json();
  state.detailAt = Date.now();
  renderDetail(job);
}

function openJob(jobId) {
  state.jobId = jobId;
  state.lastDone = -1;
  state.lastState = "";
  $("#chapters-list").replaceChildren();
  showError("#job-error", null);
  loadDetail().catch((error) => showError("#job-error", error));
  const source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events`);
  state.events = source;
  const onEvent = (event) => {
    const job = JSON.parse(event.data);
    if (!job.job) return;
    renderHead(job);
    const changed = job.state !== state.lastState || (job.segments_done !== state.lastDone && Date.now() - state.detailAt > 1500);
    state.lastDone = job.segments_done;
    state.lastState = job.state;
    if (changed || event.type === "end") loadDetail().catch(() => {});
  };
  source.addEventListener("progress", onEvent);
  source.addEventListener("end", (event) => { onEvent(event); source.close(); });
}

async function operate(verb, options = {}) {
  try {
    const job = await (await api(`/v1/jobs/${encodeURIComponent(state.jobId)}/${verb}`, options)).json();
    renderHead(job);
    toast(`Job ${job.state}`);
    if (verb === "resume" && state.events && state.events.readyState === EventSource.CLOSED) openJob(state.jobId);
    loadDetail().catch(() => {});
  } catch (error) {
    showError("#job-error", error);
  }
}

function armCancel() {
  const button = $("#job-cancel");
  if (button.dataset.armed) {
    delete button.dataset.armed;
    button.textContent = "Cancel";
    operate("cancel", { method: "POST" });
    return;
  }
  button.dataset.armed = "1";
  button.textContent = "Confirm cancel";
  setTimeout(() => { if (button.dataset.armed) { delete button.dataset.armed; button.textContent = "Cancel"; } }, 5000);
}

/* --- routing ------------------------------------------------------------------------------ */

function leave() {
  clearInterval(state.jobsTimer);
  $("#toast").hidden = true;
  if (state.events) state.events.close();
  state.events = null;
}

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const signedIn = Boolean(token());
  $("#nav").hidden = !signedIn;
  $("#who").hidden = !signedIn;
  if (state.me) $("#who-tenant").textContent = state.me.tenant;
  const heading = $(`#view-${view} h1`);
  document.title = heading && heading.textContent ? `${heading.textContent} · voxfarm` : "voxfarm";
}

async function route() {
  leave();
  const hash = location.hash || "#/jobs";
  if (!token()) { show("signin"); $("#token").focus(); return; }
  if (!state.me) {
    try { await signIn(token()); } catch (_) { signOut(); return; }
  }
  if (hash.startsWith("#/job/")) {
    show("job");
    openJob(decodeURIComponent(hash.slice("#/job/".length)));
  } else if (hash === "#/submit") {
    show("submit");
    loadVoices().catch((error) => toast(error.message));
  } else if (hash === "#/signin") {
    location.hash = "#/jobs";
  } else {
    show("jobs");
    watchJobs();
  }
}

function bind() {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#signin-error", null);
    try {
      await signIn($("#token").value.trim());
      $("#token").value = "";
      location.hash = "#/jobs";
      route();
    } catch (error) {
      showError("#signin-error", error);
    }
  });
  $("#sign-out").addEventListener("click", signOut);
  $("#state-filter").addEventListener("change", () => refreshJobs().catch((error) => toast(error.message)));
  $("#book").addEventListener("change", () => chooseFile($("#book").files[0]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) { $("#book").files = event.dataTransfer.files; chooseFile($("#book").files[0]); }
  });
  $("#priority").addEventListener("input", () => { $("#priority-out").textContent = $("#priority").value; });
  $("#speed").addEventListener("input", () => { $("#speed-out").textContent = `${Number($("#speed").value).toFixed(2)}×`; });
  $("#preview").addEventListener("click", preview);
  $("#chapter-options").addEventListener("change", () => { $("#chapters").value = chapterSelection(); });
  $("#pick-all").addEventListener("click", () => pickAll(true));
  $("#pick-none").addEventListener("click", () => pickAll(false));
  $("#submit-form").addEventListener("submit", submitBook);
  $("#job-pause").addEventListener("click", () => operate("pause", { method: "POST" }));
  $("#job-resume").addEventListener("click", () => operate("resume", { method: "POST" }));
  $("#job-cancel").addEventListener("click", armCancel);
  $("#priority-form").addEventListener("submit", (event) => {
    event.preventDefault();
    operate("priority", { method: "PUT", json: { priority: Number($("#job-priority").value) } });
  });
  window.addEventListener("hashchange", route);
}

bind();
route();
