// Separation and geofence alerts on the map, geofences drawn on it and created from it.
//
// Reads the features app.js receives (accord.listeners, accord.items): an "alert" field makes
// an entry of the alert list (newest first; Acknowledge greys it and stops its highlight; its
// cancel removes it). Acknowledgements are the server's (POST/GET /web/alerts/acks), so every
// browser of the server, and of every node of a cluster, shows an alert acknowledged once one
// operator did; the list is read again every ACKS_POLL_MS, a "shape" field draws a conflict zone
// (red circle) or a geofence (outline, light fill, name label). "Draw geofence" collects
// clicked vertices and sends {"op": "fence", name, trigger, points: [[lat, lon], ...]}.
// Everything from the server is put into the page as text (textContent), never as markup.
"use strict";
import * as maplibregl from "./vendor/maplibre-gl.mjs";

const ACKS_URL = "/web/alerts/acks";
const ACKS_POLL_MS = 2000;
const DRAW_INTERVAL_MS = 500; // the pair rings follow their tracks' positions
const STALE_REMOVE_MS = 60_000; // an alert not refreshed is removed this long after its stale
const EARTH_RADIUS_M = 6371008.8;
const MAX_VERTICES = 200;
const MAX_ALERTS_SHOWN = 200;
const EMPTY = { type: "FeatureCollection", features: [] };

const accord = window.accord;
const state = {
  alerts: new Map(), // uid -> {uid, kind, text, level, time, stale, partner, pair, origin}
  shapes: new Map(), // uid -> {uid, lat, lon, shape, fence, name}
  acked: new Set(), // uids the server says are acknowledged (and ours not yet confirmed)
  sending: new Set(), // acknowledgements posted and not yet in a list read back
  draft: null, // [[lon, lat], ...] while a fence is drawn
  dirty: true,
  labels: new Map(), // uid -> maplibregl.Marker of a fence's name
};
accord.alerts = state;

async function readAcks() {
  try {
    const response = await fetch(ACKS_URL, { credentials: "same-origin" });
    if (!response.ok) return;
    const body = await response.json();
    const uids = new Set((Array.isArray(body.acks) ? body.acks : []).map((a) => a && a.uid).filter((u) => typeof u === "string"));
    for (const uid of uids) state.sending.delete(uid);
    for (const uid of state.sending) uids.add(uid);
    if (uids.size !== state.acked.size || [...uids].some((u) => !state.acked.has(u))) {
      state.acked = uids;
      state.dirty = true;
    }
  } catch { /* the server is away: the next poll tries again */ }
}

async function sendAck(uid) {
  const csrf = (accord.config && accord.config.csrf) || "";
  try {
    const response = await fetch(ACKS_URL, {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-accord-csrf": csrf },
      body: JSON.stringify({ uid }),
    });
    if (!response.ok) state.sending.delete(uid);
  } catch { state.sending.delete(uid); }
  await readAcks();
}

function serverNow() { return Date.now() + (accord.skewMs || 0); }

function circle(lat, lon, radius, steps = 64) {
  const ring = [];
  const p1 = lat * Math.PI / 180, l1 = lon * Math.PI / 180, d = radius / EARTH_RADIUS_M;
  for (let i = 0; i <= steps; i++) {
    const t = 2 * Math.PI * i / steps;
    const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(t));
    const l2 = l1 + Math.atan2(Math.sin(t) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
    ring.push([((l2 * 180 / Math.PI) + 540) % 360 - 180, p2 * 180 / Math.PI]);
  }
  return ring;
}

// -- what the feed brings ----------------------------------------------------------------------
function take(message) {
  if (message.op === "delete") {
    const shape = state.shapes.delete(message.uid), alert = state.alerts.delete(message.uid);
    if (shape || alert) state.dirty = true;
    return;
  }
  if (message.op !== "put") return;
  if (message.alert) {
    const a = message.alert;
    if (a.cancel) {
      state.alerts.delete(message.uid);
      state.acked.delete(message.uid); // a later conflict of the pair is new (the server forgets it too)
      state.sending.delete(message.uid);
    } else {
      state.alerts.set(message.uid, {
        uid: message.uid, kind: a.kind, text: a.text || message.callsign || message.uid,
        level: a.level, time: message.time, stale: message.stale, partner: a.partner,
        origin: a.origin, pair: Array.isArray(a.pair) ? a.pair : [],
      });
    }
    state.dirty = true;
  }
  if (message.shape) {
    state.shapes.set(message.uid, {
      uid: message.uid, lat: message.lat, lon: message.lon, shape: message.shape,
      fence: message.fence || null, name: (message.fence && message.fence.name) || message.callsign,
    });
    state.dirty = true;
  } else if (state.shapes.delete(message.uid)) state.dirty = true;
}

// -- the alert list ----------------------------------------------------------------------------
function utc(ms) { return new Date(ms).toISOString().slice(11, 19) + "Z"; }

function acknowledge(uid) {
  state.acked.add(uid);
  state.sending.add(uid);
  state.dirty = true;
  draw();
  sendAck(uid);
}

