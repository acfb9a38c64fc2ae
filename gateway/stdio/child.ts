/**
 * One child process speaking MCP over stdio: newline-delimited JSON on stdin/stdout, stderr to the log.
 *
 * Own spawn rather than the SDK's StdioClientTransport because the gateway needs what that transport
 * hides: the pid (admin API, tests), a process group so that wrappers (`sh -c`, `npx`) do not leave
 * grandchildren behind, SIGTERM-then-SIGKILL with a configurable grace, and a cap on line length.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { spawnPrivate, type SpawnSpec } from './command.ts';

/** Longest stdout line (one JSON-RPC message) accepted; a process exceeding it is killed. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** After the process exits, how long its pipes may stay open (held by a grandchild) before we stop waiting. */
const PIPE_DRAIN_MS = 1000;
/** How often the rest of a process group is checked while it is being ended. */
const GROUP_POLL_MS = 50;
/** Longest stderr line logged; the rest of a longer line is cut. */
const MAX_STDERR_LINE = 8 * 1024;
/**
 * At most one warning about non-JSON stdout lines per this interval and process, counting the lines
 * dropped since the previous one: a server printing a banner per request (or a stray `console.log` in a
 * loop) must not turn the gateway's log into a copy of its stdout (200,000 lines made 54 MB).
 */
const GARBAGE_WARN_INTERVAL_MS = 10_000;
/** Characters of a non-JSON line quoted in the warning. */
const GARBAGE_SAMPLE_CHARS = 200;

export interface StdioChildEvents {
  /** One parsed JSON value from stdout (not validated beyond being JSON). */
  onMessage(message: unknown): void;
  /**
   * Offered each stdout line before it is parsed: true when the line was taken as it is (it is then
   * neither parsed nor given to onMessage).
   */
  takeLine?(line: string): boolean;
  /** The process is gone (exit, signal, or spawn failure). Called once. */
  onExit(info: { code: number | null; signal: NodeJS.Signals | null; error?: Error }): void;
}

/**
 * The process runs as the leader of its own process group (`detached`), so wrappers (`sh -c`, `npx`) and
 * whatever they start are reached by signalling the group. When the leader is gone, for whatever reason
 * (stop, crash, exit), the rest of its group is ended too: SIGTERM, then SIGKILL after the grace period.
 * A grandchild that holds no pipe of ours would otherwise outlive it unseen, forever.
 */
export class StdioChild {
  readonly pid: number | undefined;
  readonly startedAt = Date.now();
  #child: ChildProcess;
  /** The pipes are closed and onExit was called. */
  #exited = false;
  /** The leader itself has exited (its group may still have members). */
  #leaderExited = false;
  #exitPromise: Promise<void>;
  /** Ending the rest of the group; set when the leader exits. */
  #groupEnded: Promise<void> | undefined;
  /** No signal is sent once the group was seen empty: its id may then be reused by a new group. */
  #groupGone = false;
  #termSent = false;
  /** When the group gets SIGKILL: set by stop(), else grace after the leader's exit. */
  #killAt: number | undefined;
  #graceMs: number;
  #log: Logger;
  /** Bytes read from stdout so far (for the admin API and the backpressure test). */
  stdoutBytes = 0;
  #outputPaused = false;
  /** Non-JSON stdout lines not reported yet, the last of them, and when the last warning was logged. */
  #garbage = { pending: 0, sample: '', warnedAt: -Infinity, timer: undefined as NodeJS.Timeout | undefined };

