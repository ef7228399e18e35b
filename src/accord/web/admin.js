// Accord's admin pages, over the admin API (/api/admin/*, OpenAPI at /api/admin/docs).
//
// Added to the shell's nav only when the admin API answers this browser: an administrator's
// client certificate on 8443, or the web session of a user in admin_users on 8446; anyone
// else gets 401/403 there and no admin nav.
// Everything from the server is put into the page as text (textContent), never as markup.
// Every state-changing request carries X-Accord-CSRF: the session's CSRF token from
// /web/config.json on 8446 (the admin API checks it there), any value on 8443 (where it
// only has to be present); the admin API also refuses a request from another origin.
"use strict";

const REFRESH_MS = 2000;
const CHART_POINTS = 60; // two minutes of samples at REFRESH_MS
const accord = window.accord;
const admin = { last: {}, errors: [], samples: [], csrf: "1" };
window.accordAdmin = admin;

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Accord-CSRF": admin.csrf } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(path, init);
  if (!answer.ok) {
    let message = `${answer.status}`;
    try { message = (await answer.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return answer;
}

async function json(method, path, body) {
  return (await api(method, path, body)).json();
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "onclick" || key === "onsubmit") node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function table(columns, rows, actions) {
  const head = el("tr", {}, ...columns.map(([title]) => el("th", { text: title })), actions ? el("th") : null);
  const body = rows.map((row) =>
    el("tr", { "data-key": String(row.__key ?? "") },
      ...columns.map(([, get]) => el("td", { text: String(get(row) ?? "") })),
      actions ? el("td", {}, ...actions(row)) : null));
  return el("table", { class: "admin-table" }, el("thead", {}, head), el("tbody", {}, ...body));
}

function button(label, action, title) {
  return el("button", {
    text: label,
    title: title || label,
    onclick: async (event) => {
      event.preventDefault();
      try { await action(); report(""); } catch (err) { report(err.message); }
    },
  });
}

function report(message) {
  for (const node of document.querySelectorAll(".admin-error")) node.textContent = message;
  if (message) admin.errors.push(message);
}

function groupsText(groups) {
  const both = groups.in.filter((g) => groups.out.includes(g));
  const onlyIn = groups.in.filter((g) => !groups.out.includes(g));
  const onlyOut = groups.out.filter((g) => !groups.in.includes(g));
  const parts = [both.join(",") || "-"];
  if (onlyIn.length) parts.push(`in: ${onlyIn.join(",")}`);
  if (onlyOut.length) parts.push(`out: ${onlyOut.join(",")}`);
  return parts.join(" ");
}

function names(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`;
}

// A page: a title, an error line, controls, and a body refreshed every REFRESH_MS.
function page(id, title, render, controls) {
  accord.addPage(id, title, (section) => {
    const body = el("div", { class: "admin-body" });
    section.classList.add("admin-page");
    section.append(el("h2", { text: title }), el("p", { class: "admin-error" }),
      controls ? controls(() => refresh()) : el("span"), body);
    let busy = false;
    async function refresh() {
      if (busy || section.hidden) return;
      busy = true;
      try { body.replaceChildren(await render(() => refresh())); } catch (err) { report(err.message); }
      busy = false;
    }
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
}

function clientsPage() {
  page("admin-clients", "Clients", async (again) => {
    const { clients } = await json("GET", "/api/admin/clients");
    admin.last.clients = clients;
    return table([
      ["Callsign", (c) => c.callsign || "-"],
      ["User", (c) => c.user || "-"],
      ["Device", (c) => [c.device.platform, c.device.version, c.device.device && `(${c.device.device})`].filter(Boolean).join(" ") || "-"],
      ["Address", (c) => `${c.address} ${c.listener}`],
      ["Since", (c) => new Date(c.connected_at).toLocaleTimeString()],
      ["Last report", (c) => ago(c.last_event_at)],
      ["In", (c) => c.events_in],
      ["Out", (c) => c.events_out],
      ["Drops", (c) => c.drops.malformed + c.drops.rate_limited + c.drops.queue_full],
    ], clients.map((c) => ({ ...c, __key: c.id })), (c) => [
      button("Disconnect", async () => { await api("DELETE", `/api/admin/clients/${c.id}`); again(); }),
    ]);
  });
}

function usersPage() {
  const qr = el("div", { class: "admin-qr" });
  page("admin-users", "Users and groups", async (again) => {
    const [{ users }, { groups }] = await Promise.all([json("GET", "/api/admin/users"), json("GET", "/api/admin/groups")]);
    admin.last.users = users;
    const userTable = table([
      ["User", (u) => u.name],
      ["Groups", (u) => groupsText(u.groups)],
      ["Sessions", (u) => u.sessions],
      ["Changed", (u) => u.updated_at ? new Date(u.updated_at).toLocaleString() : "-"],
    ], users.map((u) => ({ ...u, __key: u.name })), (u) => [
      button("Groups", async () => {
        const given = window.prompt(`Groups of ${u.name} (comma-separated, both ways)`, u.groups.in.join(","));
        if (given === null) return;
        await json("PUT", `/api/admin/users/${encodeURIComponent(u.name)}/groups`, { groups: names(given) });
        again();
      }, "set the user's groups (live sessions follow)"),
      button("Password", async () => {
        const given = window.prompt(`New password for ${u.name} (at least 8 characters)`);
        if (given === null) return;
        await json("PUT", `/api/admin/users/${encodeURIComponent(u.name)}/password`, { password: given });
      }),
      button("Package", async () => {
        const answer = await api("POST", `/api/admin/users/${encodeURIComponent(u.name)}/package`, { host: location.hostname });
        const link = el("a", { href: URL.createObjectURL(await answer.blob()), download: `${u.name}-${location.hostname}.zip` });
        document.body.appendChild(link); link.click(); link.remove();
      }, "download a connection package (a new client certificate)"),
      button("QR", async () => {
        const answer = await api("POST", `/api/admin/users/${encodeURIComponent(u.name)}/qr?format=png`, { host: location.hostname });
        const password = answer.headers.get("x-accord-password") || "";
        const image = el("img", { alt: `enrolment QR for ${u.name}`, src: URL.createObjectURL(await answer.blob()) });
        qr.replaceChildren(el("p", { text: `Scan in ATAK to enrol ${u.name}; one-time password: ${password}` }), image);
      }, "show the enrolment QR (sets a new one-time password)"),
      button("Remove", async () => {
        if (!window.confirm(`Remove ${u.name}? (revoke its certificates too)`)) return;
        await api("DELETE", `/api/admin/users/${encodeURIComponent(u.name)}`);
        again();
      }),
    ]);
    const groupTable = table([
      ["Group", (g) => g.name],
      ["Members in", (g) => g.members.in.join(", ")],
      ["Members out", (g) => g.members.out.join(", ")],
      ["Live sessions in/out", (g) => `${g.sessions.in}/${g.sessions.out}`],
    ], groups);
    return el("div", {}, userTable, el("h3", { text: "Groups" }), groupTable, qr);
  }, (again) => {
    const name = el("input", { placeholder: "name", id: "admin-user-name" });
    const password = el("input", { placeholder: "password", type: "password", id: "admin-user-password" });
    const groups = el("input", { placeholder: "groups, comma-separated", id: "admin-user-groups" });
    return el("form", { class: "admin-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await json("POST", "/api/admin/users", { name: name.value, password: password.value, groups: names(groups.value) });
        name.value = password.value = groups.value = "";
        report(""); again();
      } catch (err) { report(err.message); }
    } }, name, password, groups, el("button", { type: "submit", text: "Add user" }));
  });
}

function certificatesPage() {
  page("admin-certificates", "Certificates", async (again) => {
    const { certificates } = await json("GET", "/api/admin/certificates");
    admin.last.certificates = certificates;
    return table([
      ["Name", (c) => c.name],
      ["Kind", (c) => c.kind],
      ["Serial", (c) => c.serial],
      ["Expires", (c) => c.not_after.slice(0, 10)],
      ["State", (c) => c.revoked ? `revoked ${c.revoked_at.slice(0, 19)}` : "valid"],
    ], certificates.map((c) => ({ ...c, __key: c.serial })), (c) => c.revoked || c.kind !== "client" ? [] : [
      button("Revoke", async () => {
        if (!window.confirm(`Revoke ${c.name}'s certificate ${c.serial}? Its device is disconnected.`)) return;
        await json("DELETE", `/api/admin/certificates/${c.serial}`);
        again();
      }),
    ]);
  });
}

