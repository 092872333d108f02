// proctrail bedside tablet app: sign in, today's procedures, quick entry for every catalogue
// event (forms built from the catalogue's own schemas), and an offline queue in the browser
// that re-sends each entry with the same event_id until bedside has it (so a duplicate is
// harmless). No build step, no outside scripts or fonts.
"use strict";

const QUICK = [
  "sedation.drug_administered", "sedation.vitals_recorded", "sedation.depth_scored",
  "procedure.opened", "procedure.time_out", "implant.needle_placed", "implant.injected",
  "harvest.aspiration_performed", "procedure.closed", "recovery.scored", "recovery.discharged",
];
const BARCODES = new Set(["sample_id", "lot_id", "patient_id_scanned", "item_id"]);
const OUTBOX_KEY = "proctrail.outbox";
const SENT_KEY = "proctrail.sent";
const app = document.getElementById("app");
const outboxBar = document.getElementById("outbox");
let catalogue = null;
let retryTimer = null;

const session = {
  get token() { return sessionStorage.getItem("proctrail.token"); },
  set token(v) { v ? sessionStorage.setItem("proctrail.token", v) : sessionStorage.removeItem("proctrail.token"); },
};
const tabletId = localStorage.getItem("proctrail.tablet") || (() => {
  const id = "tablet-" + crypto.randomUUID().slice(0, 8);
  localStorage.setItem("proctrail.tablet", id);
  return id;
})();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, options = {}) {
  const headers = { "Authorization": "Bearer " + session.token, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) { session.token = null; signIn("Signed out: sign in again."); }
  return response;
}

// --- the offline queue ------------------------------------------------------------------------

