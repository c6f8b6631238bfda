// The dashboard's calls to the API. The token (when the server has one) lives in
// sessionStorage, is sent only as an Authorization header, and never appears in a URL.

const TOKEN_KEY = 'conveyor.token';
let onUnauthorized = () => {};

export const token = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** Called when the server answers 401 (no token, or a wrong one). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const out = { accept: 'application/json', ...extra };
  const t = token.get();
  if (t) out.authorization = `Bearer ${t}`;
  return out;
}

/** Calls the API; answers the parsed JSON or throws ApiError. POSTs send JSON only when given a body. */
export async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: headers(), cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.status === 401) onUnauthorized();
  if (!res.ok) throw new ApiError(res.status, data?.error?.code ?? 'http_error', data?.error?.message ?? `HTTP ${res.status}`);
  return data;
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Largest unparsed stream text kept; a frame is a few KiB, the first (with history) at most 4 MiB (LiveFeed historyBytes). */
const MAX_BUFFER = 8 * 1024 * 1024;

/**
 * Reads GET /v1/live with fetch (EventSource cannot send an Authorization header): frames of
 * `data: <json>` separated by a blank line. Reconnects with backoff; answers a stop function.
 */
export function openLive({ onSnapshot, onStatus }) {
  let stopped = false;
  let controller = null;
  const run = async () => {
    let delayMs = 1000;
    while (!stopped) {
      controller = new AbortController();
      try {
        const res = await fetch('/v1/live', {
          headers: headers({ accept: 'text/event-stream' }),
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
        if (res.status === 401) {
          onStatus('offline');
          onUnauthorized();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        onStatus('live');
        delayMs = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          if (buf.length > MAX_BUFFER) throw new Error('live frame too large');
          let cut = buf.indexOf('\n\n');
          while (cut >= 0) {
            const frame = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = frame
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trimStart())
              .join('\n');
            if (data) onSnapshot(JSON.parse(data));
            cut = buf.indexOf('\n\n');
          }
        }
      } catch {
        // network error, server restart or abort: fall through to the retry below
      }
      if (stopped) return;
      onStatus('offline');
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 10_000);
    }
  };
  run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
