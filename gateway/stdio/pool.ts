/**
 * The processes of one stdio upstream, by rendered pool key: which process serves a new session, the
 * limits (`maxProcesses`, `maxProcessesPerTenant`), idle processes stopped after `idleTimeout` (or at
 * once in per-session mode), and an idle process giving its slot to a new pool key.
 *
 * A process leaves the pool as soon as it is retired, so its slot is free at once; stopping it (SIGTERM,
 * SIGKILL after the grace) runs in the background and close() waits for it.
 */
import type { Logger } from 'pino';
import type { StdioUpstreamConfig } from '../../config/schema.ts';
import type { PreparedCommand } from './command.ts';
import { StdioUpstreamError } from './errors.ts';
import { MultiplexedProcess, type ProcessState } from './multiplexed-process.ts';
import type { TemplateValues } from './templates.ts';

/** One pool entry, as GET /admin/processes shows it (a superset of the admin API's ProcessInfo). */
export interface ProcessInfo {
  upstream: string;
  /** The rendered pool key (`acme`, `acme/alice`); in per-session mode followed by `#<session>`. */
  pool: string;
  tenant: string;
  mode: 'shared' | 'per-session';
  /** `running`; `starting` (spawning or in restart backoff); `crashed` (restarts on next use); `idle`. */
  state: ProcessState;
  /** 0 while no process runs (not started yet, crashed, stopping): see `state`. */
  pid: number;
  sessions: number;
  /** Requests sent to the process and not answered yet. */
  inFlight: number;
  /** Resident memory in bytes (Linux), undefined elsewhere. */
  rssBytes: number | undefined;
  /** Since the current process started; 0 when none runs. */
  uptimeMs: number;
  restarts: number;
  /** The child's stdout is not being read because a session's client is not reading (flow control). */
  outputPaused: boolean;
  /** Bytes of requests written to the child's stdin that it has not read yet. */
  stdinBufferedBytes: number;
  /** Bytes read from the current child's stdout. */
  stdoutBytes: number;
}

export class ProcessPool {
  #name: string;
  #cfg: StdioUpstreamConfig;
  #log: Logger;
  #command: PreparedCommand;
  #pools = new Map<string, MultiplexedProcess>();
  #idleTimers = new Map<MultiplexedProcess, NodeJS.Timeout>();
  #stopping = new Set<Promise<void>>();
  #closing = false;

  constructor(name: string, cfg: StdioUpstreamConfig, log: Logger, command: PreparedCommand) {
    this.#name = name;
    this.#cfg = cfg;
    this.#log = log;
    this.#command = command;
  }

  /**
   * The process serving a new session: an existing one for its pool key, or a new one within limits
   * (else GW_ERR_PROCESS_LIMIT). The caller attaches the session at once: the process is no longer idle.
   */
  processFor(values: TemplateValues, sessionId: string): MultiplexedProcess {
    const rendered = this.#command.renderPoolKey(values);
    const key = this.#cfg.mode === 'per-session' ? `${rendered}#${sessionId}` : rendered;
    const existing = this.#pools.get(key);
    if (existing && existing.state !== 'stopping' && existing.state !== 'stopped') {
      this.#cancelIdle(existing);
      return existing;
    }

    // An idle process (no session, waiting for its idle timeout) gives its slot to a new pool key.
    if (this.#pools.size >= this.#cfg.maxProcesses) this.#evictIdle(() => true);
    if (this.#pools.size >= this.#cfg.maxProcesses) {
      throw new StdioUpstreamError(
        'GW_ERR_PROCESS_LIMIT',
        `upstream "${this.#name}" already runs its maximum of ${this.#cfg.maxProcesses} processes; try again later`,
      );
    }
    if (this.#countTenant(values.tenant) >= this.#cfg.maxProcessesPerTenant) this.#evictIdle((p) => p.tenant === values.tenant);
    if (this.#countTenant(values.tenant) >= this.#cfg.maxProcessesPerTenant) {
      throw new StdioUpstreamError(
        'GW_ERR_PROCESS_LIMIT',
        `upstream "${this.#name}" already runs the maximum of ${this.#cfg.maxProcessesPerTenant} processes for this tenant; close a session or try again later`,
      );
    }
    const process = new MultiplexedProcess({
      key,
      tenant: values.tenant,
      spec: this.#command.render(values),
      log: this.#log.child({ pool: key }),
      shutdownGraceMs: this.#cfg.shutdownGrace,
      startTimeoutMs: this.#cfg.startTimeout,
      requestTimeoutMs: this.#cfg.requestTimeout,
    });
    this.#pools.set(key, process);
    return process;
  }

  /** A session of `p` ended: a process left without sessions is stopped now (per-session) or when idle. */
  released(p: MultiplexedProcess): void {
    if (p.sessionCount > 0 || this.#closing) return;
    // A per-session process can never get another session: stop it now.
    if (this.#cfg.mode === 'per-session') return this.#retire(p);
    if (this.#cfg.idleTimeout <= 0) return;
    this.#cancelIdle(p);
    const timer = setTimeout(() => {
      this.#idleTimers.delete(p);
      if (p.sessionCount === 0) {
        this.#log.info({ pool: p.key }, 'upstream process idle; stopping');
        this.#retire(p);
      }
    }, this.#cfg.idleTimeout);
    this.#idleTimers.set(p, timer);
  }

  processes(): ProcessInfo[] {
    const now = Date.now();
    return [...this.#pools.values()].map((p) => ({
      upstream: this.#name,
      pool: p.key,
      tenant: p.tenant,
      mode: this.#cfg.mode,
      state: p.state,
      pid: p.pid ?? 0,
      sessions: p.sessionCount,
      inFlight: p.inFlight,
      rssBytes: p.rssBytes(),
      uptimeMs: p.startedAt === undefined ? 0 : now - p.startedAt,
      restarts: p.restarts,
      outputPaused: p.outputPaused,
      stdinBufferedBytes: p.stdinBufferedBytes,
      stdoutBytes: p.stdoutBytes,
    }));
  }

  /** Stops every process (SIGTERM, SIGKILL after shutdownGrace); resolves when all are gone. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const t of this.#idleTimers.values()) clearTimeout(t);
    this.#idleTimers.clear();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all([...pools.map((p) => p.stop()), ...this.#stopping]);
  }

  #countTenant(tenant: string): number {
    let n = 0;
    for (const p of this.#pools.values()) if (p.tenant === tenant) n++;
    return n;
  }

  /** Retires the longest-idle process matching `which`, if any. */
  #evictIdle(which: (p: MultiplexedProcess) => boolean): void {
    for (const p of this.#idleTimers.keys()) {
      if (p.sessionCount > 0 || !which(p)) continue;
      this.#cancelIdle(p);
      this.#log.info({ pool: p.key }, 'stopping an idle process to make room');
      this.#retire(p);
      return;
    }
  }

  #cancelIdle(p: MultiplexedProcess): void {
    const t = this.#idleTimers.get(p);
    if (t) clearTimeout(t);
    this.#idleTimers.delete(p);
  }

  /** Removes a process from the pool (freeing its slot at once) and stops it in the background. */
  #retire(p: MultiplexedProcess): void {
    if (this.#pools.get(p.key) === p) this.#pools.delete(p.key);
    const stopping = p.stop().catch((err: unknown) => this.#log.error({ err, pool: p.key }, 'stopping a process failed'));
    this.#stopping.add(stopping);
    void stopping.finally(() => this.#stopping.delete(stopping));
  }
}