  /** `graceMs`: how long the rest of the group has between SIGTERM and SIGKILL after a crash. */
  constructor(spec: SpawnSpec, log: Logger, events: StdioChildEvents, graceMs: number) {
    this.#log = log;
    this.#graceMs = graceMs;
    // Tenant data is private to the gateway's user: the folders created here are 0700, and the child
    // starts with umask 077, so the files it creates (a tenant's knowledge graph) are 0600.
    for (const file of spec.dataPaths) mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.#child = spawnPrivate(spec.file, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so stop() reaches grandchildren too (kill(-pid)).
      detached: true,
      windowsHide: true,
    });
    this.pid = this.#child.pid;
    let resolveExit!: () => void;
    this.#exitPromise = new Promise((r) => (resolveExit = r));

    let spawnError: Error | undefined;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.#exited) return;
      this.#exited = true;
      this.#reportGarbage();
      // Release the pipes' descriptors now rather than when the GC finds them.
      this.#child.stdin?.destroy();
      this.#child.stdout?.destroy();
      this.#child.stderr?.destroy();
      resolveExit();
      events.onExit({ code, signal, error: spawnError });
    };
    this.#child.once('error', (err) => {
      spawnError = err;
      // A spawn failure emits no 'exit'/'close'; other errors (a failed kill) are followed by them.
      if (this.#child.pid === undefined) finish(null, null);
      else log.warn({ err }, 'child process error');
    });
    this.#child.once('close', (code, signal) => finish(code, signal));
    // 'close' waits for the pipes too; a grandchild still holding them would hide the exit. Give the
    // pipes a moment to drain the last messages, then call it an exit; the group is ended meanwhile.
    this.#child.once('exit', (code, signal) => {
      this.#leaderExited = true;
      this.#groupEnded = this.#endGroup();
      const timer = setTimeout(() => finish(code, signal), PIPE_DRAIN_MS);
      timer.unref();
    });
    // A write to a process that just died fails with EPIPE; its exit is handled by 'close'.
    this.#child.stdin!.on('error', (err) => log.debug({ err }, 'stdin write failed'));

    this.#readLines(this.#child.stdout!, MAX_LINE_BYTES, (line) => {
      if (events.takeLine?.(line)) return;
      if (line.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        this.#onGarbage(line);
        return;
      }
      events.onMessage(value);
    }, () => {
      log.error({ limit: MAX_LINE_BYTES }, 'child wrote a stdout line over the limit; killing it');
      this.kill('SIGKILL');
    });
    this.#readLines(this.#child.stderr!, MAX_STDERR_LINE, (line) => {
      if (line.trim() !== '') log.info({ stderr: line }, 'child stderr');
    }, (partial) => log.info({ stderr: partial, truncated: true }, 'child stderr'));
  }

  get exited(): boolean {
    return this.#exited;
  }

  /**
   * Bytes written to stdin that the process has not read yet. `write` buffers whatever the process does
   * not take; the caller refuses new requests above a cap instead of letting this grow without bound.
   */
  get stdinBufferedBytes(): number {
    return this.#child.stdin?.writableLength ?? 0;
  }

  get outputPaused(): boolean {
    return this.#outputPaused;
  }

  /**
   * Stops reading stdout (a session cannot take more): the pipe fills and the process blocks on its
   * next write, so its output waits in the process, not in the gateway. Lines of the chunk being read
   * are still delivered.
   */
  pauseOutput(): void {
    if (this.#outputPaused || this.#exited) return;
    this.#outputPaused = true;
    this.#child.stdout?.pause();
  }

  resumeOutput(): void {
    if (!this.#outputPaused) return;
    this.#outputPaused = false;
    if (!this.#exited) this.#child.stdout?.resume();
  }

  /** Writes one message. Returns false when the process is gone. */
  send(message: unknown): boolean {
    const stdin = this.#child.stdin;
    if (this.#exited || !stdin || stdin.destroyed || !stdin.writable) return false;
    stdin.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  /** Signals the whole process group (the process and everything it started that stayed in the group). */
  kill(signal: NodeJS.Signals): void {
    if (this.#groupGone || this.pid === undefined) return;
    if (signal === 'SIGTERM') this.#termSent = true;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // The group is gone or was never made: signal the process itself.
      if (this.#leaderExited) return;
      try {
        this.#child.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  /**
   * Closes stdin (many servers exit on EOF), sends the group SIGTERM, and SIGKILL after `graceMs`.
   * Resolves when the process has exited and the rest of its group is gone or was sent SIGKILL.
   */
  async stop(graceMs: number): Promise<void> {
    if (!this.#leaderExited && this.#killAt === undefined) {
      this.#killAt = Date.now() + graceMs;
      // Read stdout to its end, so the exit is seen by 'close' rather than after the pipe-drain wait.
      this.resumeOutput();
      this.#child.stdin?.end();
      this.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (this.#leaderExited) return; // the rest of the group is #endGroup's
        this.#log.warn({ graceMs }, 'child ignored SIGTERM; sending SIGKILL');
        this.kill('SIGKILL');
      }, graceMs);
      await this.#exitPromise;
      clearTimeout(timer);
    }
    await this.#exitPromise;
    await this.#groupEnded;
  }

  whenExited(): Promise<void> {
    return this.#exitPromise;
  }

  /**
   * The leader has exited: what is left of its group is orphaned. SIGTERM it (unless stop() already
   * did), wait until it is empty or the deadline passes, then SIGKILL it. Polls: a process that is not
   * our child gives no exit event, and the wait is bounded by the grace period.
   */
  async #endGroup(): Promise<void> {
    const killAt = this.#killAt ?? Date.now() + this.#graceMs;
    if (!this.#groupAlive()) return;
    if (!this.#termSent) this.kill('SIGTERM');
    while (this.#groupAlive() && Date.now() < killAt) {
      await new Promise((r) => setTimeout(r, Math.min(GROUP_POLL_MS, killAt - Date.now())));
    }
    if (!this.#groupAlive()) return;
    this.#log.warn({ graceMs: this.#graceMs }, 'processes left in the child\'s group ignored SIGTERM; sending SIGKILL');
    this.kill('SIGKILL');
    this.#groupGone = true;
  }

  /** Whether any process is left in the group (false once seen empty, for good). */
  #groupAlive(): boolean {
    if (this.#groupGone || this.pid === undefined) return false;
    try {
      process.kill(-this.pid, 0);
      return true;
    } catch (err) {
      // EPERM: a member we may not signal (it changed its user); nothing we can do about it.
      this.#groupGone = (err as NodeJS.ErrnoException).code !== 'EPERM';
      return !this.#groupGone;
    }
  }

  /** A non-JSON stdout line: reported at once if the last report is old enough, else counted for the next. */
  #onGarbage(line: string): void {
    const g = this.#garbage;
    g.pending++;
    g.sample = line.slice(0, GARBAGE_SAMPLE_CHARS);
    const wait = g.warnedAt + GARBAGE_WARN_INTERVAL_MS - Date.now();
    if (wait <= 0) this.#reportGarbage();
    else if (!g.timer) {
      g.timer = setTimeout(() => this.#reportGarbage(), wait);
      g.timer.unref();
    }
  }

  #reportGarbage(): void {
    const g = this.#garbage;
    clearTimeout(g.timer);
    g.timer = undefined;
    if (g.pending === 0) return;
    this.#log.warn(
      { dropped: g.pending, line: g.sample, intervalMs: GARBAGE_WARN_INTERVAL_MS },
      'child wrote non-JSON lines on stdout; ignored (`dropped` counts them since the last such warning)',
    );
    g.pending = 0;
    g.sample = '';
    g.warnedAt = Date.now();
  }

  /** Splits a stream into lines by bytes (one decode per line), with a cap per line. */
  #readLines(stream: NodeJS.ReadableStream, cap: number, onLine: (line: string) => void, onOverflow: (partial: string) => void): void {
    let chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    stream.on('data', (data: Buffer) => {
      if (stream === this.#child.stdout) this.stdoutBytes += data.length;
      let start = 0;
      for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
        const piece = data.subarray(start, nl);
        start = nl + 1;
        if (overflowed) {
          overflowed = false;
          continue;
        }
        const line = size === 0 ? piece.toString('utf8') : Buffer.concat([...chunks, piece]).toString('utf8');
        chunks = [];
        size = 0;
        onLine(line);
      }
      if (start < data.length && !overflowed) {
        const rest = data.subarray(start);
        chunks.push(rest);
        size += rest.length;
        if (size > cap) {
          overflowed = true;
          onOverflow(Buffer.concat(chunks).subarray(0, Math.min(size, MAX_STDERR_LINE)).toString('utf8'));
          chunks = [];
          size = 0;
        }
      }
    });
  }
}