function partnersPage() {
  const verified = el("div", { class: "admin-verify" });
  page("admin-partners", "Partners", async () => {
    const { partners } = await json("GET", "/api/admin/partners");
    admin.last.partners = partners;
    const rows = [];
    for (const p of partners) {
      const links = p.links.map((l) => `${l.direction} ${l.state} since ${new Date(l.since).toLocaleTimeString()}${l.last_error ? ` (${l.last_error})` : ""}`).join("; ") || "no link";
      const traffic = p.links.map((l) => `in ${l.events_in}, out ${l.events_out}, withheld ${l.withheld}, dropped ${l.dropped}`).join("; ");
      const decisions = Object.entries(p.policy).map(([rule, outcomes]) => `${rule}: ${Object.entries(outcomes).map(([o, n]) => `${o} ${n}`).join(", ")}`).join("; ") || "-";
      const ledger = p.ledger.map((l) => `${l.direction} ${l.entries} entries, lag ${l.cosignature_lag}`).join("; ") || "-";
      rows.push({ __key: p.partner, partner: p.partner, links, traffic, decisions, ledger });
    }
    return table([
      ["Partner", (r) => r.partner], ["Link", (r) => r.links], ["Traffic", (r) => r.traffic],
      ["Decisions per rule", (r) => r.decisions], ["Ledger (cosignature lag)", (r) => r.ledger],
    ], rows, (r) => [
      button("Verify ledger", async () => {
        const result = await json("GET", `/api/admin/partners/${encodeURIComponent(r.partner)}/ledger`);
        verified.replaceChildren(...result.logs.map((l) => el("p", {
          text: `${r.partner} ${l.direction}: ${l.consistent ? `consistent, ${l.entries} entries, ${l.checkpoints} checkpoints (${l.cosigned} cosigned), ${l.receipts} receipts` : `INCONSISTENT: ${l.error}`}`,
        })));
      }),
    ]);
  }, () => verified);
}

