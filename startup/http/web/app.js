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

// An item by its sample or plate, also when queued with positional arguments (qserver, the API).
function itemLabel(item) {
  const kw = { ...(item.kwargs || {}) };
  const names = (((state.plans || {})[item.name] || {}).parameters || []).map((p) => p.name);
  (item.args || []).forEach((value, i) => { if (names[i] && !(names[i] in kw)) kw[names[i]] = value; });
  if (kw.sample_code) return kw.sample_code;
  if (kw.plate && kw.plate.plate_id) return `plate ${kw.plate.plate_id} (${(kw.plate.wells || []).length} wells)`;
  return (item.args || []).map((arg) => (arg && typeof arg === "object" ? JSON.stringify(arg) : arg)).join(", ");
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
  clearPersonalView();
  $("app").hidden = true;
  $("whoami").hidden = true;
  $("login-form").hidden = false;
  $("login-error").textContent = message;
}

// Nothing of the previous person stays on screen or in memory after a logout.
function clearPersonalView() {
  closeRun();
  Object.assign(state, { status: {}, queue: { items: [], running_item: {} }, history: [], plans: {}, editing: null,
    sheetFile: null });
  for (const id of ["queue-table", "history-table"]) $(id).querySelector("tbody").replaceChildren();
  for (const id of ["plan-form", "plan-select", "sheet-problems", "form-problems"]) $(id).replaceChildren();
  for (const id of ["console", "queue-count", "queue-msg", "add-msg", "sheet-msg", "control-msg", "plan-description",
    "who-name", "who-roles"]) $(id).textContent = "";
  $("sheet-file").value = "";
  $("sheet-submit").disabled = true;
  drawPlate(null);
  stopEditing();
  showStatus({});
  showProgress({ state: "idle" });
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
  const wasPaused = isPaused();
  state.status = status;
  $("st-manager").textContent = status.manager_state ?? "?";
  $("st-worker").textContent = status.worker_environment_exists ? status.worker_environment_state : "closed";
  $("st-re").textContent = status.re_state ?? "–";
  document.body.dataset.manager = status.manager_state ?? "";
  document.body.dataset.re = status.re_state ?? "";
  $("st-paused").hidden = !isPaused();
  updateControls();
  if (wasPaused !== isPaused()) showQueue(state.queue);  // the running row says "paused"
}

const isPaused = () => state.status.re_state === "paused" || state.status.manager_state === "paused";

// Each control is enabled only when it can act on the queue's state as it is now.
function updateControls() {
  const st = state.status;
  const idle = st.manager_state === "idle";
  const running = st.re_state === "running" || st.manager_state === "executing_queue";
  const can = {
    "queue-start": idle && (st.items_in_queue ?? 0) > 0,
    "queue-stop": st.manager_state === "executing_queue" && !st.queue_stop_pending,
    "re-pause": st.re_state === "running" && !st.pause_pending,
    "re-resume": isPaused(),
    "re-stop": isPaused(),
    "re-abort": isPaused(),
  };
  for (const [id, enabled] of Object.entries(can)) $(id).disabled = !enabled;
  $("controls").dataset.state = isPaused() ? "paused" : running ? "running" : idle ? "idle" : (st.manager_state ?? "");
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
  $("pg-item").textContent = running ? `${p.plan_name} ${p.sample_code ?? ""}${p.between_runs ? " (next run starting)" : ""}`
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
  const tail = message.tail && message.text && !message.text.endsWith("\n") ? "\n" : "";  // the tail ends mid-line
  pre.textContent = (message.tail ? "" : pre.textContent) + message.text + tail;
  const lines = pre.textContent.split("\n");
  if (lines.length > 500) pre.textContent = lines.slice(-500).join("\n");
  pre.scrollTop = pre.scrollHeight;
}

// ---- dialogs -------------------------------------------------------------------------------------

