import { ConveyorError } from '../errors.js';

/** Neutral codes for what a database can answer; callers never look at native error codes. */
export type StoreErrorCode = 'unique_violation' | 'busy' | 'serialization' | 'unavailable' | 'other';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
    this.name = 'StoreError';
  }
}

// SQLite result codes (better-sqlite3 puts them in err.code) and PostgreSQL SQLSTATEs, in one
// table so both dialects map the same way (River's interpretError, Oban's expected errors).
const NATIVE: Record<string, StoreErrorCode> = {
  SQLITE_CONSTRAINT_UNIQUE: 'unique_violation',
  SQLITE_CONSTRAINT_PRIMARYKEY: 'unique_violation',
  SQLITE_BUSY: 'busy',
  SQLITE_LOCKED: 'busy',
  SQLITE_IOERR: 'unavailable',
  SQLITE_CANTOPEN: 'unavailable',
  SQLITE_FULL: 'unavailable',
  '23505': 'unique_violation',
  '40001': 'serialization',
  '40P01': 'serialization',
  '57P01': 'unavailable', // admin_shutdown
  '57P02': 'unavailable', // crash_shutdown
  '57P03': 'unavailable', // cannot_connect_now
  '08000': 'unavailable',
  '08003': 'unavailable',
  '08006': 'unavailable',
  '08001': 'unavailable',
  '08004': 'unavailable',
  '53000': 'unavailable', // insufficient_resources
  '53100': 'unavailable', // disk_full, as SQLITE_FULL: the write may go through once space is freed
  '53200': 'unavailable', // out_of_memory
  '53300': 'unavailable', // too_many_connections: every server's pool together is above max_connections
  '58030': 'unavailable', // io_error, as SQLITE_IOERR
  '57014': 'unavailable', // query_canceled: statement_timeout (the database is overloaded or a lock is held)
  '55P03': 'unavailable', // lock_not_available: a lock_timeout (set in the URL or for the role) ran out, as 57014
  '25006': 'unavailable', // read_only_sql_transaction: a standby, e.g. the old primary's address after a failover
  '25P03': 'unavailable', // idle_in_transaction_session_timeout ended the session
  EHOSTUNREACH: 'unavailable',
  ENETUNREACH: 'unavailable',
  ENOTFOUND: 'unavailable', // the database's host name does not resolve (DNS down or wrong)
  EAI_AGAIN: 'unavailable',
  ECONNREFUSED: 'unavailable',
  ECONNRESET: 'unavailable',
  ETIMEDOUT: 'unavailable',
  EPIPE: 'unavailable',
  CONNECTION_CLOSED: 'unavailable',
  CONNECTION_ENDED: 'unavailable',
  CONNECTION_DESTROYED: 'unavailable',
  CONNECT_TIMEOUT: 'unavailable',
};

export function storeErrorOf(err: unknown): StoreError | ConveyorError {
  if (err instanceof StoreError || err instanceof ConveyorError) return err;
  const native = nativeCodeOf(err);
  const code = NATIVE[native] ?? (native.startsWith('SQLITE_IOERR') ? 'unavailable' : 'other');
  const message = err instanceof Error ? err.message : String(err);
  return new StoreError(code, `${native ? `${native}: ` : ''}${message}`, { cause: err });
}

/** The database's own code for an error (a SQLite result code, a PostgreSQL SQLSTATE), also through the StoreError made of it. */
export function nativeCodeOf(err: unknown): string {
  const native = err instanceof StoreError ? err.cause : err;
  return String((native as { code?: unknown } | undefined)?.code ?? '');
}

/** Whether an error means "the database cannot be reached right now" (answer 503, retry later). */
export function isUnavailable(err: unknown): boolean {
  return err instanceof StoreError && (err.code === 'unavailable' || err.code === 'busy');
}

/**
 * Whether the database gave up a transaction for clashing with concurrent ones (PostgreSQL's
 * deadlock victim, a serialization failure): nothing was written, and the same transaction run
 * again may well commit.
 */
export function isConflict(err: unknown): boolean {
  return err instanceof StoreError && err.code === 'serialization';
}

/** Whether the same write may succeed later: the store is away or the write clashed with others. */
export function isTransient(err: unknown): boolean {
  return isUnavailable(err) || isConflict(err);
}