function dronesPage() {
  page("admin-drones", "Drone feeds", async (again) => {
    const { feeds } = await json("GET", "/api/admin/drone-feeds");
    admin.last.feeds = feeds;
    return table([
      ["Feed", (f) => f.name], ["Kind", (f) => f.kind], ["Where", (f) => f.where],
      ["Vehicles (live)", (f) => `${f.vehicles} (${f.vehicles_live})`],
      ["Messages", (f) => Object.entries(f.counters).map(([k, n]) => `${k} ${n}`).join(", ")],
      ["Ad hoc", (f) => f.adhoc ? "yes" : "no"],
    ], feeds.map((f) => ({ ...f, __key: f.name })), (f) => [
      button("Remove", async () => { await api("DELETE", `/api/admin/drone-feeds/${encodeURIComponent(f.name)}`); again(); }),
    ]);
  }, (again) => {
    const name = el("input", { placeholder: "name" });
    const address = el("input", { placeholder: "udp listen address, e.g. 0.0.0.0:14560" });
    return el("form", { class: "admin-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await json("POST", "/api/admin/drone-feeds", { name: name.value, kind: "udp", address: address.value });
        name.value = address.value = ""; report(""); again();
      } catch (err) { report(err.message); }
    } }, name, address, el("button", { type: "submit", text: "Add UDP feed" }));
  });
}

function chart(title, values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 200 50");
  svg.setAttribute("class", "admin-chart");
  const max = Math.max(1, ...values);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => `${(i / (CHART_POINTS - 1)) * 200},${48 - (v / max) * 46}`).join(" "));
  svg.appendChild(line);
  const last = values.length ? values[values.length - 1] : 0;
  return el("figure", {}, el("figcaption", { text: `${title}: ${Math.round(last * 10) / 10} (max ${Math.round(max * 10) / 10})` }), svg);
}

function statusPage() {
  page("admin-status", "Status", async () => {
    const status = await json("GET", "/api/admin/status");
    admin.last.status = status;
    const now = Date.now();
    const prev = admin.samples[admin.samples.length - 1];
    const inTotal = status.listeners.reduce((n, l) => n + l.events_in, 0);
    const outTotal = status.listeners.reduce((n, l) => n + l.events_out, 0);
    const dt = prev ? (now - prev.t) / 1000 : 0;
    admin.samples.push({
      t: now, inTotal, outTotal, sessions: status.sessions,
      inRate: dt > 0 ? Math.max(0, (inTotal - prev.inTotal) / dt) : 0,
      outRate: dt > 0 ? Math.max(0, (outTotal - prev.outTotal) / dt) : 0,
      queued: status.queues.queued_events,
    });
    if (admin.samples.length > CHART_POINTS) admin.samples.shift();
    const series = (key) => admin.samples.map((s) => s[key]);
    const facts = el("dl", { class: "admin-facts" },
      el("dt", { text: "Server" }), el("dd", { text: `${status.server} ${status.version}, up ${Math.round(status.uptime_s)} s` }),
      el("dt", { text: "Listening" }), el("dd", { text: Object.entries(status.ports).map(([k, p]) => `${k} ${p}`).join(", ") }),
      el("dt", { text: "Store" }), el("dd", { text: status.store ? `${status.store.backend}, ${status.store.history_events ?? "?"} events` : "-" }),
      el("dt", { text: "Partners" }), el("dd", { text: status.federation.map((f) => `${f.partner} ${f.state}`).join(", ") || "-" }));
    return el("div", {}, facts, el("div", { class: "admin-charts" },
      chart("Sessions", series("sessions")), chart("Events in /s", series("inRate")),
      chart("Events out /s", series("outRate")), chart("Queued events", series("queued"))));
  });
}

async function start() {
  let answer;
  try {
    const config = await fetch("/web/config.json", { credentials: "same-origin" });
    if (config.ok) admin.csrf = (await config.json()).csrf || "1";
    answer = await fetch("/api/admin/status", { credentials: "same-origin" });
  } catch (_) {
    return; // no admin API here
  }
  admin.allowed = answer.ok;
  if (!answer.ok) return; // 401/403: not an administrator
  clientsPage();
  usersPage();
  certificatesPage();
  partnersPage();
  dronesPage();
  statusPage();
  admin.ready = true;
}

start();
