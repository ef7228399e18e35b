// The map's live overlays, kept feature by feature: a map update sends MapLibre only the
// features that changed since the last one (GeoJSONSource.updateData), not the whole picture.
//
// Each item (a uid) owns a few features, each with a stable id: its track symbol, its sensor
// footprint, its release precision circle, and its lines (course leader, route, the line to
// its parent). A changed item is rebuilt; a removed one loses its features; the rest stay.
"use strict";

export const LEADER_S = 60; // a course leader shows where a track will be in a minute
const EARTH_RADIUS_M = 6371008.8;
export const SOURCES = ["footprints", "precision", "lines", "tracks"];

// -- geometry --------------------------------------------------------------------------------
export function destination(lat, lon, bearing, dist) {
  const p1 = (lat * Math.PI) / 180, l1 = (lon * Math.PI) / 180;
  const t = (bearing * Math.PI) / 180, d = dist / EARTH_RADIUS_M;
  const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(t));
  const l2 = l1 + Math.atan2(Math.sin(t) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
  return [((((l2 * 180) / Math.PI) + 540) % 360) - 180, (p2 * 180) / Math.PI];
}

export function circle(lat, lon, radius, steps = 48) {
  const ring = [];
  for (let i = 0; i <= steps; i++) ring.push(destination(lat, lon, (360 * i) / steps, radius));
  return ring;
}

export function hasPosition(item) {
  return !(item.lat === 0 && item.lon === 0 && item.ce === null); // web users have none
}

/** The features one item draws, by source: {tracks: [...], footprints: [...], ...}.
 * `lookup(uid)` finds another item (a parent); `icon(item)` names its symbol image (its anchor,
 * and the label image beside it with its offset, if any). Every feature carries its stable `id`. */
export function featuresOf(item, lookup, now, icon) {
  const out = { tracks: [], footprints: [], precision: [], lines: [] };
  if (!hasPosition(item)) return out;
  const uid = item.uid;
  const { id: image, anchor, label, labelOffset } = icon(item);
  const stale = item.stale <= now;
  const properties = { uid, icon: image, offset: [-anchor.x, -anchor.y], stale };
  if (label) Object.assign(properties, { label, label_offset: labelOffset });
  out.tracks.push({ type: "Feature", id: uid, geometry: { type: "Point", coordinates: [item.lon, item.lat] }, properties });
  if (item.sensor && !stale) out.footprints.push({ type: "Feature", id: uid, geometry: { type: "Polygon", coordinates: [item.sensor.footprint] }, properties: { uid } });
  if (item.release && item.release.precision_m > 0) {
    out.precision.push({ type: "Feature", id: uid, geometry: { type: "Polygon", coordinates: [circle(item.lat, item.lon, item.release.precision_m)] }, properties: { uid } });
  }
  if (item.course !== null && item.speed > 0.5 && !stale) {
    out.lines.push({ type: "Feature", id: `leader|${uid}`, geometry: { type: "LineString", coordinates: [[item.lon, item.lat], destination(item.lat, item.lon, item.course, item.speed * LEADER_S)] }, properties: { kind: "leader" } });
  }
  if (item.route && item.route.length > 1) out.lines.push({ type: "Feature", id: `route|${uid}`, geometry: { type: "LineString", coordinates: item.route }, properties: { kind: "route" } });
  if (item.link && item.link.relation === "p-p") {
    const parent = lookup(item.link.uid);
    if (parent && hasPosition(parent)) {
      const kind = item.type.startsWith("b-m-p-s-p-i") ? "aim" : "home";
      out.lines.push({ type: "Feature", id: `link|${uid}`, geometry: { type: "LineString", coordinates: [[parent.lon, parent.lat], [item.lon, item.lat]] }, properties: { kind } });
    }
  }
  return out;
}

/** One GeoJSON source's features by id, and what changed since the last flush. */
class Overlay {
  constructor(name) {
    this.name = name;
    this.features = new Map();
    this.put = new Map(); // id -> feature added or replaced since the last flush
    this.gone = new Set(); // ids removed since the last flush
    this.reset = true; // the source must be set whole (first time, after a replay)
  }