function renderList() {
  const list = document.getElementById("alert-list");
  const alerts = [...state.alerts.values()].sort((x, y) => y.time - x.time).slice(0, MAX_ALERTS_SHOWN);
  const rows = [];
  for (const alert of alerts) {
    const acked = state.acked.has(alert.uid);
    const li = document.createElement("li");
    li.className = `alert ${alert.kind}${acked ? " acked" : ""}`;
    li.dataset.uid = alert.uid;
    li.dataset.level = alert.level || "";
    const text = document.createElement("div");
    text.className = "alert-text";
    text.textContent = alert.text;
    const meta = document.createElement("div");
    meta.className = "alert-meta";
    const parts = [alert.level || alert.kind, utc(alert.time)];
    if (alert.partner) parts.push(`partner ${alert.partner}`);
    meta.textContent = parts.join(" · ");
    li.append(text, meta);
    if (!acked) {
      const button = document.createElement("button");
      button.className = "ack";
      button.textContent = "Acknowledge";
      button.addEventListener("click", () => acknowledge(alert.uid));
      li.append(button);
    }
    rows.push(li);
  }
  list.replaceChildren(...rows);
  const active = alerts.filter((a) => !state.acked.has(a.uid)).length;
  document.getElementById("alerts-count").textContent = active ? String(active) : "";
}

