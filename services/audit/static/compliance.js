// proctrail compliance app: search the ledger, read one procedure's timeline (vitals chart,
// drugs and running totals, needle levels with their images, dose, adverse events and their
// deadlines, alerts, corrections beside the originals), check the ledger and export. Every
// call carries the bearer token and is itself recorded in the ledger by the audit service.
"use strict";

const app = document.getElementById("app");
const session = {
  get token() { return sessionStorage.getItem("proctrail.audit.token"); },
  set token(v) { v ? sessionStorage.setItem("proctrail.audit.token", v) : sessionStorage.removeItem("proctrail.audit.token"); },
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { "Authorization": "Bearer " + session.token, ...(options.headers || {}) } });
  if (r.status === 401) { session.token = null; signIn("Signed out: sign in again."); throw new Error("401"); }
  return r;
}

function signIn(message) {
  document.getElementById("who").textContent = "";
  const token = el("input", { id: "token", type: "password", autocomplete: "off", required: true });
  app.replaceChildren(el("form", { on: { submit: async (e) => {
    e.preventDefault();
    session.token = token.value.trim();
    const r = await fetch("/v1/audit/entries?limit=1", { headers: { "Authorization": "Bearer " + session.token } });
    if (r.status === 403) { session.token = null; signIn("This account cannot open the compliance pages: they are for compliance officers."); return; }
    if (!r.ok) { session.token = null; signIn("That token was not accepted."); return; }
    route();
  } } },
    el("h2", {}, "Sign in"),
    message ? el("p", { class: "error", role: "alert" }, message) : "",
    el("label", { for: "token" }, "Your access token"), token,
    el("p", {}, el("button", { type: "submit" }, "Sign in"))));
  token.focus();
}

// --- home: ledger status and search -----------------------------------------------------------

async function home() {
  const status = el("section", { id: "status" }, el("h2", {}, "Ledger"), "…");
  const results = el("section", { id: "results" });
  const fields = [["patient_id", "Patient"], ["procedure_id", "Procedure"], ["lot_id", "Product lot"],
                  ["actor_id", "Person"], ["type", "Event type"], ["since", "From (date and time)"],
                  ["until", "Until"]];
  const form = el("form", { id: "search", on: { submit: async (e) => {
    e.preventDefault();
    const params = new URLSearchParams({ limit: "200" });
    for (const [name] of fields) {
      const v = form.querySelector(`#q-${name}`).value.trim();
      if (v) params.set(name, name === "since" || name === "until" ? new Date(v).toISOString() : v);
    }
    const r = await api("/v1/audit/entries?" + params);
    const body = await r.json();
    results.replaceChildren(r.ok ? table(body.entries) : el("p", { class: "error" }, body.detail));
  } } },
    el("h2", {}, "Search"),
    el("div", { class: "grid" }, fields.map(([name, label]) => el("div", {},
      el("label", { for: `q-${name}` }, label),
      el("input", { id: `q-${name}`, type: name === "since" || name === "until" ? "datetime-local" : "text" })))),
    el("p", {}, el("button", { type: "submit" }, "Search")));
  app.replaceChildren(status, form, results);
  const r = await api("/v1/audit/checkpoint");
  const note = r.ok ? await r.text() : "";
  const [origin, size, root] = note.split("\n");
  const verdict = el("span", { id: "verify-result", role: "status" });
  status.replaceChildren(el("h2", {}, "Ledger"),
    r.ok ? el("p", {}, `${origin}: ${size} entries, root ${root}`) : el("p", {}, "No checkpoint yet."),
    el("p", {}, el("button", { class: "secondary", on: { click: async () => {
      verdict.textContent = "verifying…";
      const v = await (await api("/v1/audit/verify", { method: "POST" })).json();
      verdict.className = v.intact ? "ok" : "error";
      verdict.textContent = v.intact ? ` intact: ${v.size} entries, ${v.checkpoints_compared} checkpoint roots compared`
                                     : ` NOT INTACT at ${v.first_bad_seq}: ${v.problem}`;
    } } }, "Verify the ledger"), verdict));
}

function table(entries) {
  if (!entries.length) return el("p", {}, "Nothing found.");
  return el("table", {}, el("thead", {}, el("tr", {}, ["#", "When", "Type", "Who", "Procedure"].map(h => el("th", { scope: "col" }, h)))),
    el("tbody", {}, entries.map(e => el("tr", {},
      el("td", {}, e.seq), el("td", {}, fmt(e.event.occurred_at)), el("td", {}, e.event.type),
      el("td", {}, e.event.actor ? `${e.event.actor.id} (${e.event.actor.role})` : ""),
      el("td", {}, e.event.procedure_id ? el("a", { href: `#/procedure/${e.event.procedure_id}` }, e.event.procedure_id.slice(0, 8)) : "")))));
}

