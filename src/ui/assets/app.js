"use strict";
// The web view's pages, drawn from the JSON endpoints under /ui/api/. Every value is put into
// the page as text (textContent, attribute values, SVG elements): nothing from the log is ever
// parsed as HTML, so a tool name or an argument holding markup shows as the text it is.

const SVG = "http://www.w3.org/2000/svg";
let session = { principal: "", role: "", csrf_token: null };

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const response = await fetch(path, { credentials: "same-origin", ...(options || {}) });
  if (response.status === 401) {
    location.reload(); // the server answers with the login page
    throw new Error("not logged in");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

// Badge colours by verdict: a fixed list, so no value from the log picks a class name.
const TONE = {
  allow: "good", ok: "good", approve: "good",
  ask: "warn",
  deny: "bad", denied: "bad",
  trap: "warn", limit: "warn", error: "warn", tool_error: "warn",
  pending: "warn", approved: "good", expired: "none", input_required: "warn",
};

function badge(verdict) {
  if (verdict === undefined || verdict === null) return el("span", { class: "badge tone-none", text: "running" });
  return el("span", { class: `badge tone-${TONE[verdict] || "none"}`, text: verdict });
}

function localTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  return t.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${ms} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

function storyLink(call) {
  return `/ui/calls/${encodeURIComponent(call.call_id)}`;
}

// ---------------------------------------------------------------- timeline

const FILTERS = [
  ["caller", "Caller", "any caller"],
  ["tool", "Tool", "any tool"],
  ["verdict", "Verdict", null],
  ["phase", "Phase", null],
  ["since", "Since", "1h, 7d, a date"],
  ["until", "Until", "a time or date"],
  ["text", "Reason contains", "any text"],
];
const VERDICTS = ["", "allow", "deny", "ask", "approve", "ok", "denied", "tool_error", "trap", "limit", "error"];
const PHASES = ["", "call", "approval", "http", "fs", "socket", "config", "result", "log", "outcome"];

function filterForm(params, onChange) {
  const form = el("form", { class: "filters", id: "filters" });
  for (const [name, label, placeholder] of FILTERS) {
    let input;
    if (name === "verdict" || name === "phase") {
      input = el("select", { name, id: `f-${name}` },
        (name === "verdict" ? VERDICTS : PHASES).map((v) => el("option", { value: v, text: v || "any" })));
    } else {
      input = el("input", { name, id: `f-${name}`, type: "search", placeholder, autocomplete: "off" });
    }
    input.value = params.get(name) || "";
    form.append(el("label", { for: `f-${name}` }, el("span", { text: label }), input));
  }
  form.append(el("div", { class: "actions" },
    el("button", { type: "submit", text: "Apply" }),
    el("button", { type: "reset", class: "secondary", text: "Clear" })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onChange(new URLSearchParams(new FormData(form)));
  });
  form.addEventListener("reset", () => setTimeout(() => onChange(new URLSearchParams()), 0));
  return form;
}

function callsTable(calls) {
  if (calls.length === 0) return el("p", { class: "empty", text: "No calls match these filters yet." });
  const rows = calls.map((call) => el("tr", { "data-call": call.call_id, class: `row-${TONE[call.verdict] || "none"}` },
    el("td", { class: "time", title: call.time, text: localTime(call.time) }),
    el("td", { class: "caller", text: call.caller }),
    el("td", { class: "tool" }, el("a", { href: storyLink(call), text: call.tool || "(unknown tool)" })),
    el("td", {}, badge(call.verdict)),
    el("td", {}, badge(call.outcome)),
    el("td", { class: "num", text: duration(call.duration_ms) }),
    el("td", { class: "reason", title: call.reasons.join("; "), text: call.reasons.join("; ") }),
  ));
  return el("table", { class: "calls" },
    el("thead", {}, el("tr", {}, ["Time", "Caller", "Tool", "Verdict", "Outcome", "Duration", "Reason"]
      .map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

async function timeline(view) {
  let params = new URLSearchParams(location.search);
  let lastSeq = -1;
  const status = el("span", { class: "live", id: "live" });
  const live = el("input", { type: "checkbox", id: "live-toggle", checked: true });
  const results = el("div", { id: "calls" });
  const load = async (force) => {
    try {
      const query = new URLSearchParams(params);
      if (!force && lastSeq >= 0) query.set("known_seq", String(lastSeq));
      const body = await api(`/ui/api/calls?${query}`);
      showError("");
      status.textContent = `updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`;
      if (!body.unchanged) {
        lastSeq = body.last_seq;
        results.replaceChildren(el("p", { class: "count muted", text: `${body.calls.length} call${body.calls.length === 1 ? "" : "s"}, newest first` }), callsTable(body.calls));
      }
    } catch (error) {
      showError(error.message);
    }
  };
  view.append(
    el("div", { class: "page-head" },
      el("h1", { text: "Timeline" }),
      el("label", { class: "toggle", for: "live-toggle" }, live, " Live updates ", status)),
    filterForm(params, (next) => {
      params = next;
      history.replaceState(null, "", `/ui/${params.toString() ? `?${params}` : ""}`);
      load(true);
    }),
    results,
  );
  await load(true);
  setInterval(() => { if (live.checked && !document.hidden) load(false); }, 2000);
}

// ---------------------------------------------------------------- one call's story

function fact(label, value, cls) {
  return [el("dt", { text: label }), el("dd", { class: cls }, value)];
}

async function story(view, callId) {
  const body = await api(`/ui/api/calls/${encodeURIComponent(callId)}`);
  const call = body.summary;
  const decision = body.steps.find((s) => s.phase === "call");
  view.append(el("p", { class: "crumbs" }, el("a", { href: "/ui/", text: "← Timeline" })));
  view.append(el("div", { class: "page-head" },
    el("h1", {}, el("span", { class: "tool-name", text: call.tool || "(unknown tool)" }), " ", badge(call.verdict), " ", badge(call.outcome))));
  if (call.verdict === "deny" || call.outcome === "denied") {
    view.append(el("div", { class: "callout bad", id: "denial" },
      el("strong", { text: "Denied: " }), el("span", { class: "reasons", text: call.reasons.join("; ") || "(no reason given)" })));
  }
  view.append(el("section", { class: "card" }, el("dl", { class: "facts" },
    fact("Call", call.call_id, "mono"),
    fact("Caller", `${call.caller}${call.transport ? ` (${call.transport})` : ""}`),
    fact("Started", localTime(call.time)),
    fact("Duration", duration(call.duration_ms)),
    fact("Component", body.component_digest || "–", "mono"),
    fact("Policy revision", body.policy_revision || "–", "mono"),
    decision && decision.reasons.length ? fact("Decision reasons", decision.reasons.join("; ")) : null,
  )));
  if (body.arguments !== undefined && body.arguments !== null) {
    view.append(el("section", { class: "card" }, el("h2", { text: "Arguments" }),
      el("pre", { class: "arguments", id: "arguments", text: JSON.stringify(body.arguments, null, 2) })));
  }
  const rows = body.steps.map((step) => el("tr", {},
    el("td", { class: "num", text: step.offset_ms === null ? "?" : `+${step.offset_ms} ms` }),
    el("td", { class: "num muted", text: `#${step.seq}` }),
    el("td", {}, el("span", { class: "phase", text: step.phase })),
    el("td", {}, badge(step.verdict)),
    el("td", { class: "detail", text: step.detail }),
  ));
  view.append(el("section", { class: "card" }, el("h2", { text: "What happened, in order" }),
    el("table", { class: "steps" },
      el("thead", {}, el("tr", {}, ["Offset", "Entry", "Phase", "Verdict", "Detail"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows))));
}

// ---------------------------------------------------------------- overview

function stat(label, value, tone) {
  return el("div", { class: `stat ${tone || ""}` }, el("div", { class: "stat-value", text: String(value) }), el("div", { class: "stat-label", text: label }));
}

function activityChart(activity, since, until) {
  const width = 960, height = 220, pad = { l: 40, r: 10, t: 10, b: 28 };
  const start = new Date(since).getTime(), end = new Date(until).getTime();
  const step = activity.bucket_seconds * 1000;
  const buckets = new Map(activity.buckets.map((b) => [new Date(b.start).getTime(), b]));
  const first = Math.floor(start / step) * step;
  const slots = [];
  for (let t = first; t <= end; t += step) slots.push(buckets.get(t) || { start: new Date(t).toISOString(), calls: 0, denied: 0 });
  const max = Math.max(1, ...slots.map((s) => s.calls));
  const innerW = width - pad.l - pad.r, innerH = height - pad.t - pad.b;
  const barW = innerW / Math.max(1, slots.length);
  const y = (n) => pad.t + innerH - (n / max) * innerH;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": "Calls and denials over time" });
  for (const frac of [0, 0.5, 1]) {
    const value = Math.round(max * frac);
    chart.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(value), y2: y(value), class: "grid" }),
      svg("text", { x: pad.l - 6, y: y(value) + 4, class: "axis", "text-anchor": "end" }, String(value)));
  }
  slots.forEach((slot, i) => {
    const x = pad.l + i * barW + 1, w = Math.max(1, barW - 2);
    const allowed = slot.calls - slot.denied;
    const title = svg("title", {}, `${localTime(slot.start)}: ${slot.calls} calls, ${slot.denied} denied`);
    if (allowed > 0) chart.append(svg("rect", { x, y: y(slot.calls), width: w, height: y(slot.denied) - y(slot.calls), class: "bar-ok" }, title.cloneNode(true)));
    if (slot.denied > 0) chart.append(svg("rect", { x, y: y(slot.denied), width: w, height: y(0) - y(slot.denied), class: "bar-bad" }, title));
  });
  const last = slots.length - 1;
  const labels = [[0, "start"], [Math.floor(last / 2), "middle"], [last, "end"]];
  for (const [i, anchor] of labels) {
    if (!slots[i] || (i === Math.floor(last / 2) && (i === 0 || i === last))) continue;
    const x = anchor === "start" ? pad.l : anchor === "end" ? width - pad.r : pad.l + i * barW + barW / 2;
    chart.append(svg("text", { x, y: height - 8, class: "axis", "text-anchor": anchor }, localTime(slots[i].start)));
  }
  return chart;
}

function barList(title, counts, tone) {
  const max = Math.max(1, ...counts.map((c) => c.count));
  const list = counts.length === 0 ? el("p", { class: "empty", text: "None in this period." })
    : el("ul", { class: "bars" }, counts.map((c) => el("li", {},
      el("span", { class: "bar-label", title: c.key, text: c.key }),
      svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "bar-track" },
        svg("rect", { x: 0, y: 0, width: Math.max(1, (c.count / max) * 100), height: 10, class: tone })),
      el("span", { class: "bar-count", text: String(c.count) }))));
  return el("section", { class: "card" }, el("h2", { text: title }), list);
}

async function overview(view) {
  const params = new URLSearchParams(location.search);
  const since = params.get("since") || "24h";
  const picker = el("div", { class: "segmented" }, ["1h", "24h", "7d", "30d"].map((s) =>
    el("a", { href: `/ui/overview?since=${s}`, class: s === since ? "active" : null, text: s })));
  view.append(el("div", { class: "page-head" }, el("h1", { text: "Overview" }), picker));
  const body = await api(`/ui/api/overview?since=${encodeURIComponent(since)}`);
  const s = body.stats;
  const rate = s.calls ? `${Math.round((s.calls_denied / s.calls) * 100)}%` : "–";
  view.append(el("div", { class: "stats" },
    stat("calls", s.calls), stat("denied", s.calls_denied, s.calls_denied ? "bad" : ""), stat("denial rate", rate), stat("log entries", s.entries)));
  view.append(el("section", { class: "card" }, el("h2", { text: "Calls over time" }),
    el("p", { class: "legend" }, el("span", { class: "key ok" }), " allowed ", el("span", { class: "key bad" }), " denied"),
    activityChart(body.activity, body.since, body.until)));
  view.append(el("div", { class: "grid3" },
    barList("Denials by reason", s.denials_by_reason, "bar-bad"),
    barList("Top tools", s.top_tools, "bar-ok"),
    barList("Top callers", s.top_callers, "bar-ok")));
}

// ---------------------------------------------------------------- integrity

function verifyResult(report) {
  const ok = report.intact;
  const box = el("section", { class: `card callout ${ok ? "good" : "bad"}`, id: "verify-result" },
    el("h2", {}, ok ? "Intact" : "FAILED", " ", badge(ok ? "ok" : "denied")),
    el("dl", { class: "facts" },
      fact("Entries", String(report.entries)),
      fact("Root", report.root, "mono"),
      fact("Checkpoints", `${report.checkpoints} stored, ${report.signed_checkpoints} signed`),
      fact("Signatures", report.signatures_checked ? "checked with the gateway's key" : "NOT checked (no key configured)"),
      report.uncovered ? fact("Not yet covered", `entries ${report.uncovered[0]}–${report.uncovered[1]} come after the last checkpoint`) : null,
      fact("Run", `by ${report.ran_by} at ${localTime(report.ran_at)}`)));
  for (const w of report.warnings) box.append(el("p", { class: "warn-text", text: `Warning: ${w}` }));
  if (report.problems.length) {
    box.append(el("h3", { text: "Problems" }), el("ul", {}, report.problems.map((p) =>
      el("li", { text: `seq ${p.seq ?? "?"}: ${p.what}` }))));
  }
  return box;
}

async function integrity(view) {
  view.append(el("div", { class: "page-head" }, el("h1", { text: "Integrity" })));
  const body = await api("/ui/api/integrity");
  const cp = body.checkpoint;
  const facts = el("dl", { class: "facts" },
    fact("Audit log", body.log, "mono"),
    fact("Entries", String(body.entries)),
    fact("Entries since the checkpoint", String(body.entries_since_checkpoint)),
    fact("Checkpoint key", body.key ? `${body.key.name}+${body.key.key_id}` : "none: checkpoints are unsigned", "mono"));
  view.append(el("section", { class: "card" }, el("h2", { text: "The log" }), facts));
  if (cp) {
    view.append(el("section", { class: "card" }, el("h2", { text: "Latest checkpoint" }),
      el("dl", { class: "facts" },
        fact("Origin", cp.origin),
        fact("Tree size", String(cp.size)),
        fact("Root hash", cp.root, "mono"),
        fact("Signed by", cp.signatures.length ? cp.signatures.map((s) => `${s.name}+${s.key_id}${s.by_the_gateway_key ? " ✓ gateway key" : ""}`).join(", ") : "unsigned", "mono")),
      el("details", {}, el("summary", { text: "The checkpoint note" }), el("pre", { class: "note", text: cp.note }))));
  } else {
    view.append(el("p", { class: "empty", text: "No checkpoint yet: the gateway writes one every N entries, every T seconds and at shutdown." }));
  }
  const result = el("div", { id: "verify-slot" });
  const button = el("button", { type: "button", id: "verify", text: "Verify the log now" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Verifying…";
    try {
      const headers = session.csrf_token ? { "X-CSRF-Token": session.csrf_token } : {};
      const report = await api("/ui/api/verify", { method: "POST", headers });
      result.replaceChildren(verifyResult(report));
      showError("");
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = false;
      button.textContent = "Verify the log now";
    }
  });
  view.append(el("section", { class: "card" }, el("h2", { text: "Verify" }),
    el("p", { class: "muted", text: "Recomputes every entry's hash and the Merkle tree, and checks each checkpoint and its signature, as `gatehouse audit verify` does." }),
    button), result);
}

// ---------------------------------------------------------------- approvals

const SCOPES = [["once", "once"], ["session", "for this session"], ["10", "for 10 minutes"], ["60", "for 60 minutes"]];

// An operator's answer to one waiting question: a scope, Approve, Deny.
function answerControls(question, reload) {
  const scope = el("select", { class: "scope", "aria-label": `what approving ${question.id} covers` },
    SCOPES.map(([value, label]) => el("option", { value, text: label })));
  const post = async (body) => {
    const headers = { "Content-Type": "application/json" };
    if (session.csrf_token) headers["X-CSRF-Token"] = session.csrf_token;
    try {
      await api(`/ui/api/approvals/${encodeURIComponent(question.id)}`, { method: "POST", headers, body: JSON.stringify(body) });
      showError("");
    } catch (error) {
      showError(error.message);
    }
    await reload();
  };
  const approve = el("button", { type: "button", class: "approve", text: "Approve" });
  approve.addEventListener("click", () => post({ decision: "approve", for: scope.value }));
  const deny = el("button", { type: "button", class: "deny secondary", text: "Deny" });
  deny.addEventListener("click", () => post({ decision: "deny" }));
  return el("div", { class: "actions" }, scope, approve, deny);
}

function approvalsTable(questions, operator, reload) {
  if (questions.length === 0) return el("p", { class: "empty", text: "No question is waiting for an answer." });
  const rows = questions.map((q) => el("tr", { "data-question": q.id },
    el("td", { class: "time", title: q.asked, text: localTime(q.asked) }),
    el("td", { class: "caller", text: q.principal }),
    el("td", { class: "tool-name", text: q.tool }),
    el("td", {}, el("span", { class: "phase", text: q.phase })),
    el("td", { class: "action mono", text: q.action }),
    el("td", { class: "reason-wrap", text: q.messages.join("; ") }),
    el("td", {}, q.status === "pending" && operator
      ? answerControls(q, reload)
      : [badge(q.status), q.answered_by ? el("div", { class: "small muted", text: `by ${q.answered_by}${q.scope ? ` (${q.scope})` : ""}` }) : null]),
  ));
  return el("table", { class: "calls" },
    el("thead", {}, el("tr", {}, ["Asked", "Caller", "Tool", "Phase", "Action", "Why", operator ? "Answer" : "Status"]
      .map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

async function approvals(view) {
  const operator = session.role === "operator";
  const all = el("input", { type: "checkbox", id: "all-questions" });
  const slot = el("div", { id: "questions" });
  const load = async () => {
    const body = await api(`/ui/api/approvals${all.checked ? "?all=1" : ""}`);
    // A poll must not pull the controls from under an operator choosing a scope.
    if (slot.contains(document.activeElement) && document.activeElement.tagName === "SELECT") return;
    slot.replaceChildren(approvalsTable(body.questions, operator, load));
  };
  all.addEventListener("change", () => load().catch((error) => showError(error.message)));
  view.append(
    el("div", { class: "page-head" },
      el("h1", { text: "Approvals" }),
      el("label", { class: "toggle", for: "all-questions" }, all, " Answered and expired too")),
    el("p", { class: "muted", text: operator
      ? "Questions a policy's ask put to a person. An answer here reaches the waiting call within a second; a question nobody could be asked lets the caller's next identical call through once approved."
      : "Questions a policy's ask put to a person. Only the operators [ui] names may answer them." }),
    slot);
  await load();
  setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 2000);
}

// ---------------------------------------------------------------- start

async function start() {
  const view = document.getElementById("view");
  try {
    session = await api("/ui/api/session");
  } catch (error) {
    showError(error.message);
    return;
  }
  document.getElementById("principal").textContent = session.principal;
  document.getElementById("role").textContent = session.role;
  const logout = document.getElementById("logout");
  if (session.csrf_token) {
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      await api("/ui/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf_token } }).catch(() => {});
      location.assign("/ui/");
    });
  }
  const path = location.pathname;
  const pages = { "/ui/overview": "overview", "/ui/integrity": "integrity", "/ui/approvals": "approvals" };
  const page = path.startsWith("/ui/calls/") ? "story" : pages[path] || "timeline";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page || (page === "story" && link.dataset.page === "timeline")) link.classList.add("active");
  }
  try {
    if (page === "story") await story(view, decodeURIComponent(path.slice("/ui/calls/".length)));
    else if (page === "overview") await overview(view);
    else if (page === "integrity") await integrity(view);
    else if (page === "approvals") await approvals(view);
    else await timeline(view);
  } catch (error) {
    showError(error.message);
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