let confirmResolve = null;
// The page's own confirmation (a modal dialog: Esc or "Cancel" says no); resolves true on "yes".
function confirmDialog(text, yesLabel) {
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yesLabel;
  $("confirm-dialog").returnValue = "";
  return new Promise((resolve) => { confirmResolve = resolve; $("confirm-dialog").showModal(); $("confirm-no").focus(); });
}

// ---- controls ------------------------------------------------------------------------------------

async function control(path, body) {
  if (path === "/api/re/abort" && !(await confirmDialog("Abort the running plan? The run is ended as aborted and "
    + "the item is not measured again unless you re-queue it.", "Abort the plan"))) return;
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
      el("td", {}, "▶"), el("td", {}, running.name), el("td", {}, itemLabel(running)), el("td", {}, running.user), el("td", { class: "run-state" }, isPaused() ? "paused" : "running")));
    if (isPaused()) body.lastChild.classList.add("paused");
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
  if (!running.item_uid && !queue.items.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "sub" }, "The queue is empty.")));
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
  if (state.history.length) showHistory({ items: state.history });  // its re-queue buttons need the plans
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

// Field labels in words, with the unit the rule's help text names ("Concentration (mg/mL)").
const LABEL_WORDS = {
  num: "Number of points", num1: "Points (slow axis)", num2: "Points (fast axis)", num_frames: "Number of frames",
  num_x: "Points along x", num_y: "Points along y", nscans: "Number of scans", motor1: "Slow axis", motor2: "Fast axis",
  motor: "Axis", start1: "Start (slow axis)", stop1: "Stop (slow axis)", start2: "Start (fast axis)",
  stop2: "Stop (fast axis)", proposal_id: "Proposal ID", buffer_run_uid: "Buffer run (uid)", snake: "Snake (back and forth)",
  buffer_threshold_mau: "Buffer threshold", concentration_mg_ml: "Concentration", molecular_weight_kda: "Molecular weight",
  dry_between_wells: "Dry between wells", half_width: "Half width", half_width_x: "Half width along x",
  half_width_y: "Half width along y", temperatures: "Temperatures",
};
const UNIT_FROM_NAME = { _mg_ml: "mg/mL", _kda: "kDa", _mau: "mAU" };

function fieldUnit(p) {
  const range = (p.description || "").match(/\(([^()]*)\)\s*$/);  // "(0.001–60 s)", "(each 4–60 °C)"
  const unit = range && range[1].match(/[0-9.]\s+([^\s0-9][^()]*)$/);
  if (unit) return unit[1].trim();
  const suffix = Object.keys(UNIT_FROM_NAME).find((s) => p.name.endsWith(s));
  return suffix ? UNIT_FROM_NAME[suffix] : "";
}

function fieldLabel(p) {
  const words = LABEL_WORDS[p.name] || p.name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
  const unit = fieldUnit(p);
  return unit ? `${words} (${unit})` : words;
}

