// The SIBYLS page: log in, queue samples and plates (checked before queuing), watch progress, read results.
// Plain browser JavaScript, no library. Every request carries the login's access token; the live
// updates come from one Server-Sent Events stream opened with a single-use ticket (the page never polls).
"use strict";

const PROVIDER = "demo";
const $ = (id) => document.getElementById(id);
const auth = { access: null, refresh: null, user: null, scopes: new Set(), roles: [], timer: null };
const state = { status: {}, queue: { items: [], running_item: {} }, history: [], plans: {}, editing: null,
  sheetFile: null, events: null };

// ---- small helpers -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
  return m ? `${m}:${String(sec).padStart(2, "0")}` : `${sec} s`;
}

function itemLabel(item) {
  const kw = item.kwargs || {};
  if (kw.sample_code) return kw.sample_code;
  if (kw.plate && kw.plate.plate_id) return `plate ${kw.plate.plate_id} (${(kw.plate.wells || []).length} wells)`;
  return (item.args || []).join(", ");
}

// ---- login, tokens, requests ---------------------------------------------------------------------

function saveTokens(tokens) {
  auth.access = tokens.access_token;
  auth.refresh = tokens.refresh_token;
  sessionStorage.setItem("sibyls.tokens", JSON.stringify({ access_token: auth.access, refresh_token: auth.refresh }));
  clearTimeout(auth.timer);
  const lifetime = tokens.expires_in || 900;
  auth.timer = setTimeout(refreshTokens, Math.max(5, lifetime * 0.8) * 1000);
}

async function refreshTokens() {
  if (!auth.refresh) return false;
  const response = await fetch("/api/auth/session/refresh", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: auth.refresh }),
  });
  if (!response.ok) { logout("Your session ended: log in again."); return false; }
  saveTokens(await response.json());
  return true;
}

async function api(method, path, body, retry = true) {
  const headers = { Authorization: `Bearer ${auth.access}` };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 401 && retry && (await refreshTokens())) return api(method, path, body, false);
  return response;
}

async function apiJSON(method, path, body) {
  const response = await api(method, path, body);
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  return { ok: response.ok, status: response.status, data };
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const form = new URLSearchParams({ username: $("login-user").value, password: $("login-password").value });
  const response = await fetch(`/api/auth/provider/${PROVIDER}/token`, { method: "POST", body: form });
  if (!response.ok) {
    $("login-error").textContent = response.status === 401 ? "Wrong account or password." : `Login failed (${response.status}).`;
    return;
  }
  $("login-password").value = "";
  saveTokens(await response.json());
  await start();
}

