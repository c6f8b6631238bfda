import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * The process logger: JSON lines (pino) on stderr, level from CONVEYOR_LOG_LEVEL; `pretty`
 * gives one readable line per event for a person at a terminal (conveyor dev). Payloads,
 * results and tokens are never logged, only ids.
 */
export function createLogger(opts: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  const level = opts.level ?? process.env.CONVEYOR_LOG_LEVEL ?? 'info';
  const base = {
    level,
    name: opts.name ?? 'conveyor',
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  if (opts.pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname,name', translateTime: 'HH:MM:ss.l' } },
    });
  }
  return pino(base, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything, for library use without logging and for tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
