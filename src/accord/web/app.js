// Accord's web app: the shell (header, pages), the live map, chat and the history slider.
//
// Data from the server (callsigns, remarks, chat, partner names) is only ever put into the
// page as text (textContent, attribute values checked, canvas text): never as markup.
"use strict";
import * as maplibregl from "./vendor/maplibre-gl.mjs";
import { Picture, SOURCES, hasPosition } from "./tracks.js";

const STALE_REMOVE_MS = 60_000; // a stale track is faded, then removed this long after
// Map updates: four a second for a small picture, one a second past BUSY_ITEMS tracks (an
// update sends only the changed features, but MapLibre re-tiles the whole source for it;
// positions come once a second anyway).
const RENDER_INTERVAL_MS = 250;
const BUSY_RENDER_INTERVAL_MS = 1000;
const BUSY_ITEMS = 300;
const RECONNECT_MS = 2000;
const SAFE_LINK = /^(https?|rtsp|rtmp|srt|udp):\/\//i; // video links shown as links

const accord = {
  pages: new Map(),
  items: new Map(), // uid -> feature as the server sent it
  contacts: new Map(), // uid -> callsign, for direct messages
  me: null,
  config: null,
  skewMs: 0, // server clock - browser clock
  replay: null, // {events, start, end, t} while the history slider is used
  stats: { batches: 0, items: 0, chats: 0, renders: 0, images: 0, changed: 0, connected: false },
  map: null,
  selected: null,
  picture: new Picture(), // what the map shows of the live items, updated by what changed
  listeners: [], // functions other scripts (alerts.js) add: each is given every feed message
};
window.accord = accord;

// -- the shell: pages other parts (admin) add with accord.addPage ------------------------------
accord.addPage = function addPage(id, title, mount) {
  const nav = document.getElementById("nav");
  const link = document.createElement("a");
  link.textContent = title;
  link.dataset.page = id;
  link.addEventListener("click", () => showPage(id));
  nav.appendChild(link);
  let section = document.getElementById(`page-${id}`);
  if (!section) {
    section = document.createElement("section");
    section.id = `page-${id}`;
    section.className = "page";
    section.hidden = true;
    document.getElementById("pages").appendChild(section);
  }
  accord.pages.set(id, { title, section, mount, mounted: false });
};

function showPage(id) {
  for (const [pid, page] of accord.pages) {
    page.section.hidden = pid !== id;
    if (pid === id && !page.mounted && page.mount) {
      page.mount(page.section, accord);
      page.mounted = true;
    }
  }
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === id);
  if (id === "map" && accord.map) accord.map.resize();
}

function serverNow() {
  return Date.now() + accord.skewMs;
}

// -- symbols: milsymbol for atoms, a labelled dot otherwise (no glyphs needed) -----------------
const MAX_LABEL_CHARS = 32; // a longer label is cut on the map (the panel shows it whole)
function labelOf(item) {
  const org = item.release && item.release.organisation;
  return org ? `${item.callsign || item.uid} [${org}]` : item.callsign || "";
}

function shortLabel(item) {
  const label = labelOf(item);
  return label.length > MAX_LABEL_CHARS ? `${label.slice(0, MAX_LABEL_CHARS - 1)}…` : label;
}

// Images: a symbol is drawn once per SIDC and its label once per text, as two images side by
// side (small: MapLibre copies every image a tile uses into that tile's atlas at each update).
const LABEL_GAP_PX = 3;
const LABEL_HEIGHT_PX = 16;
const symbols = new Map(); // SIDC -> {canvas, anchor}: milsymbol draws each symbol once
function symbolOf(sidc) {
  let drawn = symbols.get(sidc);
  if (!drawn) {
    const symbol = new window.ms.Symbol(sidc, { size: 22 });
    drawn = { canvas: symbol.asCanvas(), anchor: symbol.getAnchor() };
    symbols.set(sidc, drawn);
  }
  return drawn;
}

function outlinedText(c, text, x, y) {
  c.font = "12px sans-serif";
  c.lineWidth = 3;
  c.strokeStyle = "rgba(0,0,0,.8)";
  c.strokeText(text, x, y);
  c.fillStyle = "#fff";
  c.fillText(text, x, y);
}

