// The dashboard's copy of the live feed: the latest snapshot and the last five minutes of
// points (per second), shared by every page. Pages subscribe and redraw on each tick.

import { OPEN_STATES } from './format.js';

const MAX_POINTS = 300;

export const live = {
  /** The latest snapshot from GET /v1/live, or null before the first. */
  snapshot: null,
  /** LivePoint[] (oldest first), at most MAX_POINTS. */
  points: [],
  /** Open tasks by state over time, recorded while the page is open: [{ at, counts }]. */
  backlog: [],
  listeners: new Set(),

  ingest(snap) {
    for (const p of [...(snap.history ?? []), ...(snap.missed ?? []), snap.point]) ownKeys(p);
    if (snap.history) this.points = snap.history.slice(-MAX_POINTS);
    for (const p of [...(snap.missed ?? []), snap.point]) {
      const last = this.points[this.points.length - 1];
      if (!last || last.at < p.at) this.points.push(p);
    }
    if (this.points.length > MAX_POINTS) this.points.splice(0, this.points.length - MAX_POINTS);
    const counts = {};
    for (const s of OPEN_STATES) counts[s] = 0;
    for (const l of snap.lambdas) for (const s of OPEN_STATES) counts[s] += l.counts[s] ?? 0;
    const lastBacklog = this.backlog[this.backlog.length - 1];
    if (!lastBacklog || lastBacklog.at < snap.point.at) this.backlog.push({ at: snap.point.at, counts });
    if (this.backlog.length > MAX_POINTS) this.backlog.shift();
    this.snapshot = snap;
    for (const fn of this.listeners) fn(snap);
  },

  /** Calls fn on every snapshot (and at once if one is here); answers the unsubscribe. */
  subscribe(fn) {
    this.listeners.add(fn);
    if (this.snapshot) fn(this.snapshot);
    return () => this.listeners.delete(fn);
  },

  /** Puts a lambda summary a POST answered into the snapshot, so pages show it before the next tick. */
  patchLambda(summary) {
    if (!this.snapshot) return;
    const lambdas = this.snapshot.lambdas.map((l) => (l.name === summary.name ? summary : l));
    this.snapshot = { ...this.snapshot, lambdas };
    for (const fn of this.listeners) fn(this.snapshot);
  },

  lambda(name) {
    return this.snapshot?.lambdas.find((l) => l.name === name) ?? null;
  },
};

// A point's lambdas are keyed by name, and the pages look names up there (p.lambdas[name]): on a
// plain object an idle lambda named "constructor" or "toString" found Object.prototype's member
// and the page threw on every tick. Without a prototype only the point's own entries answer.
function ownKeys(point) {
  point.lambdas = Object.assign(Object.create(null), point.lambdas);
}