function logout(message = "") {
  if (auth.access) fetch("/api/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${auth.access}` } });
  sessionStorage.removeItem("sibyls.tokens");
  Object.assign(auth, { access: null, refresh: null, user: null, scopes: new Set(), roles: [] });
  clearTimeout(auth.timer);
  if (state.events) { state.events.close(); state.events = null; }
  $("app").hidden = true;
  $("whoami").hidden = true;
  $("login-form").hidden = false;
  $("login-error").textContent = message;
}

async function start() {
  const who = await apiJSON("GET", "/api/auth/whoami");
  const scopes = await apiJSON("GET", "/api/auth/scopes");
  if (!who.ok || !scopes.ok) { logout("Log in again."); return; }
  auth.user = (who.data.identities || []).map((i) => i.id)[0] || "?";
  auth.scopes = new Set(scopes.data.scopes);
  auth.roles = scopes.data.roles;
  $("who-name").textContent = auth.user;
  $("who-roles").textContent = auth.roles.join(", ");
  $("login-form").hidden = true;
  $("whoami").hidden = false;
  $("app").hidden = false;
  document.querySelectorAll("[data-scope]").forEach((node) => { node.hidden = !auth.scopes.has(node.dataset.scope); });
  connectEvents();
  await loadPlans();
  await loadProjects();
}

const isStaff = () => auth.roles.includes("expert");
const mayChange = (item) => auth.scopes.has("write:queue:edit") && (isStaff() || item.user === auth.user);

// ---- the event stream ----------------------------------------------------------------------------

async function connectEvents() {
  if (state.events) state.events.close();
  state.events = null;
  if (!auth.access) return;
  $("st-stream").textContent = "stream: connecting";
  const ticket = await apiJSON("POST", "/api/sibyls/events/ticket");
  if (!ticket.ok) { setTimeout(connectEvents, 2000); return; }
  const source = new EventSource(`/api/sibyls/events?ticket=${encodeURIComponent(ticket.data.ticket)}`);
  state.events = source;
  source.onopen = () => { $("st-stream").textContent = "stream: live"; };
  source.onerror = () => {  // the ticket is single-use: reconnect with a new one
    source.close();
    if (state.events === source) { $("st-stream").textContent = "stream: reconnecting"; setTimeout(connectEvents, 1000); }
  };
  const on = (name, handler) => source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
  on("status", showStatus);
  on("queue", showQueue);
  on("history", showHistory);
  on("progress", showProgress);
  on("beamline", showBeamline);
  on("console", showConsole);
  on("expired", () => { source.close(); refreshTokens().then((ok) => ok && connectEvents()); });
}

function showStatus(status) {
  state.status = status;
  $("st-manager").textContent = status.manager_state;
  $("st-worker").textContent = status.worker_environment_exists ? status.worker_environment_state : "closed";
  $("st-re").textContent = status.re_state ?? "–";
  document.body.dataset.manager = status.manager_state;
  document.body.dataset.re = status.re_state ?? "";
}

function showBeamline(b) {
  $("st-beam").textContent = b.ring_current_ma ?? "?";
  $("st-pshutter").textContent = b.photon_shutter ?? "?";
  $("st-fshutter").textContent = b.fast_shutter ?? "?";
  $("st-temp").textContent = b.cell_temperature_c ?? "?";
}

function showProgress(p) {
  const running = p.state === "running";
  const bar = $("pg-bar");
  $("pg-item").textContent = running ? `${p.plan_name} ${p.sample_code ?? ""}`
    : p.state === "finished" && p.sample_code ? `done: ${p.plan_name} ${p.sample_code} (${p.exit_status})` : p.state;
  bar.value = running ? (p.item_fraction ?? 0) : p.state === "finished" ? 1 : 0;
  bar.dataset.state = p.state;
  $("pg-frames").textContent = p.frames ? `frame ${p.frame}/${p.frames}` : "";
  $("pg-wells").textContent = p.well ? `well ${p.well} (${p.well_id})` : "";
  $("pg-eta").textContent = running ? fmtSeconds(p.item_remaining_s) : "–";
  $("pg-queue-eta").textContent = p.items_queued || running ? fmtSeconds(p.queue_remaining_s) : "–";
}

function showConsole(message) {
  const pre = $("console");
  pre.textContent = (message.tail ? "" : pre.textContent) + message.text;
  const lines = pre.textContent.split("\n");
  if (lines.length > 500) pre.textContent = lines.slice(-500).join("\n");
  pre.scrollTop = pre.scrollHeight;
}

// ---- controls ------------------------------------------------------------------------------------

async function control(path, body) {
  const reply = await apiJSON("POST", path, body);
  const ok = reply.ok && reply.data && reply.data.success !== false;
  $("control-msg").textContent = ok ? "" : `refused: ${(reply.data && (reply.data.msg || reply.data.detail)) || reply.status}`;
}

// ---- queue ---------------------------------------------------------------------------------------

function showQueue(queue) {
  state.queue = queue;
  const body = $("queue-table").querySelector("tbody");
  body.replaceChildren();
  const running = queue.running_item || {};
  if (running.item_uid) {
    body.append(el("tr", { class: "running", dataset: { uid: running.item_uid } },
      el("td", {}, "▶"), el("td", {}, running.name), el("td", {}, itemLabel(running)), el("td", {}, running.user), el("td", {}, "running")));
  }
  queue.items.forEach((item, index) => {
    const actions = el("td", { class: "row-actions" });
    if (mayChange(item)) {
      actions.append(
        el("button", { type: "button", title: "move up", onclick: () => move(item, index - 1) }, "↑"),
        el("button", { type: "button", title: "move down", onclick: () => move(item, index + 1) }, "↓"),
        el("button", { type: "button", class: "edit", onclick: () => editItem(item) }, "edit"),
        el("button", { type: "button", class: "remove", onclick: () => removeItem(item) }, "remove"));
    }
    if (auth.scopes.has("write:queue:edit")) {
      actions.append(el("button", { type: "button", class: "duplicate", onclick: () => duplicate(item) }, "duplicate"));
    }
    body.append(el("tr", { dataset: { uid: item.item_uid } },
      el("td", {}, index + 1), el("td", {}, item.name), el("td", { class: "label" }, itemLabel(item)),
      el("td", {}, item.user), actions));
  });
  $("queue-count").textContent = `${queue.items.length} waiting`;
}

async function queueReply(reply) {
  $("queue-msg").textContent = reply.ok && reply.data.success !== false ? ""
    : `refused: ${(reply.data && (reply.data.msg || reply.data.detail)) || reply.status}`;
  return reply;
}

async function move(item, to) {
  const items = state.queue.items;
  if (to < 0 || to >= items.length) return;
  const body = to < items.indexOf(item) ? { uid: item.item_uid, before_uid: items[to].item_uid }
    : { uid: item.item_uid, after_uid: items[to].item_uid };
  await queueReply(await apiJSON("POST", "/api/queue/item/move", body));
}

async function removeItem(item) {
  await queueReply(await apiJSON("POST", "/api/queue/item/remove", { uid: item.item_uid }));
}

async function duplicate(item) {
  const copy = { name: item.name, item_type: item.item_type, args: item.args || [], kwargs: item.kwargs || {} };
  await queueReply(await apiJSON("POST", "/api/queue/item/add", { item: copy, after_uid: item.item_uid }));
}

// ---- add and edit forms, generated from the plans' parameter descriptions -----------------------

async function loadPlans() {
  const reply = await apiJSON("GET", "/api/plans/allowed");
  state.plans = (reply.ok && reply.data.plans_allowed) || {};
  const select = $("plan-select");
  select.replaceChildren(...Object.keys(state.plans).sort((a, b) => (a === "saxs_exposure" ? -1 : b === "saxs_exposure" ? 1 : a.localeCompare(b)))
    .map((name) => el("option", { value: name }, name)));
  buildForm(select.value);
}

function parameterKind(p) {
  const type = (p.annotation && p.annotation.type) || "";
  const literal = type.match(/Literal\[([^\]]*)\]/);
  if (literal) return { kind: "enum", options: [...literal[1].matchAll(/'([^']*)'/g)].map((m) => m[1]) };
  if (/^(typing\.Optional\[)?bool/.test(type) || type.startsWith("bool")) return { kind: "bool" };
  if (/\bint\b/.test(type) && !/float/.test(type)) return { kind: "int" };
  if (/\bfloat\b/.test(type)) return { kind: "float" };
  if (/^(typing\.Optional\[)?str\b|^str/.test(type)) return { kind: "str" };
  return { kind: "json" };
}

function parseDefault(text) {
  if (text === undefined || text === null || text === "None") return undefined;
  if (/^'.*'$/.test(text)) return text.slice(1, -1);
  if (text === "True" || text === "False") return text === "True";
  return text;
}

function buildForm(planName, values = null) {
  lastChecked = { text: null, valid: false };
  const plan = state.plans[planName];
  const form = $("plan-form");
  form.replaceChildren();
  $("form-problems").textContent = "";
  if (!plan) return;
  $("plan-description").textContent = plan.description || "";
  for (const p of plan.parameters || []) {
    if (p.kind && (p.kind.name === "VAR_POSITIONAL" || p.kind.name === "VAR_KEYWORD")) continue;
    const { kind, options } = parameterKind(p);
    const required = !("default" in p);
    const fallback = parseDefault(p.default);
    const given = values ? values[p.name] : undefined;
    let input;
    if (kind === "enum") {
      input = el("select", { name: p.name });
      if (!required) input.append(el("option", { value: "" }, fallback === undefined ? "(none)" : `(default: ${fallback})`));
      options.forEach((o) => input.append(el("option", { value: o }, o)));
      if (given !== undefined) input.value = given;
    } else if (kind === "bool") {
      input = el("input", { name: p.name, type: "checkbox" });
      input.checked = given !== undefined ? Boolean(given) : Boolean(fallback);
    } else if (kind === "json") {
      input = el("textarea", { name: p.name, rows: "2", placeholder: fallback === undefined ? "JSON" : `default: ${fallback}` });
      if (given !== undefined) input.value = JSON.stringify(given);
    } else {
      input = el("input", { name: p.name, type: kind === "str" ? "text" : "number", step: kind === "int" ? "1" : "any",
        placeholder: fallback === undefined ? "" : `default: ${fallback}` });
      if (p.min !== undefined) input.setAttribute("min", p.min);
      if (p.max !== undefined) input.setAttribute("max", p.max);
      if (given !== undefined && given !== null) input.value = given;
    }
    input.dataset.kind = kind;
    input.id = `field-${p.name}`;
    input.addEventListener("input", scheduleDryRun);
    input.addEventListener("change", scheduleDryRun);
    form.append(el("div", { class: "field", dataset: { name: p.name } },
      el("label", { for: input.id }, p.name, required ? " *" : ""),
      input,
      el("small", { class: "help" }, p.description || ""),
      el("span", { class: "field-error", id: `error-${p.name}`, role: "alert" })));
  }
  scheduleDryRun();
}

function formItem() {
  const planName = $("plan-select").value;
  const kwargs = {};
  const bad = [];
  for (const input of $("plan-form").querySelectorAll("[name]")) {
    const kind = input.dataset.kind;
    if (kind === "bool") { kwargs[input.name] = input.checked; continue; }
    const text = input.value.trim();
    if (text === "") continue;
    if (kind === "int" || kind === "float") kwargs[input.name] = Number(text);
    else if (kind === "json") {
      try { kwargs[input.name] = JSON.parse(text); } catch { bad.push(`${input.name}: not valid JSON`); }
    } else kwargs[input.name] = text;
  }
  return { item: { name: planName, item_type: "plan", args: [], kwargs }, bad };
}

let dryRunTimer = null;
let dryRunSeq = 0;
let lastChecked = { text: null, valid: false };
function scheduleDryRun() {
  const { item } = formItem();
  if (JSON.stringify(item) === lastChecked.text) return;  // e.g. the "change" of a field being left
  $("add-button").disabled = true;
  $("save-button").disabled = true;
  clearTimeout(dryRunTimer);
  dryRunTimer = setTimeout(dryRun, 250);
}

// The queue gate's verdict on the form as it is now, shown next to each field; true if valid.
async function dryRun() {
  clearTimeout(dryRunTimer);
  const seq = ++dryRunSeq;
  const { item, bad } = formItem();
  const text = JSON.stringify(item);
  const reply = bad.length ? { ok: true, data: { success: false, problems: bad } }
    : await apiJSON("POST", "/api/sibyls/validate", item);
  if (seq !== dryRunSeq) return false;  // a newer dry run is on its way
  document.querySelectorAll(".field-error").forEach((node) => { node.textContent = ""; });
  document.querySelectorAll(".field").forEach((node) => node.classList.remove("invalid"));
  const general = [];
  const problems = reply.ok ? reply.data.problems : [`dry run failed (${reply.status})`];
  for (const problem of problems) {
    const name = problem.split(":")[0].replace(/^kwargs\./, "").split(/[.[]/)[0];
    const slot = $(`error-${name}`);
    if (slot) { slot.textContent += (slot.textContent ? "; " : "") + problem.slice(problem.indexOf(":") + 1).trim(); slot.parentElement.classList.add("invalid"); }
    else general.push(problem);
  }
  $("form-problems").textContent = general.join("\n");
  const valid = Boolean(reply.ok && reply.data.success);
  lastChecked = { text, valid };
  $("plan-form").dataset.valid = valid ? "yes" : "no";
  $("add-button").disabled = !valid;
  $("save-button").disabled = !valid;
  return valid;
}

// Nothing reaches the queue that the dry run has not passed as it is now.
async function checkedItem() {
  const { item } = formItem();
  if (JSON.stringify(item) === lastChecked.text ? lastChecked.valid : await dryRun()) return item;
  return null;
}

async function addItem() {
  const item = await checkedItem();
  if (!item) return;
  const reply = await apiJSON("POST", "/api/queue/item/add", { item });
  const ok = reply.ok && reply.data.success;
  $("add-msg").textContent = ok ? `queued ${itemLabel(item)}` : `refused: ${(reply.data && (reply.data.msg || reply.data.detail)) || reply.status}`;
  $("add-msg").dataset.ok = ok ? "yes" : "no";
}

function editItem(item) {
  state.editing = item;
  $("plan-select").value = item.name;
  buildForm(item.name, item.kwargs || {});
  $("add-title").textContent = `Edit queue item ${itemLabel(item)}`;
  $("add-button").hidden = true;
  $("save-button").hidden = false;
  $("cancel-edit").hidden = false;
}

function stopEditing() {
  state.editing = null;
  $("add-title").textContent = "Add to the queue";
  $("add-button").hidden = false;
  $("save-button").hidden = true;
  $("cancel-edit").hidden = true;
}

async function saveItem() {
  const item = await checkedItem();
  if (!item) return;
  item.item_uid = state.editing.item_uid;
  const reply = await apiJSON("POST", "/api/queue/item/update", { item });
  const ok = reply.ok && reply.data.success;
  $("add-msg").textContent = ok ? "saved" : `refused: ${(reply.data && (reply.data.msg || reply.data.detail)) || reply.status}`;
  if (ok) stopEditing();
}

// ---- plate sheets --------------------------------------------------------------------------------

const ROWS = "ABCDEFGH";
function drawPlate(report) {
  const map = $("plate-map");
  map.replaceChildren();
  const byWell = new Map((report ? report.wells : []).filter((w) => w.well).map((w) => [w.well.toUpperCase(), w]));
  map.append(el("span", { class: "axis" }, ""));
  for (let c = 1; c <= 12; c++) map.append(el("span", { class: "axis" }, c));
  for (const r of ROWS) {
    map.append(el("span", { class: "axis" }, r));
    for (let c = 1; c <= 12; c++) {
      const name = `${r}${c}`;
      const well = byWell.get(name);
      const classes = ["well"];
      let title = `${name}: empty`;
      if (well) {
        classes.push(`role-${well.role}`);
        if (well.problems.length) classes.push("bad");
        title = `${name} ${well.sample_code ?? ""} (${well.role})` + (well.problems.length ? `\n${well.problems.join("\n")}` : "");
      }
      map.append(el("span", { class: classes.join(" "), title, dataset: { well: name } }, well && well.problems.length ? "!" : ""));
    }
  }
}

async function checkSheet() {
  const file = $("sheet-file").files[0];
  state.sheetFile = file || null;
  $("sheet-submit").disabled = true;
  $("sheet-msg").textContent = "";
  const list = $("sheet-problems");
  list.replaceChildren();
  if (!file) { drawPlate(null); return; }
  const form = new FormData();
  form.append("spreadsheet", file, file.name);
  const reply = await apiJSON("POST", "/api/sibyls/validate/sheet", form);
  if (!reply.ok) { list.append(el("li", {}, `check failed (${reply.status})`)); return; }
  const report = reply.data;
  drawPlate(report);
  for (const problem of report.problems) list.append(el("li", {}, problem));
  for (const well of report.wells) {
    for (const problem of well.problems) {
      list.append(el("li", { dataset: { well: well.well || "" } }, `${well.well || `row ${well.row}`}: ${problem}`));
    }
  }
  $("plate-section").dataset.valid = report.success ? "yes" : "no";
  $("sheet-submit").disabled = !report.success;
  $("sheet-msg").textContent = report.success ? `${report.wells.length} wells of plate ${report.plate_id} are valid` : "fix the sheet: nothing was queued";
}

async function submitSheet() {
  if (!state.sheetFile) return;
  const form = new FormData();
  form.append("spreadsheet", state.sheetFile, state.sheetFile.name);
  form.append("data_type", "sibyls_ht_plate");
  const reply = await apiJSON("POST", "/api/queue/upload/spreadsheet", form);
  const ok = reply.ok && reply.data.success;
  $("sheet-msg").textContent = ok ? "plate queued" : `refused, nothing queued: ${(reply.data && (reply.data.msg || reply.data.detail)) || reply.status}`;
  $("sheet-msg").dataset.ok = ok ? "yes" : "no";
  if (ok) $("sheet-submit").disabled = true;
}

// ---- history and results -------------------------------------------------------------------------

function showHistory(history) {
  state.history = history.items;
  const body = $("history-table").querySelector("tbody");
  body.replaceChildren();
  for (const item of [...history.items].reverse()) {
    const result = item.result || {};
    const runs = el("td", { class: "runs" });
    (result.run_uids || []).forEach((uid, i) => {
      runs.append(el("button", { type: "button", class: "run-link", dataset: { uid }, onclick: () => openRun(uid) }, `run ${i + 1}`), " ");
    });
    body.append(el("tr", { dataset: { uid: item.item_uid } },
      el("td", {}, item.name), el("td", {}, itemLabel(item)), el("td", {}, item.user),
      el("td", { class: `exit-${result.exit_status}`, title: result.msg || "" }, result.exit_status || "?"), runs));
  }
  filterHistoryByProject();
}

async function download(path, name) {
  const response = await api("GET", path);
  if (!response.ok) { $("run-files").append(el("p", { class: "error" }, `${name}: ${response.status}`)); return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function openRun(uid) {
  const view = $("run-view");
  view.hidden = false;
  $("run-title").textContent = uid.slice(0, 8);
  $("run-results").replaceChildren();
  $("run-files").replaceChildren();
  $("run-record").textContent = "loading…";
  const reply = await apiJSON("GET", `/api/sibyls/runs/${encodeURIComponent(uid)}`);
  if (!reply.ok) { $("run-record").textContent = (reply.data && reply.data.detail) || `no record (${reply.status})`; return; }
  const run = reply.data;
  $("run-title").textContent = `${uid.slice(0, 8)} — ${run.record_name}`;
  $("run-record").textContent = run.record_text;
  const files = $("run-files");
  const fileUrl = (f) => `/api/sibyls/files?path=${encodeURIComponent(f.path)}`;
  files.append(el("h4", {}, "Files"));
  const list = el("ul");
  list.append(el("li", {}, el("button", { type: "button", class: "file-link", onclick: () => download(fileUrl({ path: run.record_path }), run.record_name) }, `record ${run.record_name}`)));
  for (const f of run.files) {
    list.append(el("li", {}, el("button", { type: "button", class: "file-link", dataset: { kind: f.kind }, onclick: () => download(fileUrl(f), f.name) }, `${f.kind}: ${f.name}`)));
  }
  for (const fmt of run.exports) {
    list.append(el("li", {}, el("button", { type: "button", class: "export-link", onclick: () => download(`/api/sibyls/runs/${uid}/export/${fmt}`, `${run.record_name.replace(/\.yaml$/, "")}.${fmt}`) }, `export ${fmt}`)));
  }
  files.append(list);
  const results = $("run-results");
  if (!run.results) { results.append(el("p", { class: "sub" }, "No first-look results in this record (yet).")); return; }
  results.append(el("h4", {}, "First-look results"));
  for (const metrics of run.results.quality_metrics) {
    const table = el("table", { class: "metrics", dataset: { testid: "quality-metrics" } });
    const rows = Array.isArray(metrics) ? metrics : Object.entries(metrics).map(([k, v]) => ({ [k]: v }));
    for (const row of rows) {
      for (const [key, value] of Object.entries(row)) {
        const unit = value && typeof value === "object" ? (value.unit ?? value.has_unit ?? "") : "";
        const number = value && typeof value === "object" ? (value.numeric_value ?? value.has_numeric_value ?? value.value) : value;
        const shown = number === undefined ? JSON.stringify(value) : `${number}${unit ? ` ${unit}` : ""}`;
        table.append(el("tr", {}, el("th", {}, key), el("td", {}, shown)));
      }
    }
    results.append(table);
  }
  for (const image of run.results.images) {
    const response = await api("GET", fileUrl(image));
    if (response.ok) results.append(el("figure", {}, el("img", { src: URL.createObjectURL(await response.blob()), alt: image.name }), el("figcaption", {}, image.name)));
  }
}

// ---- my projects and personal API keys -----------------------------------------------------------
// The server shows a person only their projects' runs and history (staff: all); with several
// projects the picker narrows the runs list and the history table to one.

const projects = { mine: {}, staff: false, picked: "" };

async function loadProjects() {
  const reply = await apiJSON("GET", "/api/sibyls/projects");
  if (!reply.ok) return;
  Object.assign(projects, { mine: reply.data.projects, staff: reply.data.staff });
  $("projects-who").textContent = reply.data.staff ? "(staff: every project)" : `(${Object.keys(projects.mine).length})`;
  const picker = $("project-picker");
  picker.replaceChildren(el("option", { value: "" }, "all my projects"),
    ...Object.entries(projects.mine).map(([code, title]) => el("option", { value: code }, title ? `${code} — ${title}` : code)));
  $("project-picker-label").hidden = Object.keys(projects.mine).length < 2;
  await showProjectRuns();
  await loadApiKeys();
}

async function showProjectRuns() {
  projects.picked = $("project-picker").value;
  const query = projects.picked ? `?project=${encodeURIComponent(projects.picked)}` : "";
  const reply = await apiJSON("GET", `/api/sibyls/runs${query}`);
  const list = $("project-runs");
  list.replaceChildren();
  for (const run of (reply.ok ? reply.data : []).slice(0, 50)) {
    list.append(el("li", { dataset: { project: run.project_code } }, `${run.project_code} · ${run.record_name}`));
  }
  if (!list.children.length) list.append(el("li", { class: "sub" }, "No runs with a record yet."));
  filterHistoryByProject();
}

function filterHistoryByProject() {
  const byUid = Object.fromEntries(state.history.map((item) => [item.item_uid, item]));
  $("history-table").querySelectorAll("tbody tr").forEach((row) => {
    const item = byUid[row.dataset.uid] || {};
    const code = (item.kwargs || {}).project_code ?? (item.args || [])[1];
    row.hidden = Boolean(projects.picked) && code !== projects.picked;
  });
}

async function loadApiKeys() {
  const who = await apiJSON("GET", "/api/auth/whoami");
  const body = $("apikey-table").querySelector("tbody");
  body.replaceChildren();
  for (const key of (who.ok && who.data.api_keys) || []) {
    const revoke = el("button", { type: "button", class: "danger", onclick: () => revokeApiKey(key.first_eight) }, "Revoke");
    body.append(el("tr", { dataset: { key: key.first_eight } }, el("td", {}, `${key.first_eight}…`), el("td", {}, key.note || ""),
      el("td", {}, key.expiration_time ? new Date(key.expiration_time).toLocaleString() : "never"), el("td", {}, revoke)));
  }
}

async function createApiKey() {
  const days = Number($("apikey-days").value);
  const reply = await apiJSON("POST", "/api/auth/apikey", { expires_in: days * 86400, scopes: ["inherit"], note: $("apikey-note").value || null });
  const shown = $("apikey-secret");
  shown.hidden = false;
  shown.textContent = reply.ok ? `New key (shown once, copy it now): ${reply.data.secret}` : `Could not create a key (${reply.status}).`;
  await loadApiKeys();
}

async function revokeApiKey(firstEight) {
  await api("DELETE", `/api/auth/apikey?first_eight=${encodeURIComponent(firstEight)}`);
  $("apikey-secret").hidden = true;
  await loadApiKeys();
}

// ---- wiring --------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout-button").addEventListener("click", () => logout());
  $("plan-select").addEventListener("change", (e) => { stopEditing(); buildForm(e.target.value); });
  $("add-button").addEventListener("click", addItem);
  $("save-button").addEventListener("click", saveItem);
  $("cancel-edit").addEventListener("click", () => { stopEditing(); buildForm($("plan-select").value); });
  $("sheet-file").addEventListener("change", checkSheet);
  $("sheet-submit").addEventListener("click", submitSheet);
  $("run-close").addEventListener("click", () => { $("run-view").hidden = true; });
  $("queue-start").addEventListener("click", () => control("/api/queue/start"));
  $("queue-stop").addEventListener("click", () => control("/api/queue/stop"));
  $("re-pause").addEventListener("click", () => control("/api/re/pause", { option: "immediate" }));
  $("re-resume").addEventListener("click", () => control("/api/re/resume"));
  $("re-stop").addEventListener("click", () => control("/api/re/stop"));
  $("re-abort").addEventListener("click", () => control("/api/re/abort"));
  $("project-picker").addEventListener("change", showProjectRuns);
  $("apikey-create").addEventListener("click", createApiKey);
  drawPlate(null);
  const saved = sessionStorage.getItem("sibyls.tokens");
  if (saved) { saveTokens(JSON.parse(saved)); start(); }
});