function textWidth(text) {
  const c = document.createElement("canvas").getContext("2d");
  c.font = "12px sans-serif";
  return Math.ceil(c.measureText(text).width);
}

function drawImage(id) {
  const [kind, code, ...rest] = id.split("|");
  const label = rest.join("|");
  let canvas, anchor;
  if (kind === "sym") {
    ({ canvas, anchor } = symbolOf(code));
  } else if (kind === "label") {
    canvas = document.createElement("canvas");
    canvas.width = textWidth(label) + 4;
    canvas.height = LABEL_HEIGHT_PX;
    outlinedText(canvas.getContext("2d"), label, 2, 12);
    anchor = { x: 0, y: LABEL_HEIGHT_PX / 2 };
  } else {
    canvas = document.createElement("canvas");
    canvas.width = textWidth(label) + 22;
    canvas.height = 20;
    const c = canvas.getContext("2d");
    c.fillStyle = code || "#ffd54f";
    c.strokeStyle = "#222";
    c.beginPath();
    c.arc(8, 10, 5, 0, 2 * Math.PI);
    c.fill();
    c.stroke();
    outlinedText(c, label, 17, 14);
    anchor = { x: 8, y: 10 };
  }
  const ctx = canvas.getContext("2d");
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  return { image: { width: canvas.width, height: canvas.height, data: data.data }, anchor };
}

const anchors = new Map(); // image id -> {x, y, width}
function ensureImage(map, id) {
  if (map.hasImage(id)) return anchors.get(id) || { x: 0, y: 0, width: 0 };
  const { image, anchor } = drawImage(id);
  map.addImage(id, image);
  accord.stats.images += 1;
  const placed = { x: anchor.x, y: anchor.y, width: image.width };
  anchors.set(id, placed);
  return placed;
}

/** An item's images: its symbol (or labelled dot) and, for a symbol, its label beside it. */
function iconFor(item) {
  const map = accord.map;
  // A geofence and a conflict zone are drawn as areas (alerts.js), a fence with its name: their
  // point keeps no label of its own, which would repeat or overlap the area's or the alert's.
  const area = item.fence || (item.shape && item.shape.conflict);
  const text = area ? "" : shortLabel(item);
  if (item.sidc && window.ms) {
    const id = `sym|${item.sidc}`;
    const anchor = ensureImage(map, id);
    if (!text) return { id, anchor, label: null };
    const label = `label||${text}`;
    ensureImage(map, label);
    return { id, anchor, label, labelOffset: [anchor.width - anchor.x + LABEL_GAP_PX, -LABEL_HEIGHT_PX / 2] };
  }
  const colour = item.type.startsWith("b-m-p-s-p-i") ? "#ff5252" : item.type.startsWith("b-m-p-w") ? "#69f0ae" : "#ffd54f";
  const id = `dot|${colour}|${text}`;
  return { id, anchor: ensureImage(map, id), label: null };
}

// -- the map ---------------------------------------------------------------------------------
function baseStyle(config) {
  const sources = {};
  const layers = [{ id: "ocean", type: "background", paint: { "background-color": "#a9c8d8" } }];
  if (config.world_present) {
    sources.world = { type: "vector", url: `pmtiles://${location.origin}${config.world}` };
    layers.push(
      { id: "land", type: "fill", source: "world", "source-layer": "land", paint: { "fill-color": "#eae6d8" } },
      { id: "lakes", type: "fill", source: "world", "source-layer": "lakes", paint: { "fill-color": "#a9c8d8" } },
      { id: "rivers", type: "line", source: "world", "source-layer": "rivers", paint: { "line-color": "#8fb3c8", "line-width": 0.8 } },
      { id: "boundaries", type: "line", source: "world", "source-layer": "boundaries", paint: { "line-color": "#9a8c98", "line-width": 0.8, "line-dasharray": [3, 2] } },
    );
  }
  if (config.xyz_url) {
    sources.xyz = { type: "raster", tiles: [config.xyz_url], tileSize: 256 };
    layers.push({ id: "xyz", type: "raster", source: "xyz" });
  }
  if (config.detail && config.detail.kind === "mbtiles") {
    const vector = config.detail.format === "pbf";
    sources.detail = vector
      ? { type: "vector", tiles: [`${location.origin}${config.detail.url}`] }
      : { type: "raster", tiles: [`${location.origin}${config.detail.url}`], tileSize: 256 };
    if (!vector) layers.push({ id: "detail", type: "raster", source: "detail" });
  }
  return { version: 8, sources, layers };
}

