// The admin page: every call carries the admin token; every value is shown as text, never as
// markup (user ids and reasons come from chat platforms and admins).
"use strict";

const $ = (selector) => document.querySelector(selector);
const status = $("#status");
let openUser = null;

function say(words, isError = false) {
  status.textContent = words;
  status.className = isError ? "error" : "";
}

async function api(path, body) {
  const options = { headers: { Authorization: "Bearer " + sessionStorage.getItem("heartline-admin") } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: "The server's answer was not readable." }));
  if (response.status === 401) signOut();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const when = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "-");

// An audit row's why: the admin's reason, and what the action set (a mute's end, a limit).
function why(entry) {
  const details = Object.entries(entry.details || {}).map(([name, value]) =>
    `${name} ${name === "until" ? when(value) : value}`);
  return [entry.reason, ...details].filter(Boolean).join("; ") || "-";
}

function row(cells, onClick) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "-";
    tr.append(td);
  }
  if (onClick) { tr.className = "user-row"; tr.addEventListener("click", onClick); }
  return tr;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

function fill(table, rows, empty) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
  if (!rows.length) body.append(row([empty]));
}

async function act(run) {
  try { const data = await run(); if (data && data.words) say(data.words); }
  catch (error) { say(error.message, true); }
}

async function showFlagged() {
  const all = $("#all-flags").checked ? "?all=1" : "";
  const { result } = await api("/api/admin/flagged" + all);
  fill($("#flagged table"), result.map((flag) => {
    const scores = Object.entries(flag.scores).map(([name, value]) => `${name} ${value.toFixed(2)}`).join(", ");
    const verdicts = document.createElement("span");
    if (flag.status === "open") {
      for (const verdict of ["approve", "dismiss"]) {
        verdicts.append(button(verdict[0].toUpperCase() + verdict.slice(1), () => act(async () => {
          const done = await api(`/api/admin/flagged/${flag.id}`, { verdict });
          await showFlagged();
          return done;
        })));
      }
    }
    return row([String(flag.id), when(flag.at), flag.user, flag.kind, flag.reasons.join(", "),
                scores || "-", flag.status, verdicts], () => showUser(flag.user));
  }), "No open flags.");
}

function restriction(user) {
  if (user.banned) return "banned";
  return user.muted_until ? "muted until " + when(user.muted_until) : "-";
}

async function showUsers() {
  const { result } = await api("/api/admin/users");
  fill($("#users table"), result.map((user) => row(
    [user.user, String(user.messages), when(user.last_active), String(user.warnings),
     String(user.open_flags), restriction(user), user.rate_limit || "default"],
    () => showUser(user.user))), "No users yet.");
}

async function showUser(key) {
  const { result, history } = await api("/api/admin/users/" + encodeURIComponent(key));
  openUser = key;
  $("#user-title").textContent = key;
  const facts = result.known
    ? [["Messages", result.messages], ["Last active (UTC)", when(result.last_active)],
       ["Warnings", result.warnings], ["Open flags", result.open_flags], ["Restriction", restriction(result)],
       ["Voice registered", result.voice_registered ? "yes" : "no"], ["Limit", result.rate_limit || "default"],
       ["Today", `${result.today.turns} messages, ${Math.round(result.today.voice_seconds)} s of voice, `
                 + `${result.today.registrations} voice registrations`],
       ["Since (UTC)", when(result.since)]]
    : [["Known", "not yet: actions still apply when they write"]];
  $("#user-facts").replaceChildren(...facts.flatMap(([name, value]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name; dd.textContent = String(value);
    return [dt, dd];
  }));
  fill($("#history"), history.map((entry) => row([when(entry.at), entry.actor, entry.action, why(entry)])),
       "No admin actions on this user yet.");
  show("user");
}

async function showAudit() {
  const { result } = await api("/api/admin/audit");
  fill($("#audit table"), result.map((entry) => row(
    [when(entry.at), entry.actor, entry.action, entry.target, why(entry)])), "No admin actions yet.");
}

const views = { flagged: showFlagged, users: showUsers, audit: showAudit };

function show(name) {
  for (const section of document.querySelectorAll("section")) section.hidden = section.id !== name;
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.tab === name || (name === "user" && tab.dataset.tab === "users")));
  }
}

async function open(name) {
  try { await views[name](); show(name); }
  catch (error) { say(error.message, true); }
}

function signOut() {
  sessionStorage.removeItem("heartline-admin");
  $("#tabs").hidden = true;
  for (const section of document.querySelectorAll("section")) section.hidden = true;
  $("#sign-in").hidden = false;
}

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem("heartline-admin", $("#token").value);
  $("#token").value = "";
  try {
    await showFlagged();
    $("#sign-in").hidden = true;
    $("#tabs").hidden = false;
    show("flagged");
    say("");
  } catch (error) { say(error.message, true); }
});

for (const tab of document.querySelectorAll("[data-tab]")) tab.addEventListener("click", () => open(tab.dataset.tab));
$("#sign-out").addEventListener("click", () => { signOut(); say("Signed out."); });
$("#all-flags").addEventListener("change", () => open("flagged"));
$("#back").addEventListener("click", () => open("users"));
$("#find-user").addEventListener("submit", (event) => {
  event.preventDefault();
  act(() => showUser($("#user-key").value.trim()));
});

for (const control of document.querySelectorAll("#act [data-action]")) {
  control.addEventListener("click", () => act(async () => {
    const action = control.dataset.action;
    if (action === "forget" && !confirm(`Delete everything ${openUser} gave? This cannot be undone.`)) return null;
    const done = await api("/api/admin/users/" + encodeURIComponent(openUser), {
      action, reason: $("#reason").value, duration: $("#duration").value, rate: $("#rate").value,
    });
    $("#reason").value = "";
    await showUser(openUser);
    return done;
  }));
}

if (sessionStorage.getItem("heartline-admin")) {
  showFlagged().then(() => { $("#sign-in").hidden = true; $("#tabs").hidden = false; show("flagged"); })
    .catch((error) => say(error.message, true));
}