// Help text as plain words: no reStructuredText markup.
const plainText = (text) => (text || "").replace(/``([^`]*)``/g, "$1").replace(/:\w+:`([^`]*)`/g, "$1").replace(/`([^`]*)`/g, "$1");

// Problems show on fields the person has touched, and on all of them once they tried to add.
const touched = new Set();
let submitted = false;

function buildForm(planName, values = null) {
  lastChecked = { text: null, valid: false, problems: [] };
  touched.clear();
  submitted = false;
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
    const touch = () => { touched.add(p.name); scheduleDryRun(); };
    input.addEventListener("input", touch);
    input.addEventListener("change", touch);
    input.addEventListener("blur", touch);  // visited and left empty: now its "missing" shows
    input.setAttribute("aria-describedby", `help-${p.name} error-${p.name}`);
    if (required) input.setAttribute("aria-required", "true");
    if (values && given !== undefined) touched.add(p.name);
    form.append(el("div", { class: "field", dataset: { name: p.name } },
      el("label", { for: input.id }, fieldLabel(p), required ? el("span", { class: "req", title: "required" }, " *") : ""),
      input,
      el("small", { class: "help", id: `help-${p.name}` }, plainText(p.description)),
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
  if (JSON.stringify(item) === lastChecked.text) { showProblems(lastChecked.problems || []); return; }
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
  const problems = reply.ok ? reply.data.problems : [`dry run failed (${reply.status})`];
  const valid = Boolean(reply.ok && reply.data.success);
  lastChecked = { text, valid, problems };
  $("plan-form").dataset.valid = valid ? "yes" : "no";
  showProblems(problems);
  return valid;
}

// Each problem next to its field (only where touched, or all after an attempt to add).
function showProblems(problems) {
  document.querySelectorAll("#plan-form .field-error").forEach((node) => { node.textContent = ""; });
  document.querySelectorAll("#plan-form .field").forEach((node) => node.classList.remove("invalid"));
  const general = [];
  let shown = 0;
  for (const problem of problems) {
    const name = problem.split(":")[0].replace(/^kwargs\./, "").split(/[.[]/)[0];
    const slot = $(`error-${name}`);
    if (!slot) { general.push(problem); shown++; continue; }
    if (!submitted && !touched.has(name)) continue;
    slot.textContent += (slot.textContent ? "; " : "") + problem.slice(problem.indexOf(":") + 1).trim();
    slot.parentElement.classList.add("invalid");
    $(`field-${name}`).setAttribute("aria-invalid", "true");
    shown++;
  }
  document.querySelectorAll("#plan-form .field:not(.invalid) [aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
  $("form-problems").textContent = general.join("\n");
  // Adding is possible while the only problems are ones not shown yet (a click shows them all).
  $("add-button").disabled = shown > 0;
  $("save-button").disabled = shown > 0;
}

// Nothing reaches the queue that the dry run has not passed as it is now.
async function checkedItem() {
  const { item } = formItem();
  if (JSON.stringify(item) === lastChecked.text ? lastChecked.valid : await dryRun()) return item;
  submitted = true;  // from now on every problem shows, and the first field with one gets the focus
  showProblems(lastChecked.problems || []);
  const first = document.querySelector("#plan-form .field.invalid [name]");
  if (first) first.focus();
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
    const status = el("td", { class: `exit-${result.exit_status}` }, result.exit_status || "?");
    if (result.exit_status && result.exit_status !== "completed" && result.msg) {
      status.append(el("div", { class: "exit-msg" }, result.msg.split("\n").filter(Boolean).slice(-1)[0] || ""));
      status.title = result.msg;
    }
    const actions = el("td", { class: "row-actions" });
    if (auth.scopes.has("write:queue:edit") && item.item_type === "plan" && state.plans[item.name]) {
      actions.append(el("button", { type: "button", class: "requeue", onclick: () => requeue(item) }, "re-queue"));
    }
    body.append(el("tr", { class: result.exit_status && result.exit_status !== "completed" ? "not-completed" : "",
      dataset: { uid: item.item_uid } },
    el("td", {}, item.name), el("td", {}, itemLabel(item)), el("td", {}, item.user), status, runs, actions));
  }
  filterHistoryByProject();
}

// A past item back in the form, checked by the queue's dry run; "Add to queue" then queues it again.
async function requeue(item) {
  stopEditing();
  $("plan-select").value = item.name;
  buildForm(item.name, item.kwargs || {});
  $("add-title").textContent = `Re-queue ${itemLabel(item)}`;
  $("add-section").scrollIntoView({ block: "start" });
  const valid = await dryRun();
  $("add-msg").textContent = valid ? "checked: press “Add to queue” to queue it again" : "fix the problems shown to queue it again";
  $("add-msg").dataset.ok = valid ? "yes" : "no";
  $("add-button").focus();
}

function fileNameOf(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = header.match(/filename\*=UTF-8''([^;]+)/i) || header.match(/filename="?([^";]+)"?/i);
  return match ? decodeURIComponent(match[1]) : fallback;
}

// A file fetched with the login's token and saved under the name the server gives; a refusal shows its reason.
async function download(path, fallbackName) {
  const message = $("run-msg");
  message.textContent = "";
  const response = await api("GET", path);
  if (!response.ok) {
    let reason = `${response.status}`;
    try { reason = (await response.json()).detail || reason; } catch { /* not JSON */ }
    message.textContent = `${fallbackName}: ${reason}`;
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: fileNameOf(response, fallbackName) });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

const fileUrl = (f) => `/api/sibyls/files?path=${encodeURIComponent(f.path)}`;

function closeRun() {
  state.openRun = null;
  $("run-view").hidden = true;
  delete $("run-view").dataset.uid;
  for (const id of ["run-status", "run-results", "run-files"]) $(id).replaceChildren();
  $("run-record").textContent = "";
  $("run-title").textContent = "";
  $("run-msg").textContent = "";
}

async function openRun(uid) {
  closeRun();
  state.openRun = uid;
  const view = $("run-view");
  view.hidden = false;
  $("run-title").textContent = uid.slice(0, 8);
  $("run-status").append(el("p", { class: "sub" }, "loading…"));
  const reply = await apiJSON("GET", `/api/sibyls/runs/${encodeURIComponent(uid)}`);
  if (state.openRun !== uid) return;  // another run was opened, or the person logged out
  $("run-status").replaceChildren();
  if (!reply.ok) {
    $("run-status").append(el("p", { class: "sub" }, (reply.data && reply.data.detail) || `no record (${reply.status})`));
    return;
  }
  const run = reply.data;
  $("run-title").textContent = `${uid.slice(0, 8)} — ${run.record_name}`;
  $("run-record").textContent = run.record_text;
  showRunStatus(run);
  showRunFiles(uid, run);
  await showRunResults(run, uid);
  view.dataset.uid = uid;
}

// ---- one run's results: status, numbers, plots -----------------------------------------------------

const UNIT_WORDS = { angstroms: "Å", angstrom: "Å", arbitrary: "arbitrary units", "cm^-1": "cm⁻¹", "1/cm": "cm⁻¹",
  "cm-1": "cm⁻¹", kilodaltons: "kDa", kda: "kDa", "signal to noise ratio": "" };
const unitWords = (unit) => (unit ? (UNIT_WORDS[String(unit).toLowerCase()] ?? String(unit)) : "");
const AS_ANGSTROM = / Å$/;

function numberOf(value) {
  if (value && typeof value === "object") return { value: value.numeric_value ?? value.has_numeric_value ?? value.value, unit: unitWords(value.unit ?? value.has_unit) };
  return { value, unit: "" };
}

function fmtNumber(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3) ? value.toExponential(3) : String(Number(value.toPrecision(4)));
}

// "20.10 ± 0.11": σ to two significant digits, the value to the same decimal place.
function fmtWithSigma(value, sigma) {
  if (!(sigma > 0) || !Number.isFinite(value)) return `${fmtNumber(value)} ± ${fmtNumber(sigma)}`;
  const decimals = Math.max(0, 1 - Math.floor(Math.log10(sigma)));
  if (decimals > 6 || Math.abs(value) >= 1e5) return `${fmtNumber(value)} ± ${fmtNumber(sigma)}`;
  return `${value.toFixed(decimals)} ± ${sigma.toFixed(decimals)}`;
}

// Every number of the record's results, by key: value, its unit in words, and whether a row shows it yet.
function resultNumbers(run) {
  const numbers = new Map();
  for (const [key, value] of Object.entries(run.quality_metrics || {})) numbers.set(key, numberOf(value));
  for (const [key, value] of Object.entries(run.saxs_results || {})) {
    if (typeof value === "number") numbers.set(key, { value, unit: key.endsWith("_kda") ? "kDa" : /(_a|_angstrom)$/.test(key) ? "Å" : "" });
  }
  return numbers;
}

function take(numbers, ...keys) {
  for (const key of keys) {
    const found = numbers.get(key);
    if (found && typeof found.value === "number") { numbers.delete(key); return found; }
  }
  return null;
}

// The MW methods of the record (molecular_weight_<method>_kda, molecular_weight_methods) in words.
const MW_METHOD_WORDS = { vc: "volume of correlation, Vc", i0: "I(0) / concentration", porod: "Porod volume", bayes: "Bayesian" };

function metricRows(run, flagWords = {}) {
  const numbers = resultNumbers(run);
  const rows = [];
  const row = (label, text, key) => rows.push([label, text, key]);
  const withSigma = (found, sigma) => `${sigma ? fmtWithSigma(found.value, sigma.value) : fmtNumber(found.value)}${found.unit ? ` ${found.unit}` : ""}`;
  const rg = take(numbers, "rg", "rg_guinier", "rg_guinier_a");
  if (rg) { rg.unit = rg.unit || "Å"; row("Rg (Guinier)", withSigma(rg, take(numbers, "rg_sigma_a", "rg_guinier_sigma_a", "rg_sigma")), "rg"); }
  const rgPr = take(numbers, "pr_rg_a", "rg_pr", "rg_pr_a", "rg_p_r");
  if (rgPr) { rgPr.unit = rgPr.unit || "Å"; row("Rg (P(r), BIFT)", withSigma(rgPr, take(numbers, "pr_rg_sigma_a", "rg_pr_sigma_a", "rg_pr_sigma")), "rg_pr"); }
  const autorg = take(numbers, "rg_autorg_a");
  if (autorg) row("Rg (autoRg straight-line fit)", `${fmtNumber(autorg.value)} Å`, "rg_autorg");
  const dmax = take(numbers, "dmax", "dmax_a", "d_max");
  if (dmax) { dmax.unit = dmax.unit || "Å"; row("Dmax", withSigma(dmax, take(numbers, "dmax_sigma_a", "dmax_sigma")), "dmax"); }
  const i0 = take(numbers, "i_zero", "i0", "i_zero_guinier");
  if (i0) row("I(0) (Guinier)", withSigma(i0, take(numbers, "i_zero_sigma", "i0_sigma")), "i_zero");
  const i0Pr = take(numbers, "pr_i_zero");
  if (i0Pr) { i0Pr.unit = i0Pr.unit || (i0 ? i0.unit : ""); row("I(0) (P(r))", withSigma(i0Pr, take(numbers, "pr_i_zero_sigma")), "pr_i_zero"); }
  const chi2Pr = take(numbers, "pr_chi2_reduced");
  if (chi2Pr) row("P(r) fit χ² (reduced)", `${fmtNumber(chi2Pr.value)} (1 is ideal)`, "pr_chi2_reduced");
  const rgCorrected = take(numbers, "rg_curvature_corrected_a");
  if (rgCorrected) row("Rg (Guinier with q⁴ term)", withSigma(rgCorrected, take(numbers, "rg_curvature_corrected_sigma_a")), "rg_curvature_corrected");
  const consensus = take(numbers, "molecular_weight_kda");
  if (consensus) {
    const sigma = take(numbers, "molecular_weight_sigma_kda"), spread = take(numbers, "molecular_weight_spread_kda");
    const methods = (run.saxs_results || {}).molecular_weight_methods;
    const named = String(methods || "").split(/,\s*/).filter(Boolean).map((m) => MW_METHOD_WORDS[m] || m.replace(/_/g, " "));
    const how = [named.length ? `from ${named.join(", ")}` : "", spread ? `methods spread ${fmtNumber(spread.value)} kDa` : ""].filter(Boolean).join("; ");
    row("MW (consensus)", `${withSigma(consensus, sigma)}${how ? ` (${how})` : ""}`, "molecular_weight");
  }
  const porodVolume = take(numbers, "porod_volume_a3");
  if (porodVolume) row("Porod volume", `${Math.round(porodVolume.value).toLocaleString("en-US")} Å³`, "porod_volume");
  for (const key of [...numbers.keys()].filter((k) => /^(mw_|molecular_weight_|mals_molar_mass)/.test(k))) {
    const found = take(numbers, key);
    const method = key.replace(/^(mw_|molecular_weight_)/, "").replace(/_kda$/, "");
    const label = method === "mals_molar_mass" ? "Molar mass (MALS)" : `MW (${MW_METHOD_WORDS[method] || method.replace(/_/g, " ")})`;
    row(label, `${fmtNumber(found.value)} ${found.unit || "kDa"}`, key);
  }
  const qMin = take(numbers, "guinier_q_min"), qMax = take(numbers, "guinier_q_max");
  const qrgMin = take(numbers, "guinier_qrg_min"), qrgMax = take(numbers, "guinier_qrg_max");
  const points = take(numbers, "guinier_points");
  if (qMin && qMax) row("Guinier range (q)", `${fmtNumber(qMin.value)} – ${fmtNumber(qMax.value)} Å⁻¹${points ? `, ${points.value} points` : ""}`, "guinier_q");
  if (qrgMax) {
    const lowValue = qrgMin ? qrgMin.value : qMin && rg ? qMin.value * rg.value : null;
    row("Guinier range (q·Rg)", `${lowValue !== null ? `${fmtNumber(lowValue)} – ` : "up to "}${fmtNumber(qrgMax.value)}`, "guinier_qrg");
  }
  const quality = take(numbers, "guinier_quality");
  if (quality) row("Guinier fit quality", `${fmtNumber(quality.value)} (1 is best)`, "guinier_quality");
  const snr = take(numbers, "signal_to_noise");
  if (snr) row("Signal to noise (I/σ)", fmtNumber(snr.value), "signal_to_noise");
  const kept = take(numbers, "frames_kept"), total = take(numbers, "frames_total");
  if (kept || total) row("Frames averaged", kept && total ? `${kept.value} of ${total.value}` : fmtNumber((kept || total).value), "frames");
  const flags = (run.saxs_results || {}).flags;
  if (Array.isArray(flags)) row("Flags", flags.length ? flags.map((f) => flagWords[f] ?? f).join("; ") : "none", "flags");
  for (const [key, found] of numbers) {  // any other number the record holds, named in words
    row(key.replace(/_a$/, "").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()), `${fmtNumber(found.value)}${found.unit ? ` ${found.unit}` : ""}`, key);
  }
  return rows;
}

const STILL_PROCESSING = new Set(["processing", "collected", "pending", "queued", "running", "in_progress"]);

// Why the first look failed: its workflow entry's description, else a reason the run entry carries.
function failureReason(details) {
  const run = details.experiment_run || {};
  if (details.first_look_note) return details.first_look_note.replace(/^first look failed:\s*/i, "");
  for (const key of ["processing_reason", "processing_error", "processing_message", "failure_reason"]) {
    if (run[key]) return String(run[key]);
  }
  return "no reason was recorded";
}

// Why the results look as they do: failed, still processing, a buffer, no buffer subtracted.
function showRunStatus(details) {
  const run = details.experiment_run || {};
  const box = $("run-status");
  const say = (text, kind = "note") => box.append(el("p", { class: `run-note ${kind}`, dataset: { note: kind } }, text));
  const status = run.processing_status;
  const flags = (run.saxs_results || {}).flags || [];
  if (run.exit_status && run.exit_status !== "success") say(`The run ended ${run.exit_status}${run.exit_reason ? `: ${run.exit_reason}` : ""}.`, "failed");
  if (status === "failed") say(`First look failed (processing_status: failed): ${failureReason(details)}`, "failed");
  else if (status === "raw") say(`No first look for this run${details.first_look_note ? `: ${details.first_look_note}` : "."}`, "none");
  else if (STILL_PROCESSING.has(status) && !details.results) say(`First look still processing (processing_status: ${status}); open the run again in a moment.`, "processing");
  else if (status === "processing") say("First look still processing: the plots are being drawn.", "processing");
  if (run.sample_role === "buffer_blank") {
    say("A buffer: its frames are averaged and subtracted from the samples measured against it, so it has only its own I(q) (no Guinier fit, Kratky plot or MW).", "buffer");
  } else if (run.sample_role && details.plan_type !== "sec_saxs"  // SEC subtracts its own buffer frames
             && (flags.includes("no-buffer") || (!run.buffer_run_uid && details.results))) {
    say("Measured without a buffer (no buffer_run_uid given): nothing was subtracted, so the curve is the sample's raw I(q) and any numbers below come from it unsubtracted — queue it again with its buffer's run uid for a real first look.", "no-buffer");
  }
  if (status === "completed" && details.first_look_note) say(`Notes of the first look: ${details.first_look_note}`, "notes");
  if (!details.results && !box.childElementCount) say(`No first-look results in this record${status ? ` (processing_status: ${status})` : ""}.`, "none");
}

function plotTitle(name) {
  const kind = (name.match(/_([A-Za-z]+)_plot\.png$/) || [])[1];
  const named = { Iq: "I(q)", Pr: "P(r)" };
  return kind ? `${named[kind] || kind} plot` : name;
}

async function showRunResults(details, uid) {
  const results = $("run-results");
  const rows = metricRows(details.experiment_run || {}, details.flag_words || {});
  if (!rows.length && details.results) {  // an older record: its quality_metrics as they are
    for (const metrics of details.results.quality_metrics) rows.push(...metricRows({ quality_metrics: metrics }));
  }
  if (rows.length) {
    const table = el("table", { class: "metrics", dataset: { testid: "quality-metrics" } },
      el("caption", {}, "First-look results"));
    for (const [label, text, key] of rows) table.append(el("tr", { dataset: { key } }, el("th", { scope: "row" }, label), el("td", {}, text)));
    results.append(table);
  }
  const plots = el("div", { class: "plots" });
  results.append(plots);
  for (const image of (details.results && details.results.images) || []) {
    const response = await api("GET", fileUrl(image));
    if (state.openRun !== uid) return;
    if (!response.ok) continue;
    const src = URL.createObjectURL(await response.blob());
    const title = plotTitle(image.name);
    plots.append(el("figure", {},
      el("button", { type: "button", class: "plot", "aria-label": `Enlarge the ${title}`, onclick: () => enlarge(src, title) },
        el("img", { src, alt: title })),
      el("figcaption", {}, title)));
  }
}

function enlarge(src, title) {
  $("plot-large").src = src;
  $("plot-large").alt = title;
  $("plot-dialog-title").textContent = title;
  $("plot-dialog").showModal();
}

function showRunFiles(uid, run) {
  const files = $("run-files");
  const stem = run.record_name.replace(/\.yaml$/, "");
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", class: "download-all", onclick: () => download(`/api/sibyls/runs/${encodeURIComponent(uid)}/files.zip`, `${stem}.zip`) },
      "Download all (zip)"),
    el("button", { type: "button", class: "file-link", dataset: { kind: "record" }, onclick: () => download(fileUrl({ path: run.record_path }), run.record_name) }, "Record (YAML)"));
  const formats = { nxcansas: "Export NXcanSAS (.h5)", csv: "Export CSV (zip, one per stream)" };
  for (const fmt of run.exports) {
    actions.append(el("button", { type: "button", class: "export-link", dataset: { format: fmt },
      onclick: () => download(`/api/sibyls/runs/${encodeURIComponent(uid)}/export/${fmt}`, `${stem} ${fmt} export`) }, formats[fmt] || `Export ${fmt}`));
  }
  for (const summary of run.summaries || []) {
    const label = summary.name === "summary.html" ? "Project summary (HTML)" : "Plate summary (HTML)";
    actions.append(el("button", { type: "button", class: "summary-link", dataset: { name: summary.name },
      onclick: () => download(fileUrl(summary), summary.name) }, label));
  }
  files.append(actions);
  if (run.files.length) {
    const list = el("ul", { class: "file-list" });
    for (const f of run.files) {
      list.append(el("li", {}, el("button", { type: "button", class: "file-link", dataset: { kind: f.kind }, onclick: () => download(fileUrl(f), f.name) }, f.name)));
    }
    files.append(el("details", { class: "files" }, el("summary", {}, `Single files (${run.files.length})`), list));
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
  $("project-downloads").replaceChildren(...Object.keys(projects.mine).map(projectDownloadRow));
  await showProjectRuns();
  await loadApiKeys();
}

async function showProjectRuns() {
  const picked = $("project-picker").value;
  projects.picked = picked;
  const query = picked ? `?project=${encodeURIComponent(picked)}` : "";
  const reply = await apiJSON("GET", `/api/sibyls/runs${query}`);
  if (projects.picked !== picked) return; // the picker moved on while this list was loading
  const list = $("project-runs");
  list.replaceChildren();
  list.dataset.picked = picked;
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

// One row per project: "Download results" fetches the project's zip and reads it piece by piece
// against its Content-Length, so the bar shows how much has arrived.
function projectDownloadRow(code) {
  const bar = el("progress", { max: "1", value: "0", hidden: "" });
  const note = el("span", { class: "download-note sub" });
  const row = el("li", { dataset: { project: code, state: "idle" } }, el("span", {}, code));
  const button = el("button", { type: "button", class: "project-download", onclick: () => downloadProject(code, row, bar, note, button) }, "Download results");
  row.append(button, bar, note);
  return row;
}

const fmtBytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`);

async function downloadProject(code, row, bar, note, button) {
  button.disabled = true;
  row.dataset.state = "loading";
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate while the server lists and exports
  note.textContent = "preparing the archive…";
  try {
    const response = await api("GET", `/api/sibyls/projects/${encodeURIComponent(code)}/results.zip`);
    if (!response.ok) {
      let reason = `${response.status}`;
      try { reason = (await response.json()).detail || reason; } catch { /* not JSON */ }
      throw new Error(reason);
    }
    const total = Number(response.headers.get("Content-Length")) || 0;
    bar.max = total || 1;
    const reader = response.body.getReader();
    const parts = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      received += value.length;
      bar.value = received;
      note.textContent = total ? `${fmtBytes(received)} of ${fmtBytes(total)}` : fmtBytes(received);
    }
    if (total && received !== total) throw new Error(`the download stopped at ${fmtBytes(received)} of ${fmtBytes(total)}`);
    bar.value = bar.max;
    const url = URL.createObjectURL(new Blob(parts, { type: "application/zip" }));
    const link = el("a", { href: url, download: fileNameOf(response, `${code}_results.zip`) });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    row.dataset.state = "done";
    note.textContent = `done: ${fmtBytes(received)}`;
  } catch (error) {
    row.dataset.state = "failed";
    note.textContent = `not downloaded: ${error.message}`;
  } finally {
    button.disabled = false;
  }
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
  $("run-close").addEventListener("click", closeRun);
  $("plot-close").addEventListener("click", () => $("plot-dialog").close());
  $("plot-dialog").addEventListener("click", (e) => { if (e.target === $("plot-dialog")) $("plot-dialog").close(); });
  $("confirm-dialog").addEventListener("close", () => { if (confirmResolve) confirmResolve($("confirm-dialog").returnValue === "yes"); confirmResolve = null; });
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