async function addDetailPmtiles(map, config) {
  if (!config.detail || config.detail.kind !== "pmtiles") return;
  const url = `${location.origin}${config.detail.url}`;
  const archive = new window.pmtiles.PMTiles(url);
  const header = await archive.getHeader();
  if (header.tileType === 1) {
    const meta = await archive.getMetadata();
    map.addSource("detail", { type: "vector", url: `pmtiles://${url}` });
    for (const layer of (meta && meta.vector_layers) || []) {
      map.addLayer({ id: `detail-${layer.id}`, type: "line", source: "detail", "source-layer": layer.id, paint: { "line-color": "#6d6d6d", "line-width": 0.6 } }, "footprints");
    }
  } else {
    map.addSource("detail", { type: "raster", url: `pmtiles://${url}`, tileSize: 256 });
    map.addLayer({ id: "detail", type: "raster", source: "detail" }, "footprints");
  }
}

const EMPTY = { type: "FeatureCollection", features: [] };

function addOverlays(map) {
  for (const name of SOURCES) map.addSource(name, { type: "geojson", data: EMPTY });
  map.addLayer({ id: "footprints", type: "fill", source: "footprints", paint: { "fill-color": "#ff9800", "fill-opacity": 0.25 } });
  map.addLayer({ id: "footprints-edge", type: "line", source: "footprints", paint: { "line-color": "#e65100", "line-width": 1.5 } });
  map.addLayer({ id: "precision", type: "fill", source: "precision", paint: { "fill-color": "#7e57c2", "fill-opacity": 0.12 } });
  map.addLayer({ id: "precision-edge", type: "line", source: "precision", paint: { "line-color": "#5e35b1", "line-width": 1.5, "line-dasharray": [2, 2] } });
  map.addLayer({
    id: "lines", type: "line", source: "lines",
    paint: {
      "line-color": ["match", ["get", "kind"], "aim", "#ff5252", "route", "#00c853", "home", "#69f0ae", "#263238"],
      "line-width": ["match", ["get", "kind"], "route", 2.5, 1.5],
      "line-dasharray": ["match", ["get", "kind"], "aim", ["literal", [2, 1]], ["literal", [1, 0]]],
    },
  });
  map.addLayer({
    id: "tracks", type: "symbol", source: "tracks",
    layout: { "icon-image": ["get", "icon"], "icon-anchor": "top-left", "icon-offset": ["get", "offset"], "icon-allow-overlap": true, "icon-ignore-placement": true },
    paint: { "icon-opacity": ["case", ["get", "stale"], 0.35, 1] },
  });
  map.addLayer({
    id: "track-labels", type: "symbol", source: "tracks", filter: ["has", "label"],
    layout: { "icon-image": ["get", "label"], "icon-anchor": "top-left", "icon-offset": ["get", "label_offset"], "icon-allow-overlap": true, "icon-ignore-placement": true },
    paint: { "icon-opacity": ["case", ["get", "stale"], 0.35, 1] },
  });
}

// The live picture is updated by what changed (accord.picture); a replay is drawn whole.
let replayDrawn = false;
function render() {
  const map = accord.map;
  if (!map || !map.getSource("tracks")) return;
  if (accord.replay) {
    const t = accord.replay.t;
    const items = replayItems(t);
    const byUid = new Map(items.map((i) => [i.uid, i]));
    const drawn = new Picture();
    for (const uid of byUid.keys()) drawn.touch(uid);
    drawn.flush(map, (uid) => byUid.get(uid), t, iconFor);
    accord.stats.shown = drawn.size;
    replayDrawn = true;
  } else {
    const picture = accord.picture;
    if (replayDrawn) {
      picture.rebuild(accord.items.keys()); // the sources hold the replay: set them whole
      replayDrawn = false;
    }
    const now = serverNow();
    picture.touchStale(accord.items, now);
    accord.stats.changed += picture.flush(map, (uid) => accord.items.get(uid), now, iconFor);
    accord.stats.shown = picture.size;
  }
  accord.stats.renders += 1;
  if (accord.selected) showPanel(accord.selected);
}

