/**
 * The 2025 side of the wire: the headers a 2025 server gets, and the JSON-RPC messages read back from
 * its answers, whichever of JSON or SSE it chose.
 *
 * Answers are read as a pull stream (`MessageReader.next`): nothing is read from the upstream until
 * someone asks for the next message, so a stream parked while the client answers an elicitation, or a
 * client reading slowly, holds the upstream back through TCP instead of filling a buffer here.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { UpstreamResponse } from '../../runtime.ts';
import { messagesOf } from '../upstream-read.ts';
import { HEADER } from '../versions.ts';

/**
 * Client headers that must not reach a 2025 server: the 2026 mirrors of the body (a 2025 server does
 * not read them, and `Mcp-Param-*` repeat tool arguments into places, logs, that the body never went),
 * the protocol version and session (set per call), a resumption cursor of the client's own era, and
 * the framing of the client's body.
 */
function dropped(name: string): boolean {
  return name === HEADER.method || name === HEADER.name || name.startsWith(HEADER.paramPrefix) ||
    name === HEADER.protocolVersion || name === HEADER.session || name === 'last-event-id' ||
    name === 'host' || name === 'content-length' || name === 'transfer-encoding' || name === 'content-type' || name === 'accept';
}

/**
 * The headers of a call to the upstream: the client call's (which already carry the upstream's
 * credentials and none of the client's) minus the 2026 ones, plus the session and its version.
 */
export function legacyHeaders(from: IncomingHttpHeaders, session: { id: string | undefined; version: string } | undefined, kind: 'post' | 'get' | 'delete'): IncomingHttpHeaders {
  const h: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(from)) if (!dropped(k)) h[k] = v;
  if (kind === 'post') {
    h['content-type'] = 'application/json';
    h.accept = 'application/json, text/event-stream';
  } else if (kind === 'get') {
    h.accept = 'text/event-stream';
  }
  if (session) {
    h[HEADER.protocolVersion] = session.version;
    if (session.id !== undefined) h[HEADER.session] = session.id;
  }
  return h;
}

/** Reads and discards a body (a 202's, a DELETE's): the socket goes back to the agent's pool. */
export function drain(res: UpstreamResponse): void {
  res.on('error', () => {});
  res.resume();
}

/** `nextReady` found nothing already at hand. */
export const NOT_READY: unique symbol = Symbol('not ready');

export class MessageReader {
  readonly #res: UpstreamResponse;
  readonly #gen: AsyncGenerator<unknown, void>;
  /** A read begun by `nextReady` that had not finished: the next `next` continues it. */
  #ahead: Promise<IteratorResult<unknown, void>> | undefined;
  #back: unknown[] = [];

  constructor(res: UpstreamResponse, maxMessageBytes: number) {
    this.#res = res;
    this.#gen = messagesOf(res, maxMessageBytes);
  }

  /** The next message; undefined once the answer ended. Rejects when it broke off. */
  async next(): Promise<unknown> {
    if (this.#back.length > 0) return this.#back.shift();
    const p = this.#ahead ?? this.#gen.next();
    this.#ahead = undefined;
    const r = await p;
    return r.done ? undefined : r.value;
  }

  /**
   * The next message if it can be had without waiting on the network (it came in the bytes already
   * received), else `NOT_READY`, the read staying under way for the next `next`. Used to gather the
   * server requests an upstream sent together into one `input_required`.
   */
  async nextReady(): Promise<unknown> {
    if (this.#back.length > 0) return this.#back.shift();
    const p = this.#ahead ?? this.#gen.next();
    this.#ahead = p;
    // If it rejects while nobody waits on it, the rejection is seen by the next `next`.
    p.catch(() => {});
    const r = await Promise.race([p, nextTurn(NOT_READY)]);
    if (r === NOT_READY) return NOT_READY;
    this.#ahead = undefined;
    return r.done ? undefined : r.value;
  }

  /** Puts a message back: the next read returns it first. */
  unshift(message: unknown): void {
    this.#back.unshift(message);
  }

  /** Reads what is left and drops it, in the background. */
  discardRest(): void {
    void (async () => {
      try {
        while ((await this.next()) !== undefined);
      } catch {
        // Broken off: nothing was wanted from it anyway.
      }
    })();
  }

  /** Stops reading: the upstream connection is closed. */
  close(): void {
    this.#res.destroy();
  }
}