function fmt(t) { return t ? new Date(t).toLocaleString() : ""; }

// --- one procedure -----------------------------------------------------------------------------

async function procedure(id) {
  app.replaceChildren(el("p", {}, "Loading…"));
  const r = await api(`/v1/procedures/${id}/timeline`);
  const body = await r.json();
  if (!r.ok) { app.replaceChildren(el("p", { class: "error" }, body.detail)); return; }
  const events = body.events;
  const of = (t) => events.filter(e => e.type === t);
  const scheduled = of("procedure.scheduled")[0];
  app.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← Search")),
    el("h2", {}, `Procedure ${id}`),
    scheduled ? el("p", {}, `Patient ${scheduled.payload.patient.id} · ${scheduled.payload.phase} · room ${scheduled.payload.room}`) : "",
    el("p", {}, `As of checkpoint ${body.checkpoint.tree_size} `, el("button", { id: "export-pdf", on: { click: () => download(id, "pdf") } }, "Export PDF"), " ",
      el("button", { class: "secondary", on: { click: () => download(id, "csv") } }, "CSV"), " ",
      el("button", { class: "secondary", on: { click: () => download(id, "fhir") } }, "FHIR")),
    el("h2", {}, "Vitals"), vitalsChart(of("sedation.vitals_recorded")),
    el("h2", {}, "Drugs"), drugs(of("sedation.drug_administered")),
    el("h2", {}, "Needle levels and their images"), needles(of("implant.needle_placed"), of("imaging.capture_received")),
    el("h2", {}, "Radiation dose"), dose(of("imaging.dose_reported")),
    el("h2", {}, "Adverse events"), adverse(of("adverse_event.reported")),
    el("h2", {}, "Alerts"), alerts(of("alert.raised")),
    el("h2", {}, "Every event"), story(events));
}