  set(feature) {
    this.features.set(feature.id, feature);
    this.put.set(feature.id, feature);
    this.gone.delete(feature.id);
  }

  delete(id) {
    if (!this.features.delete(id)) return;
    this.put.delete(id);
    this.gone.add(id);
  }

  clear() {
    this.features.clear();
    this.put.clear();
    this.gone.clear();
    this.reset = true;
  }

  flush(map) {
    const source = map.getSource(this.name);
    if (!source) return 0;
    if (this.reset || typeof source.updateData !== "function") {
      source.setData({ type: "FeatureCollection", features: [...this.features.values()] });
    } else if (this.put.size || this.gone.size) {
      // an added feature with an id already there replaces it
      source.updateData({ remove: [...this.gone], add: [...this.put.values()] });
    }
    const changed = this.reset ? this.features.size : this.put.size + this.gone.size;
    this.reset = false;
    this.put.clear();
    this.gone.clear();
    return changed;
  }
}

/** The live picture on the map: items are marked dirty as they change and rebuilt at the
 * next flush, with the items linked to them (a parent's move moves its children's lines). */
export class Picture {
  constructor() {
    this.overlays = new Map(SOURCES.map((name) => [name, new Overlay(name)]));
    this.owned = new Map(); // uid -> [[source, id], ...] of the features it drew
    this.children = new Map(); // parent uid -> Set of uids linked to it
    this.staleShown = new Map(); // uid -> whether its symbol is drawn stale
    this.dirty = new Set();
  }

  get size() {
    return this.overlays.get("tracks").features.size;
  }

  touch(uid) {
    this.dirty.add(uid);
  }

  /** All of it again, e.g. after a replay drew something else into the sources. */
  rebuild(uids) {
    for (const overlay of this.overlays.values()) overlay.clear();
    this.owned.clear();
    this.children.clear();
    this.staleShown.clear();
    for (const uid of uids) this.dirty.add(uid);
  }

  /** Mark the items whose stale flag differs from what is drawn (their fade changes). */
  touchStale(items, now) {
    for (const [uid, shown] of this.staleShown) {
      const item = items.get(uid);
      if (!item || (item.stale <= now) !== shown) this.dirty.add(uid);
    }
  }

  /** Rebuild what is dirty from `lookup` (uid -> item or undefined) and send the changes to
   * the map; returns how many features changed. */
  flush(map, lookup, now, icon) {
    const todo = new Set(this.dirty);
    for (const uid of this.dirty) for (const child of this.children.get(uid) || []) todo.add(child);
    this.dirty.clear();
    for (const uid of todo) this._build(uid, lookup(uid), lookup, now, icon);
    let changed = 0;
    for (const overlay of this.overlays.values()) changed += overlay.flush(map);
    return changed;
  }

  _build(uid, item, lookup, now, icon) {
    const before = this.owned.get(uid) || [];
    const after = [];
    if (item) {
      const built = featuresOf(item, lookup, now, icon);
      for (const [name, features] of Object.entries(built)) {
        const overlay = this.overlays.get(name);
        for (const feature of features) {
          overlay.set(feature);
          after.push([name, feature.id]);
        }
      }
      if (built.tracks.length) this.staleShown.set(uid, built.tracks[0].properties.stale);
      else this.staleShown.delete(uid);
      if (item.link && item.link.uid) {
        let set = this.children.get(item.link.uid);
        if (!set) this.children.set(item.link.uid, (set = new Set()));
        set.add(uid);
      }
    } else {
      this.staleShown.delete(uid);
      this.children.delete(uid);
    }
    const kept = new Set(after.map(([name, id]) => `${name}\u0000${id}`));
    for (const [name, id] of before) {
      if (!kept.has(`${name}\u0000${id}`)) this.overlays.get(name).delete(id);
    }
    if (after.length) this.owned.set(uid, after);
    else this.owned.delete(uid);
  }
}
