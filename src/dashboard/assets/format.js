// Number, duration and time formatting for the dashboard.

export const STATES = ['NEW', 'ENQUEUED', 'CLAIMED', 'PROCESSING', 'RETRIABLE_FAILURE', 'SUCCESS', 'FATAL_FAILURE', 'CANCELLED'];
export const OPEN_STATES = ['NEW', 'ENQUEUED', 'CLAIMED', 'PROCESSING', 'RETRIABLE_FAILURE'];
/** States a task can still move out of by itself. */
export const TERMINAL = new Set(['SUCCESS', 'FATAL_FAILURE', 'CANCELLED']);

/** Colours of the states, the same as style.css (charts draw on canvas and cannot use classes). */
export const STATE_COLOURS = {
  NEW: '#64748b',
  ENQUEUED: '#2563eb',
  CLAIMED: '#0891b2',
  PROCESSING: '#7c3aed',
  RETRIABLE_FAILURE: '#d97706',
  SUCCESS: '#16a34a',
  FATAL_FAILURE: '#dc2626',
  CANCELLED: '#9ca3af',
};

const int = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const dec = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function count(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (Math.abs(n) >= 1e6) return `${dec.format(n / 1e6)}M`;
  if (Math.abs(n) >= 1e4) return `${dec.format(n / 1e3)}k`;
  return int.format(n);
}

export function rate(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (n > 0 && n < 10) return dec.format(n);
  return count(n);
}

/** A duration in ms as "840 ms", "2.4 s", "3 min". */
export function ms(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v < 1) return `${dec.format(v)} ms`;
  if (v < 1000) return `${int.format(v)} ms`;
  if (v < 60_000) return `${dec.format(v / 1000)} s`;
  if (v < 3_600_000) return `${dec.format(v / 60_000)} min`;
  return `${dec.format(v / 3_600_000)} h`;
}

/** An ISO time as local "YYYY-MM-DD HH:MM:SS.mmm". */
export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Milliseconds between two ISO times, or null. */
export function between(a, b) {
  if (!a || !b) return null;
  return new Date(b).getTime() - new Date(a).getTime();
}

/** Any JSON value as indented text (for <pre> via textContent). */
export function json(v) {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** The per-second rate of a count over a live point's interval. */
export function perSecond(n, point) {
  const s = (point?.intervalMs || 1000) / 1000;
  return (n ?? 0) / s;
}