let renderTimer = null;
function scheduleRender() {
  if (renderTimer !== null) return;
  const interval = accord.items.size > BUSY_ITEMS ? BUSY_RENDER_INTERVAL_MS : RENDER_INTERVAL_MS;
  renderTimer = setTimeout(() => { renderTimer = null; render(); }, interval);
}

function expire() {
  const now = serverNow();
  for (const [uid, item] of accord.items) {
    if (item.stale + STALE_REMOVE_MS < now) {
      accord.items.delete(uid);
      accord.picture.touch(uid);
    }
  }
  scheduleRender();
}

// -- the side panel (telemetry) and the hover tooltip (release rule) -------------------------
function field(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  if (value instanceof Node) dd.appendChild(value);
  else dd.textContent = String(value);
  list.append(dt, dd);
}

function fmt(n, digits = 0) {
  return typeof n === "number" ? n.toFixed(digits) : null;
}

function showPanel(uid) {
  const item = accord.replay ? replayItems(accord.replay.t).find((i) => i.uid === uid) : accord.items.get(uid);
  const panel = document.getElementById("panel");
  if (!item) { panel.hidden = true; return; }
  accord.selected = uid;
  panel.hidden = false;
  document.getElementById("panel-title").textContent = labelOf(item) || item.uid;
  const list = document.getElementById("panel-fields");
  list.replaceChildren();
  field(list, "uid", item.uid);
  field(list, "type", item.type);
  field(list, "position", `${item.lat.toFixed(5)}, ${item.lon.toFixed(5)}`);
  field(list, "height", item.hae !== null ? `${fmt(item.hae)} m HAE` : null);
  field(list, "course", item.course !== null ? `${fmt(item.course)}°` : null);
  field(list, "speed", item.speed !== null ? `${fmt(item.speed, 1)} m/s` : null);
  const t = item.telemetry || {};
  field(list, "battery", t.battery_pct !== undefined ? `${fmt(t.battery_pct)} %` : null);
  field(list, "voltage", t.voltage !== undefined ? `${fmt(t.voltage, 2)} V` : null);
  field(list, "link", t.link);
  field(list, "flight time left", t.flight_time_remaining_s !== undefined ? `${fmt(t.flight_time_remaining_s)} s` : null);
  if (item.sensor) {
    const s = item.sensor;
    field(list, "sensor", `${fmt(s.azimuth)}° ± ${fmt(s.fov / 2, 1)}°, ${fmt(s.range)} m${s.range_known ? "" : " (range unknown)"}`);
  }
  if (item.video) {
    if (SAFE_LINK.test(item.video)) {
      const a = document.createElement("a");
      a.href = item.video;
      a.textContent = item.video;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      field(list, "video", a);
    } else field(list, "video", item.video);
  }
  if (item.release) {
    const r = item.release;
    field(list, "released by", r.organisation);
    field(list, "policy", `${r.policy} ${r.version ? `v${r.version}` : ""}`.trim());
    field(list, "rule", r.rule);
    field(list, "precision", r.precision_m !== null ? `${fmt(r.precision_m)} m` : null);
  }
  field(list, "stale", new Date(item.stale).toISOString());
  field(list, "remarks", item.remarks);
}

function releaseText(item) {
  const r = item.release;
  const precision = r.precision_m !== null ? `${Math.round(r.precision_m)} m` : "as reported";
  return `Released by ${r.organisation}\npolicy ${r.policy}, rule ${r.rule}\nprecision ${precision}`;
}