// -- the map -----------------------------------------------------------------------------------
function addLayers(map) {
  for (const name of ["fences", "alert-zones", "alert-rings", "fence-draft"]) map.addSource(name, { type: "geojson", data: EMPTY });
  map.addLayer({ id: "fences", type: "fill", source: "fences", paint: { "fill-color": "#ffb300", "fill-opacity": 0.12 } });
  map.addLayer({ id: "fences-edge", type: "line", source: "fences", paint: { "line-color": "#ff8f00", "line-width": 2 } });
  map.addLayer({ id: "alert-zones", type: "fill", source: "alert-zones", paint: { "fill-color": "#ff1744", "fill-opacity": 0.2 } });
  map.addLayer({ id: "alert-zones-edge", type: "line", source: "alert-zones", paint: { "line-color": "#d50000", "line-width": 2.5 } });
  map.addLayer({ id: "alert-rings", type: "circle", source: "alert-rings", paint: { "circle-radius": 20, "circle-opacity": 0, "circle-stroke-color": "#ff1744", "circle-stroke-width": 3 } });
  map.addLayer({ id: "fence-draft-line", type: "line", source: "fence-draft", paint: { "line-color": "#00e5ff", "line-width": 2, "line-dasharray": [2, 1] } });
  map.addLayer({ id: "fence-draft-points", type: "circle", source: "fence-draft", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-radius": 4, "circle-color": "#00e5ff" } });
}

function shapeRing(item) {
  if (item.shape.polygon) return item.shape.polygon;
  if (item.shape.circle_m > 0) return circle(item.lat, item.lon, item.shape.circle_m);
  return null;
}

function label(item, ring) {
  let marker = state.labels.get(item.uid);
  if (!marker) {
    const el = document.createElement("div");
    el.className = "fence-label";
    marker = new maplibregl.Marker({ element: el });
    state.labels.set(item.uid, marker);
  }
  marker.getElement().textContent = item.name || "";
  const [lon, lat] = item.shape.polygon
    ? [ring.slice(0, -1).reduce((s, p) => s + p[0], 0) / (ring.length - 1), ring.slice(0, -1).reduce((s, p) => s + p[1], 0) / (ring.length - 1)]
    : [item.lon, item.lat];
  marker.setLngLat([lon, lat]);
  if (!marker._map) marker.addTo(accord.map);
}

function drawMap() {
  const map = accord.map;
  if (!map || !map.getSource("alert-zones")) return;
  const zones = [], fences = [], rings = [];
  const shown = new Set();
  for (const item of state.shapes.values()) {
    const ring = shapeRing(item);
    if (!ring) continue;
    const feature = { type: "Feature", geometry: { type: "Polygon", coordinates: [ring] }, properties: { uid: item.uid } };
    if (item.shape.conflict) zones.push(feature);
    else if (item.fence) {
      fences.push({ ...feature, properties: { uid: item.uid, name: item.name || "", trigger: item.fence.trigger } });
      label(item, ring);
      shown.add(item.uid);
    }
  }
  for (const [uid, marker] of state.labels) {
    if (!shown.has(uid)) { marker.remove(); state.labels.delete(uid); }
  }
  const ringed = new Set();
  for (const alert of state.alerts.values()) {
    if (state.acked.has(alert.uid)) continue;
    for (const uid of alert.pair) {
      const track = accord.items.get(uid);
      if (!track || ringed.has(uid)) continue;
      ringed.add(uid);
      rings.push({ type: "Feature", geometry: { type: "Point", coordinates: [track.lon, track.lat] }, properties: { uid, alert: alert.uid } });
    }
  }
  map.getSource("alert-zones").setData({ type: "FeatureCollection", features: zones });
  map.getSource("fences").setData({ type: "FeatureCollection", features: fences });
  map.getSource("alert-rings").setData({ type: "FeatureCollection", features: rings });
  const draft = state.draft || [];
  const draftFeatures = draft.map((p) => ({ type: "Feature", geometry: { type: "Point", coordinates: p }, properties: {} }));
  if (draft.length > 1) draftFeatures.push({ type: "Feature", geometry: { type: "LineString", coordinates: draft.length > 2 ? [...draft, draft[0]] : draft }, properties: {} });
  map.getSource("fence-draft").setData({ type: "FeatureCollection", features: draftFeatures });
}

function expire() {
  const now = serverNow();
  for (const [uid, alert] of state.alerts) {
    if (alert.stale + STALE_REMOVE_MS < now) { state.alerts.delete(uid); state.dirty = true; }
  }
}

function draw() {
  expire();
  if (state.dirty) { renderList(); state.dirty = false; }
  drawMap();
}

// -- drawing a geofence ------------------------------------------------------------------------
function setDrawing(on) {
  const map = accord.map;
  state.draft = on ? [] : null;
  document.getElementById("fence-form").hidden = !on;
  document.getElementById("fence-draw").hidden = on;
  document.getElementById("fence-error").textContent = "";
  if (map) {
    if (on) map.doubleClickZoom.disable(); else map.doubleClickZoom.enable();
    map.getCanvas().style.cursor = on ? "crosshair" : "";
  }
  drawMap();
}

function finishFence(event) {
  event.preventDefault();
  const error = document.getElementById("fence-error");
  const name = document.getElementById("fence-name").value.trim();
  const trigger = document.getElementById("fence-trigger").value;
  const draft = state.draft || [];
  if (draft.length < 3) { error.textContent = "click at least 3 points on the map"; return; }
  if (!name) { error.textContent = "give the fence a name"; return; }
  if (!accord.ws || accord.ws.readyState !== WebSocket.OPEN) { error.textContent = "not connected"; return; }
  const points = draft.map(([lon, lat]) => [lat, lon]);
  accord.ws.send(JSON.stringify({ op: "fence", name, trigger, points }));
  // The hub does not hand a session its own events back: the page draws what it sent.
  state.shapes.set(`mine.${Date.now()}`, {
    uid: `mine.${Date.now()}`, lat: points[0][0], lon: points[0][1],
    shape: { polygon: [...draft, draft[0]] }, fence: { trigger, name }, name,
  });
  state.dirty = true;
  document.getElementById("fence-name").value = "";
  setDrawing(false);
}

function mount() {
  const panel = document.createElement("aside");
  panel.id = "alerts";
  panel.className = "alerts";
  const title = document.createElement("h2");
  title.append("Alerts ");
  const count = document.createElement("span");
  count.id = "alerts-count";
  count.className = "alerts-count";
  title.append(count);
  const drawButton = document.createElement("button");
  drawButton.id = "fence-draw";
  drawButton.textContent = "Draw geofence";
  const form = document.createElement("form");
  form.id = "fence-form";
  form.hidden = true;
  const hint = document.createElement("div");
  hint.className = "fence-hint";
  hint.textContent = "Click the vertices on the map, then name it and finish.";
  const name = document.createElement("input");
  name.id = "fence-name";
  name.maxLength = 80;
  name.placeholder = "Name";
  name.autocomplete = "off";
  const trigger = document.createElement("select");
  trigger.id = "fence-trigger";
  for (const value of ["Entry", "Exit", "Both"]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    trigger.append(option);
  }
  const finish = document.createElement("button");
  finish.id = "fence-finish";
  finish.type = "submit";
  finish.textContent = "Finish";
  const cancel = document.createElement("button");
  cancel.id = "fence-cancel";
  cancel.type = "button";
  cancel.textContent = "Cancel";
  const error = document.createElement("div");
  error.id = "fence-error";
  error.className = "error";
  form.append(hint, name, trigger, finish, cancel, error);
  const list = document.createElement("ol");
  list.id = "alert-list";
  panel.append(title, drawButton, form, list);
  document.getElementById("page-map").append(panel);
  drawButton.addEventListener("click", () => setDrawing(true));
  cancel.addEventListener("click", () => setDrawing(false));
  form.addEventListener("submit", finishFence);
}

function start() {
  mount();
  accord.listeners = accord.listeners || [];
  accord.listeners.push(take);
  for (const item of accord.items.values()) take(item); // what came before this script ran
  const whenReady = setInterval(() => {
    const map = accord.map;
    if (!map || !accord.ready) return;
    clearInterval(whenReady);
    addLayers(map);
    map.on("click", (e) => {
      if (!state.draft || state.draft.length >= MAX_VERTICES) return;
      state.draft.push([e.lngLat.lng, e.lngLat.lat]);
      drawMap();
    });
    state.dirty = true;
    draw();
    setInterval(draw, DRAW_INTERVAL_MS);
  }, 100);
  readAcks();
  setInterval(readAcks, ACKS_POLL_MS);
  renderList();
}

start();
