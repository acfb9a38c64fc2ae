/**
 * One child process speaking MCP over stdio: newline-delimited JSON on stdin/stdout, stderr to the log.
 *
 * Own spawn rather than the SDK's StdioClientTransport because the bridge needs what that transport
 * hides: the pid (admin API, tests), a process group so that wrappers (`sh -c`, `npx`) do not leave
 * grandchildren behind, SIGTERM-then-SIGKILL with a configurable grace, and a cap on line length.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { SpawnSpec } from './command.ts';

/** Longest stdout line (one JSON-RPC message) accepted; a process exceeding it is killed. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** After the process exits, how long its pipes may stay open (held by a grandchild) before we stop waiting. */
const PIPE_DRAIN_MS = 1000;
/** Longest stderr line logged; the rest of a longer line is cut. */
const MAX_STDERR_LINE = 8 * 1024;

export interface StdioChildEvents {
  /** One parsed JSON value from stdout (not validated beyond being JSON). */
  onMessage(message: unknown): void;
  /** The process is gone (exit, signal, or spawn failure). Called once. */
  onExit(info: { code: number | null; signal: NodeJS.Signals | null; error?: Error }): void;
}

export class StdioChild {
  readonly pid: number | undefined;
  readonly startedAt = Date.now();
  #child: ChildProcess;
  #exited = false;
  #exitPromise: Promise<void>;
  #log: Logger;

  constructor(spec: SpawnSpec, log: Logger, events: StdioChildEvents) {
    this.#log = log;
    for (const file of spec.dataPaths) mkdirSync(path.dirname(file), { recursive: true });
    this.#child = spawn(spec.file, spec.args, {
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
    // pipes a moment to drain the last messages, then call it an exit and end the rest of the group.
    this.#child.once('exit', (code, signal) => {
      const timer = setTimeout(() => {
        if (this.#exited) return;
        if (this.pid !== undefined) {
          try {
            process.kill(-this.pid, 'SIGKILL');
          } catch {
            /* the group is already gone */
          }
        }
        finish(code, signal);
      }, PIPE_DRAIN_MS);
      timer.unref();
    });
    // A write to a process that just died fails with EPIPE; its exit is handled by 'close'.
    this.#child.stdin!.on('error', (err) => log.debug({ err }, 'stdin write failed'));

    this.#readLines(this.#child.stdout!, MAX_LINE_BYTES, (line) => {
      if (line.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        log.warn({ line: line.slice(0, 200) }, 'child wrote a non-JSON line on stdout; ignored');
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

  /** Writes one message. Returns false when the process is gone. */
  send(message: unknown): boolean {
    const stdin = this.#child.stdin;
    if (this.#exited || !stdin || stdin.destroyed || !stdin.writable) return false;
    stdin.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.#exited || this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // The group is gone or was never made: signal the process itself.
      try {
        this.#child.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  /** Closes stdin (many servers exit on EOF), sends SIGTERM, and SIGKILL after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.#exited) return;
    this.#child.stdin?.end();
    this.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.#log.warn({ graceMs }, 'child ignored SIGTERM; sending SIGKILL');
      this.kill('SIGKILL');
    }, graceMs);
    await this.#exitPromise;
    clearTimeout(timer);
  }

  whenExited(): Promise<void> {
    return this.#exitPromise;
  }

  /** Splits a stream into lines by bytes (one decode per line), with a cap per line. */
  #readLines(stream: NodeJS.ReadableStream, cap: number, onLine: (line: string) => void, onOverflow: (partial: string) => void): void {
    let chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    stream.on('data', (data: Buffer) => {
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