// -- chat ------------------------------------------------------------------------------------
function addChatLine(room, from, text, mine) {
  const li = document.createElement("li");
  const roomEl = document.createElement("span");
  roomEl.className = "room";
  roomEl.textContent = `[${room}]`;
  const fromEl = document.createElement("span");
  fromEl.className = "from";
  fromEl.textContent = mine ? "me:" : `${from}:`;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(roomEl, fromEl, body);
  const log = document.getElementById("chat-log");
  log.appendChild(li);
  log.scrollTop = log.scrollHeight;
}

let contactsTimer = null;
function refreshContacts() {
  if (contactsTimer !== null) return;
  contactsTimer = setTimeout(() => {
    contactsTimer = null;
    const select = document.getElementById("chat-to");
    const keep = select.value;
    const options = [new Option("All Chat Rooms", "")];
    for (const [uid, callsign] of [...accord.contacts].sort((a, b) => a[1].localeCompare(b[1]))) {
      if (accord.me && uid === accord.me.uid) continue;
      const option = new Option(callsign, uid); // Option() sets text, not markup
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = keep;
  }, 500);
}

function sendChat(event) {
  event.preventDefault();
  const input = document.getElementById("chat-text");
  const select = document.getElementById("chat-to");
  const text = input.value.trim();
  if (!text || !accord.ws || accord.ws.readyState !== WebSocket.OPEN) return;
  const toUid = select.value;
  const toCallsign = toUid ? accord.contacts.get(toUid) || "" : "";
  accord.ws.send(JSON.stringify({ op: "chat", text, to_uid: toUid, to_callsign: toCallsign }));
  addChatLine(toUid ? toCallsign : "All Chat Rooms", "me", text, true);
  input.value = "";
}

// -- the feed --------------------------------------------------------------------------------
function apply(message) {
  for (const listen of accord.listeners) listen(message);
  if (message.op === "hello") {
    accord.me = { uid: message.uid, callsign: message.callsign };
    accord.stats.connected = true; // the server sends it once this session hears the hub
    return;
  }
  if (message.op === "delete") {
    accord.items.delete(message.uid);
    accord.picture.touch(message.uid);
    accord.contacts.delete(message.uid);
    return;
  }
  if (message.op === "chat") {
    accord.stats.chats += 1;
    const direct = accord.me && message.room_id === accord.me.uid;
    addChatLine(direct ? `direct from ${message.from}` : message.room, message.from, message.text, false);
    return;
  }
  if (message.op === "put") {
    accord.items.set(message.uid, message);
    accord.picture.touch(message.uid);
    if (message.type.startsWith("a-") && message.callsign && !accord.contacts.has(message.uid)) {
      accord.contacts.set(message.uid, message.callsign);
      refreshContacts();
    }
  }
}

function connect() {
  const ws = new WebSocket(`wss://${location.host}/web/feed`);
  accord.ws = ws;
  const status = document.getElementById("status");
  ws.addEventListener("open", () => { status.textContent = "live"; });
  ws.addEventListener("message", (e) => {
    let batch;
    try { batch = JSON.parse(e.data); } catch { return; }
    if (typeof batch.now === "number") accord.skewMs = batch.now - Date.now();
    for (const message of batch.items || []) apply(message);
    accord.stats.batches += 1;
    accord.stats.items += (batch.items || []).length;
    scheduleRender();
  });
  ws.addEventListener("close", () => {
    accord.stats.connected = false;
    status.textContent = "disconnected; reconnecting…";
    setTimeout(connect, RECONNECT_MS);
  });
}

// -- history ---------------------------------------------------------------------------------
function replayItems(t) {
  const latest = new Map();
  for (const item of accord.replay.events) {
    if (item.op !== "put" || item.time > t) continue;
    latest.set(item.uid, item);
  }
  return [...latest.values()].filter((i) => i.stale + STALE_REMOVE_MS > t && hasPosition(i));
}

async function loadHistory(span) {
  const response = await fetch(`/web/history?since=${encodeURIComponent(span)}`, { credentials: "same-origin" });
  if (!response.ok) return null;
  const body = await response.json();
  const events = body.items.slice().sort((a, b) => a.time - b.time);
  const end = serverNow();
  const start = events.length ? Math.min(events[0].time, end - 1000) : end - 3600_000;
  return { events, start, end, t: end };
}

function setupHistory() {
  const box = document.getElementById("history");
  const controls = document.getElementById("history-controls");
  const slider = document.getElementById("history-slider");
  const label = document.getElementById("history-time");
  const spanSelect = document.getElementById("history-span");
  let playing = null;
  const live = () => { accord.replay = null; box.classList.remove("replaying"); slider.value = "1000"; label.textContent = "live"; scheduleRender(); };
  const seek = () => {
    const r = accord.replay;
    if (!r) return;
    const v = Number(slider.value);
    if (v >= 1000) { live(); return; }
    r.t = r.start + ((r.end - r.start) * v) / 1000;
    label.textContent = new Date(r.t).toISOString().replace("T", " ").slice(0, 19);
    box.classList.add("replaying");
    render();
  };
  const load = async () => {
    accord.replay = await loadHistory(spanSelect.value);
    seek();
  };
  document.getElementById("history-toggle").addEventListener("click", () => {
    controls.hidden = !controls.hidden;
    if (controls.hidden) live();
  });
  spanSelect.addEventListener("change", load);
  slider.addEventListener("input", async () => { if (!accord.replay) await load(); else seek(); });
  document.getElementById("history-play").addEventListener("click", async () => {
    if (playing) { clearInterval(playing); playing = null; return; }
    if (!accord.replay) await load();
    if (Number(slider.value) >= 1000) slider.value = "0";
    playing = setInterval(() => {
      slider.value = String(Math.min(1000, Number(slider.value) + 5));
      seek();
      if (Number(slider.value) >= 1000) { clearInterval(playing); playing = null; }
    }, 200);
  });
  accord.history = { load, seek, live };
}

// -- start -----------------------------------------------------------------------------------
async function start() {
  const response = await fetch("/web/config.json", { credentials: "same-origin" });
  if (response.status === 401) { location.href = "/web/"; return; }
  const config = await response.json();
  accord.config = config;
  document.getElementById("who").textContent = `${config.user} (${config.groups.join(", ")})`;
  const signout = document.getElementById("signout");
  if (config.sign_out) {
    signout.hidden = false;
    signout.addEventListener("click", async () => {
      await fetch("/web/signout", { method: "POST", headers: { "x-accord-csrf": config.csrf }, credentials: "same-origin" });
      location.href = "/web/";
    });
  }
  accord.addPage("map", "Map", null);
  showPage("map");
  const protocol = new window.pmtiles.Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);
  const map = new maplibregl.Map({ container: "map", style: baseStyle(config), center: [10, 30], zoom: 1.5, attributionControl: false, fadeDuration: 0 });
  accord.map = map;
  map.addControl(new maplibregl.NavigationControl(), "bottom-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-left");
  map.on("load", async () => {
    addOverlays(map);
    try { await addDetailPmtiles(map, config); } catch (e) { console.warn("detail basemap", e); }
    accord.ready = true;
    render();
  });
  map.on("click", "tracks", (e) => { if (e.features.length) showPanel(e.features[0].properties.uid); });
  const tooltip = document.getElementById("tooltip");
  map.on("mousemove", "tracks", (e) => {
    const uid = e.features.length ? e.features[0].properties.uid : null;
    const item = uid && (accord.items.get(uid) || (accord.replay && replayItems(accord.replay.t).find((i) => i.uid === uid)));
    map.getCanvas().style.cursor = "pointer";
    if (item && item.release) {
      tooltip.textContent = releaseText(item);
      tooltip.style.left = `${e.point.x + 14}px`;
      tooltip.style.top = `${e.point.y + 14}px`;
      tooltip.hidden = false;
    } else tooltip.hidden = true;
  });
  map.on("mouseleave", "tracks", () => { tooltip.hidden = true; map.getCanvas().style.cursor = ""; });
  document.getElementById("panel-close").addEventListener("click", () => { accord.selected = null; document.getElementById("panel").hidden = true; });
  document.getElementById("chat-form").addEventListener("submit", sendChat);
  setupHistory();
  setInterval(expire, 1000);
  connect();
}

start();