const outbox = {
  load() { return JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"); },
  save(items) { localStorage.setItem(OUTBOX_KEY, JSON.stringify(items)); showOutbox(); },
  add(event) { const items = this.load(); items.push({ event, error: null }); this.save(items); },
};

function remember(event, recordedAt, late) {
  const sent = JSON.parse(localStorage.getItem(SENT_KEY) || "[]");
  sent.unshift({ id: event.event_id, type: event.type, procedure: event.procedure_id,
                 occurred_at: event.occurred_at, recorded_at: recordedAt, late: !!late });
  localStorage.setItem(SENT_KEY, JSON.stringify(sent.slice(0, 50)));
}

function showOutbox() {
  const items = outbox.load();
  const waiting = items.filter(i => !i.error).length;
  const failed = items.filter(i => i.error).length;
  outboxBar.hidden = items.length === 0;
  outboxBar.replaceChildren(
    waiting ? `${waiting} ${waiting === 1 ? "entry" : "entries"} waiting to send` : "",
    failed ? el("span", { class: "error" }, ` · ${failed} refused: see below`) : "",
    waiting ? el("button", { class: "secondary", style: "margin-left:12px", on: { click: flush } }, "Send now") : "",
  );
  outboxBar.dataset.waiting = String(waiting);
}

let flushing = false;
async function flush() {
  if (flushing || !session.token) return;
  flushing = true;
  clearTimeout(retryTimer);
  try {
    for (;;) {
      const items = outbox.load();
      const next = items.find(i => !i.error);
      if (!next) break;
      let response;
      try {
        response = await api("/v1/events", { method: "POST", body: JSON.stringify(next.event) });
      } catch (networkError) {
        retryTimer = setTimeout(flush, 3000);  // offline: try again, with the same event_id
        break;
      }
      const after = outbox.load();
      const index = after.findIndex(i => i.event.event_id === next.event.event_id);
      if (response.status === 202) {
        const body = await response.json();
        remember(next.event, body.recorded_at, body.late);
        after.splice(index, 1);
      } else if (response.status === 503 || response.status >= 500) {
        retryTimer = setTimeout(flush, 3000);
        break;
      } else if (response.status === 401) {
        break;
      } else {
        const problem = await response.json().catch(() => ({ detail: response.statusText }));
        after[index].error = problem.detail || `HTTP ${response.status}`;
        after[index].fields = (problem.errors || []).map(e => `${e.field}: ${e.message}`);
      }
      outbox.save(after);
    }
  } finally {
    flushing = false;
    showOutbox();
    const shown = document.getElementById("sent");  // what was just recorded, in the list
    if (shown) shown.replaceWith(sentList(shown.dataset.procedure || undefined));
    const unmatched = document.getElementById("unmatched");
    if (unmatched && unmatched.procedure) showUnmatched(unmatched.procedure, unmatched);
  }
}
window.addEventListener("online", flush);

// --- screens --------------------------------------------------------------------------------

function signIn(message) {
  document.getElementById("who").textContent = "";
  const token = el("input", { id: "token", type: "password", autocomplete: "off", required: true });
  const form = el("form", { on: { submit: async (e) => {
    e.preventDefault();
    session.token = token.value.trim();
    const r = await api("/v1/catalogue").catch(() => null);
    if (r && r.status === 403) { session.token = null; signIn("This account cannot record events: the tablet is for clinical staff."); return; }
    if (!r || !r.ok) { session.token = null; signIn("That token was not accepted."); return; }
    catalogue = await r.json();
    procedures();
    flush();
  } } },
    el("h2", {}, "Sign in"),
    message ? el("p", { class: "error", role: "alert" }, message) : "",
    el("label", { for: "token" }, "Your access token"), token,
    el("p", {}, el("button", { type: "submit" }, "Sign in")));
  app.replaceChildren(form);
  token.focus();
}

function localDay(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
function today() { return localDay(new Date()); }

async function procedures() {
  document.getElementById("who").textContent = `${catalogue.user} (${catalogue.role})`;
  const r = await api("/v1/procedures");
  if (!r.ok) return;
  const all = (await r.json()).procedures;
  const day = today();
  // Planned for today, or (no planned start) scheduled today: in the tablet's own time zone.
  const mine = all.filter(p => localDay(new Date(p.scheduled_start || p.scheduled_at)) === day);
  app.replaceChildren(
    el("h2", {}, `Today's procedures (${day})`),
    el("div", { class: "list" }, mine.length ? mine.map(p => el("button", {
      class: "secondary", "data-procedure": p.procedure_id, on: { click: () => procedure(p) } },
      `${p.patient.id} · ${p.phase} · room ${p.room}`, p.accession_number ? ` · ${p.accession_number}` : "",
    )) : el("p", {}, "No procedures scheduled today.")),
    sentList());
}

function sentList(procedureId) {
  const sent = JSON.parse(localStorage.getItem(SENT_KEY) || "[]")
    .filter(s => !procedureId || s.procedure === procedureId).slice(0, 10);
  const failed = outbox.load().filter(i => i.error && (!procedureId || i.event.procedure_id === procedureId));
  return el("section", { id: "sent", "data-procedure": procedureId || "" },
    failed.length ? el("div", {}, el("h2", {}, "Refused"), el("ul", {}, failed.map(i => el("li", { class: "error" },
      `${i.event.type}: ${i.error} ${(i.fields || []).join("; ")} `,
      el("button", { class: "secondary", on: { click: () => { outbox.save(outbox.load().filter(x => x.event.event_id !== i.event.event_id)); document.getElementById("sent")?.replaceWith(sentList(procedureId)); } } }, "Discard"))))) : "",
    el("h2", {}, "Recorded"),
    el("ul", { class: "sent" }, sent.map(s => el("li", {}, `${s.type} — occurred ${new Date(s.occurred_at).toLocaleTimeString()}, recorded ${new Date(s.recorded_at).toLocaleTimeString()}`,
      s.late ? el("span", { class: "late" }, " late entry") : ""))));
}

function procedure(p) {
  const types = Object.keys(catalogue.types).filter(t => catalogue.types[t].yours && catalogue.types[t].needs_procedure);
  const quick = QUICK.filter(t => types.includes(t) && (!t.startsWith("implant.") || p.phase === "implant") && (!t.startsWith("harvest.") || p.phase === "harvest"));
  const other = el("select", { id: "other-type", "aria-label": "Any other event" },
    el("option", { value: "" }, "Any other event…"), types.sort().map(t => el("option", { value: t }, t)));
  other.addEventListener("change", () => other.value && entry(p, other.value));
  const live = el("section", { id: "live", "aria-live": "polite" });
  const unmatched = el("section", { id: "unmatched", "aria-label": "Images no procedure claimed" });
  app.replaceChildren(
    el("p", {}, el("button", { class: "secondary", on: { click: procedures } }, "← Procedures")),
    el("h2", {}, `${p.patient.id} · ${p.phase} · room ${p.room}`),
    live,
    el("div", { class: "grid" }, quick.map(t => el("button", { "data-type": t, on: { click: () => entry(p, t) } }, t.replaceAll("_", " ").replace(".", ": ")))),
    el("p", {}, other),
    unmatched,
    sentList(p.procedure_id));
  clearInterval(stateTimer);
  const refresh = () => { showState(p, live); showUnmatched(p, unmatched); };
  refresh();
  stateTimer = setInterval(() => (document.body.contains(live) ? refresh() : clearInterval(stateTimer)), 5000);
}

let stateTimer = null;
async function showState(p, live) {
  let state;
  try {
    const r = await api(`/v1/procedures/${p.procedure_id}/state`);
    if (!r.ok) return;
    state = await r.json();
  } catch (offline) { return; }  // offline: keep what is shown
  const overdue = state.vitals_overdue
    ? el("p", { class: "banner", id: "vitals-overdue", role: "alert" }, "Vitals overdue: " + state.vitals_overdue) : "";
  const totals = state.drugs.length ? el("table", { id: "totals" },
    el("caption", {}, "Sedation so far"),
    el("tbody", {}, state.drugs.map(d => el("tr", {}, el("th", { scope: "row" }, d.drug),
      el("td", {}, `${+d.total.toFixed(3)} ${d.unit}`),
      el("td", {}, d.per_kg != null ? `${+d.per_kg.toFixed(4)} ${d.unit}/kg` : ""),
      el("td", {}, `${d.doses} ${d.doses === 1 ? "dose" : "doses"}`))))) : "";
  const alerts = state.alerts.length ? el("ul", { id: "alerts" }, state.alerts.map(a =>
    el("li", { class: a.severity }, `${a.code.replaceAll("_", " ")}: ${a.message}`))) : "";
  live.replaceChildren(overdue, totals, alerts ? el("h3", {}, "Alerts") : "", alerts);
}

// --- the reconciliation list: images the listener could not match to a procedure -----------

function reconciling() {  // captures this tablet has a reconciliation of, still to send
  return outbox.load().filter(i => i.event.type === "imaging.capture_reconciled")
    .map(i => i.event.payload.sop_instance_uid);
}

async function showUnmatched(p, section) {
  section.procedure = p;
  const before = reconciling();  // one sent while the list was asked for is gone from both
  let captures;
  try {
    const r = await api("/v1/captures/unmatched");
    if (!r.ok) return;
    captures = (await r.json()).captures;
  } catch (offline) { return; }
  const waiting = new Set([...before, ...reconciling()]);
  captures = captures.filter(c => !waiting.has(c.payload.sop_instance_uid));
  if (!captures.length) { section.replaceChildren(); return; }
  // This patient's images first: the likeliest to belong here.
  const mine = (c) => c.payload.patient_id === p.patient.id ? 0 : 1;
  captures.sort((a, b) => mine(a) - mine(b));
  section.replaceChildren(
    el("h3", {}, `Images not matched to any procedure (${captures.length})`),
    el("ul", { class: "unmatched" }, captures.map(c => {
      const x = c.payload;
      const when = x.acquired_at || c.occurred_at;
      return el("li", { "data-sop": x.sop_instance_uid, class: mine(c) ? "" : "same-patient" },
        el("strong", {}, `${x.modality || "image"} ${new Date(when).toLocaleString()}`),
        ` · ${x.station_name || x.calling_ae || c.actor.id}`,
        ` · patient ${x.patient_id || "(none)"}`, x.accession_number ? ` · accession ${x.accession_number}` : "",
        el("br"), el("span", { class: "muted" }, x.reason), el("br"),
        el("button", { class: "secondary", on: { click: () => reconcile(p, c) } }, "Belongs to this procedure…"));
    })));
}

function reconcile(p, capture) {
  const x = capture.payload;
  const why = el("select", { id: "reconcile-why", required: true },
    el("option", { value: "" }, "Choose…"),
    ["The device had no worklist entry for this procedure",
     "The patient ID on the device was missing or wrong",
     "The accession number on the device was missing or wrong",
     "Other (say below)"].map(r => el("option", { value: r }, r)));
  const more = el("input", { id: "reconcile-more", type: "text", autocomplete: "off" });
  const form = el("form", { "data-type": "imaging.capture_reconciled", on: { submit: (e) => {
    e.preventDefault();
    const reason = [why.value.startsWith("Other") ? "" : why.value, more.value.trim()].filter(Boolean).join(": ");
    if (!reason) { more.focus(); more.setCustomValidity("Say why"); more.reportValidity(); return; }
    outbox.add({
      event_id: crypto.randomUUID(), type: "imaging.capture_reconciled", schema: 1,
      procedure_id: p.procedure_id, occurred_at: withOffset(localNow()),
      actor: { id: catalogue.user, role: catalogue.role }, source: { kind: "tablet", id: tabletId },
      payload: { sop_instance_uid: x.sop_instance_uid, procedure_id: p.procedure_id, reason },
    });
    procedure(p);
    flush();
  } } },
    el("h2", {}, "Reconcile an image to this procedure"),
    el("p", {}, `${x.modality || "Image"} taken ${new Date(x.acquired_at || capture.occurred_at).toLocaleString()} on ${x.station_name || x.calling_ae || capture.actor.id}, patient on the image: ${x.patient_id || "(none)"}.`),
    el("p", {}, `Procedure: patient ${p.patient.id}, ${p.phase}, room ${p.room}.`),
    el("label", { for: "reconcile-why" }, "Why it did not match"), why,
    el("label", { for: "reconcile-more" }, "Anything to add"), more,
    el("p", { class: "row" }, el("button", { type: "submit" }, "Reconcile"),
      el("button", { type: "button", class: "secondary", on: { click: () => procedure(p) } }, "Cancel")));
  more.addEventListener("input", () => more.setCustomValidity(""));
  app.replaceChildren(form);
  why.focus();
}

// --- forms from the catalogue's schemas -------------------------------------------------------

function resolve(schema, root) {
  if (schema.$ref) return resolve(root.$defs[schema.$ref.split("/").pop()], root);
  if (schema.anyOf) {
    const real = schema.anyOf.filter(s => s.type !== "null");
    return { ...resolve(real[0], root), nullable: schema.anyOf.length > real.length };
  }
  return schema;
}

function field(name, schema, root, required, path) {
  const s = resolve(schema, root);
  const id = "f-" + path.join("-");
  const label = name.replaceAll("_", " ") + (required ? "" : " (optional)");
  if (s.type === "object") {  // an optional object's fields are required only once it is used
    return el("fieldset", { "data-object": path.join(".") }, el("legend", {}, label),
      Object.entries(s.properties).map(([k, v]) => field(k, v, root, required && (s.required || []).includes(k), [...path, k])));
  }
  let input;
  const levels = name === "level" || name === "targets";
  if (s.enum || (levels && s.type !== "array")) {
    const values = levels ? catalogue.levels : s.enum;
    input = el("select", { id }, required ? "" : el("option", { value: "" }, "—"),
      values.map(v => el("option", { value: String(v) }, String(v))));
  } else if (s.type === "boolean") {
    input = el("input", { id, type: "checkbox" });
  } else if (s.type === "number" || s.type === "integer") {
    input = el("input", { id, type: "number", step: s.type === "integer" ? "1" : "any", inputmode: "decimal" });
  } else if (s.format === "date-time") {
    input = el("input", { id, type: "datetime-local", step: "1", value: localNow() });
  } else if (s.type === "array") {
    input = el("input", { id, type: "text", placeholder: levels ? "e.g. L4-L5, L5-S1" : "comma separated" });
  } else {
    input = el("input", { id, type: "text", autocomplete: "off" });
    if (BARCODES.has(name)) {
      input.dataset.barcode = "";  // a keyboard-wedge scanner types the code and Enter
      input.placeholder = "scan or type";
    }
  }
  input.dataset.path = path.join(".");
  input.dataset.kind = s.type || (s.enum ? typeof s.enum[0] : "string");
  if (s.type === "array") input.dataset.items = resolve(s.items || {}, root).type || "string";
  if (required && input.type !== "checkbox" && s.type !== "array") input.required = true;
  return el("div", {}, el("label", { for: id }, label), input);
}

function localNow() {
  const d = new Date();
  d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
  return d.toISOString().slice(0, 19);
}

function withOffset(local) {
  const d = new Date(local);  // the tablet's own zone; sent with its offset, as RFC 3339
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
  const mm = String(Math.abs(offset) % 60).padStart(2, "0");
  return `${local.length === 16 ? local + ":00" : local}${sign}${hh}:${mm}`;
}

function collect(form) {
  const payload = {};
  for (const input of form.querySelectorAll("[data-path]")) {
    const path = input.dataset.path.split(".");
    let value;
    if (input.type === "checkbox") value = input.checked;
    else if (input.dataset.kind === "array" && input.value === "") value = [];
    else if (input.value === "") continue;
    else if (input.dataset.kind === "array") {
      const parts = input.value.split(",").map(x => x.trim()).filter(Boolean);
      value = input.dataset.items === "number" || input.dataset.items === "integer" ? parts.map(Number) : parts;
    } else if (input.dataset.kind === "number" || input.dataset.kind === "integer") value = Number(input.value);
    else if (input.type === "datetime-local") value = withOffset(input.value);
    else value = input.value;
    let node = payload;
    for (const part of path.slice(0, -1)) node = node[part] ??= {};
    node[path[path.length - 1]] = value;
  }
  return payload;
}

function entry(p, type) {
  const root = catalogue.types[type].schema;
  const when = el("input", { id: "occurred-at", type: "datetime-local", step: "1", value: localNow(), required: true,
                             "aria-describedby": "late-hint" });
  const lateHint = el("p", { id: "late-hint", class: "late", "aria-live": "polite" });
  when.addEventListener("input", () => {  // bedside marks it late; say so before it is sent
    const behind = (Date.now() - new Date(when.value).getTime()) / 1000;
    lateHint.textContent = behind > catalogue.late_after_s
      ? `More than ${Math.round(catalogue.late_after_s / 60)} minutes ago: it will be recorded as a late entry, with both times.` : "";
  });
  const fields = Object.entries(root.properties).map(([k, v]) => field(k, v, root, (root.required || []).includes(k), [k]));
  const form = el("form", { "data-type": type, on: { submit: (e) => {
    e.preventDefault();
    const event = {
      event_id: crypto.randomUUID(), type, schema: 1, procedure_id: p.procedure_id,
      occurred_at: withOffset(when.value),
      actor: { id: catalogue.user, role: catalogue.role },
      source: { kind: "tablet", id: tabletId },
      payload: collect(form),
    };
    outbox.add(event);  // kept on the tablet first: nothing is lost if the network is down
    procedure(p);
    flush();
  } } },
    el("h2", {}, type),
    el("label", { for: "occurred-at" }, "When it happened (now, unless you change it)"), when, lateHint,
    fields,
    el("p", { class: "row" }, el("button", { type: "submit" }, "Record"),
      el("button", { type: "button", class: "secondary", on: { click: () => procedure(p) } }, "Cancel")));
  form.addEventListener("keydown", (e) => {  // a scanner's Enter moves on, it does not submit
    if (e.key === "Enter" && e.target.dataset && "barcode" in e.target.dataset) {
      e.preventDefault();
      const inputs = [...form.querySelectorAll("input, select")];
      inputs[inputs.indexOf(e.target) + 1]?.focus();
    }
  });
  app.replaceChildren(form);
  (form.querySelector("[data-path]") || when).focus();
}

// --- start ------------------------------------------------------------------------------------

showOutbox();
if (session.token) {
  api("/v1/catalogue").then(async (r) => {
    if (r.ok) { catalogue = await r.json(); procedures(); flush(); } else signIn();
  }).catch(() => signIn("Bedside cannot be reached; entries you make wait on this tablet."));
} else {
  signIn();
}