function vitalsChart(vitals) {
  if (!vitals.length) return el("p", {}, "No vitals recorded.");
  const W = 700, H = 220, pad = 36;
  const times = vitals.map(v => new Date(v.occurred_at).getTime());
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 60000);
  const x = t => pad + (t - t0) / (t1 - t0) * (W - 2 * pad);
  const series = [["spo2_pct", "SpO₂ %", "#0b4f9c", 50, 100], ["heart_rate_bpm", "HR /min", "#a00000", 30, 180]];
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "Vitals over time", id: "vitals-chart" },
    svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#111" }),
    svg("text", { x: pad, y: H - 8 }, new Date(t0).toLocaleTimeString()),
    svg("text", { x: W - pad - 60, y: H - 8 }, new Date(t1).toLocaleTimeString()));
  for (const [key, label, colour, lo, hi] of series) {
    const pts = vitals.filter(v => typeof v.payload[key] === "number")
      .map(v => [x(new Date(v.occurred_at).getTime()), pad + (1 - (v.payload[key] - lo) / (hi - lo)) * (H - 2 * pad), v.payload[key]]);
    if (!pts.length) continue;
    chart.append(svg("polyline", { points: pts.map(p => `${p[0]},${p[1]}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2, "data-series": key }));
    pts.forEach(p => chart.append(svg("circle", { cx: p[0], cy: p[1], r: 3, fill: colour }, svg("title", {}, `${label} ${p[2]}`))));
    chart.append(svg("text", { x: pts[pts.length - 1][0] + 4, y: pts[pts.length - 1][1], fill: colour }, label));
  }
  return chart;
}

function drugs(doses) {
  if (!doses.length) return el("p", {}, "No sedation drugs.");
  const totals = {};
  return el("table", {}, el("thead", {}, el("tr", {}, ["When", "Drug", "Dose", "Route", "Given by", "Running total"].map(h => el("th", { scope: "col" }, h)))),
    el("tbody", {}, doses.map(d => {
      const key = `${d.payload.drug.toLowerCase()}|${d.payload.unit}`;
      totals[key] = (totals[key] || 0) + d.payload.dose;
      return el("tr", {}, el("td", {}, fmt(d.occurred_at)), el("td", {}, d.payload.drug), el("td", {}, `${d.payload.dose} ${d.payload.unit}`),
        el("td", {}, d.payload.route), el("td", {}, d.payload.given_by), el("td", {}, `${+totals[key].toFixed(3)} ${d.payload.unit}`));
    })));
}

function needles(placements, captures) {
  if (!placements.length) return el("p", {}, "No needle placements.");
  return el("div", {}, placements.map(n => {
    const t = new Date(n.occurred_at).getTime();
    const near = captures.filter(c => Math.abs(new Date(c.payload.acquired_at || c.occurred_at).getTime() - t) <= 10 * 60000);
    const target = n.payload.target;
    return el("section", { class: "needle" },
      el("h3", {}, `${target.level || target.name || target.kind} (${target.kind}${target.side ? ", " + target.side : ""}) — ${fmt(n.occurred_at)}`),
      el("p", {}, `${n.payload.approach}, ${n.payload.needle_gauge} G × ${n.payload.needle_length_mm} mm${n.payload.contrast ? `, contrast ${n.payload.contrast.agent} ${n.payload.contrast.volume_ml} mL` : ""}`),
      el("div", { class: "thumbs" }, near.length ? near.map(thumbnail) : el("p", { class: "warning" }, "No image within 10 minutes.")));
  }));
}

function thumbnail(capture) {
  const img = el("img", { alt: `${capture.payload.modality} image ${capture.payload.sop_instance_uid}`, "data-capture": capture.event_id });
  api(`/v1/audit/captures/${capture.event_id}/thumbnail`).then(async r => {
    if (r.ok) img.src = URL.createObjectURL(await r.blob());
    else img.alt += " (not available)";
  });
  return img;
}

function dose(reports) {
  if (!reports.length) return el("p", {}, "No dose reports.");
  const sum = (k) => reports.reduce((a, r) => a + (r.payload[k] || 0), 0);
  return el("ul", {}, [["dap_total_gy_m2", "Dose-area product", "Gy·m²"], ["dose_rp_total_gy", "Reference-point air kerma", "Gy"],
    ["fluoro_time_s", "Fluoroscopy time", "s"], ["dlp_total_mgy_cm", "CT dose-length product", "mGy·cm"]]
    .filter(([k]) => reports.some(r => r.payload[k] !== undefined)).map(([k, label, unit]) => el("li", {}, `${label}: ${+sum(k).toPrecision(4)} ${unit}`)));
}

function deadline(ae) {
  if (!ae.payload.serious || ae.payload.expected) return null;
  const urgent = ae.payload.serious_criteria.some(c => c === "death" || c === "life_threatening");
  return new Date(new Date(ae.occurred_at).getTime() + (urgent ? 7 : 15) * 86400000);
}

function adverse(events) {
  if (!events.length) return el("p", {}, "None reported.");
  return el("table", {}, el("thead", {}, el("tr", {}, ["When", "Term", "Grade", "Serious", "Expected", "Suspected cause", "Report due"].map(h => el("th", { scope: "col" }, h)))),
    el("tbody", {}, events.map(a => { const due = deadline(a); return el("tr", {},
      el("td", {}, fmt(a.occurred_at)), el("td", {}, a.payload.term), el("td", {}, a.payload.grade),
      el("td", {}, a.payload.serious ? `yes (${a.payload.serious_criteria.join(", ")})` : "no"), el("td", {}, a.payload.expected ? "yes" : "no"),
      el("td", {}, a.payload.suspected_cause), el("td", { class: due ? "critical" : "" }, due ? due.toLocaleDateString() : "—")); })));
}

function alerts(list) {
  if (!list.length) return el("p", {}, "No alerts.");
  return el("ul", { id: "alerts" }, list.map(a => el("li", { class: a.payload.severity }, `${fmt(a.occurred_at)} · ${a.payload.code}: ${a.payload.message}`)));
}

function story(events) {
  return el("table", {}, el("thead", {}, el("tr", {}, ["Happened", "Recorded", "Event", "Who", "Details"].map(h => el("th", { scope: "col" }, h)))),
    el("tbody", {}, events.map(e => el("tr", {},
      el("td", {}, fmt(e.occurred_at)), el("td", {}, fmt(e.recorded_at), e.late ? " (late)" : ""), el("td", {}, e.type),
      el("td", {}, e.actor ? `${e.actor.id} (${e.actor.role})` : ""),
      el("td", {}, e.corrections ? el("div", {}, el("div", { class: "was" }, "was: " + JSON.stringify(e.original.payload)),
        el("div", {}, "now: " + JSON.stringify(e.payload)),
        e.corrections.map(c => el("div", {}, `corrected by ${c.by?.id ?? "?"}: ${c.reason}`))) : JSON.stringify(e.payload))))));
}

async function download(id, format) {
  const r = await api(`/v1/audit/export?format=${format}&procedure_id=${id}`);
  if (!r.ok) return;
  const name = (r.headers.get("Content-Disposition") || "").split("filename=")[1]?.replaceAll('"', "") || `proctrail.${format}`;
  const a = el("a", { href: URL.createObjectURL(await r.blob()), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// --- routing ----------------------------------------------------------------------------------

async function route() {
  if (!session.token) { signIn(); return; }
  document.getElementById("who").textContent = "signed in";
  const match = location.hash.match(/^#\/procedure\/([0-9a-f-]+)$/);
  try {
    if (match) await procedure(match[1]); else await home();
  } catch (e) { if (e.message !== "401") app.append(el("p", { class: "error" }, String(e))); }
}
window.addEventListener("hashchange", route);
route();
