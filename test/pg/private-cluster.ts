import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../free-port.js';

const run = promisify(execFile);

/**
 * A throw-away PostgreSQL cluster of the test's own, for fault tests that stop and restart
 * the database: the shared server on 127.0.0.1:5432 serves other test files at the same time
 * and must never be restarted. initdb into a temp folder, trust authentication, loopback only,
 * a free port, its socket in its own folder; destroy() stops it and removes the folder.
 *
 * PostgreSQL refuses to run as root, so when the tests run as root every command runs as the
 * `postgres` user (runuser), and the folder is handed to that user first.
 */
export interface PrivateCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  dir: string;
  /** `fast` rolls back open transactions and closes every connection (pg_ctl's default). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /**
   * Stops every process of the cluster (SIGSTOP) without closing a connection: a database
   * whose host froze, or a network that drops every packet. thaw() resumes them.
   */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Runs one SQL statement through psql (as the superuser) and answers its output. */
  psql(sql: string): Promise<string>;
  destroy(): Promise<void>;
}

/** The newest installed PostgreSQL's bin folder, or null. */
function binDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0], 'bin') : null;
}

const asRoot = userInfo().uid === 0;

/** Why a private cluster cannot be made here, or null when it can. */
export function privateClusterUnavailable(): string | null {
  if (!binDir()) return 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)';
  if (asRoot && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) return 'running as root without runuser';
  return null;
}

async function pg(bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const cmd = asRoot ? 'runuser' : bin;
  const argv = asRoot ? ['-u', 'postgres', '--', bin, ...args] : args;
  const { stdout } = await run(cmd, argv, { timeout: timeoutMs, maxBuffer: 10 * 1024 * 1024 });
  return stdout;
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const bin = binDir();
  if (!bin) throw new Error(privateClusterUnavailable() ?? 'no PostgreSQL');
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-pg-'));
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  await pg(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  // The socket goes into the cluster's folder (-k): /var/run/postgresql belongs to the shared server.
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=100`;
  // The postmaster's pid is the first line of postmaster.pid; its children are the backends.
  const pids = async () => {
    const postmaster = readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0].trim();
    const { stdout } = await run('pgrep', ['-P', postmaster]).catch(() => ({ stdout: '' }));
    return [postmaster, ...stdout.split('\n').filter(Boolean)].map(Number);
  };
  let frozen: number[] = [];
  const ctl = (...args: string[]) => pg(join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '60', ...args]);
  const cluster: PrivateCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async stop(mode = 'fast') {
      await ctl('-m', mode, 'stop');
    },
    async start() {
      await ctl('-o', opts, '-l', join(dir, 'log'), 'start');
    },
    async restart(mode = 'fast') {
      await ctl('-m', mode, '-o', opts, '-l', join(dir, 'log'), 'restart');
    },
    async freeze() {
      frozen = await pids();
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    },
    async thaw() {
      for (const pid of frozen.splice(0)) process.kill(pid, 'SIGCONT');
    },
    psql(sql) {
      return pg(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-At', '-c', sql]);
    },
    async destroy() {
      await cluster.thaw();
      await ctl('-m', 'immediate', 'stop').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return cluster;
}
