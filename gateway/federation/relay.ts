/**
 * A member's answer on its way to the client: JSON as it is, an event stream message by message.
 *
 * Requests a member sends the client (elicitation, sampling, roots) get ids naming the member, so the
 * client's answer, whichever replica it reaches, goes back to the member that asked, under the id it
 * used. Event ids are not passed on: a member's resumption cursor means nothing to the other members,
 * so the client is not offered to resume (it re-sends instead, as it does without event ids).
 */
import { Readable } from 'node:stream';
import { isRequest } from '../jsonrpc.ts';
import { parseEvent, SseFramer } from '../messages/sse-codec.ts';
import { isEventStream, readBody, UpstreamTooLargeError } from '../era/upstream-read.ts';
import type { UpstreamResponse } from '../runtime.ts';
import { wholeResponse } from '../stdio/response.ts';

const ASKED_PREFIX = 'gw-fed.';

/*
 * Ids name a member by its tag (`m0`, `m1`…, its place in the configuration, the same on every replica
 * running that configuration), never by its name: the client is not told which server is behind what.
 */

/** The id the client sees for a request the member tagged `tag` sent it. */
export function askedId(tag: string, id: string | number): string {
  return ASKED_PREFIX + Buffer.from(JSON.stringify([tag, id])).toString('base64url');
}

/** The member tag and its own id behind an id made by `askedId`; undefined for any other id. */
export function readAskedId(id: unknown): { tag: string; id: string | number } | undefined {
  if (typeof id !== 'string' || !id.startsWith(ASKED_PREFIX) || id.length > 4096) return undefined;
  try {
    const v = JSON.parse(Buffer.from(id.slice(ASKED_PREFIX.length), 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(v) || typeof v[0] !== 'string' || (typeof v[1] !== 'string' && typeof v[1] !== 'number')) return undefined;
    return { tag: v[0], id: v[1] };
  } catch {
    return undefined;
  }
}

/** A message from the member tagged `tag` as the client must see it. */
export function outward(tag: string, message: unknown): unknown {
  if (!isRequest(message)) return message;
  return { ...message, id: askedId(tag, message.id as string | number) };
}

/** A JSON answer of our own making. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): UpstreamResponse {
  return wholeResponse(status, JSON.stringify(body), { 'content-type': 'application/json', ...headers });
}

export function rpcResult(id: unknown, result: unknown): UpstreamResponse {
  return json(200, { jsonrpc: '2.0', id, result });
}

/** A JSON-RPC error answer; `code` is the gateway's stable `GW_ERR_…` name, when there is one. */
export function rpcError(id: unknown, rpcCode: number, message: string, code?: string, status = 200): UpstreamResponse {
  return json(status, { jsonrpc: '2.0', id: id ?? null, error: { code: rpcCode, message, ...(code ? { data: { code } } : {}) } });
}

export const ACCEPTED = (): UpstreamResponse => wholeResponse(202, '');

/**
 * A member's answer relayed: an event stream is read as the client reads it (nothing is buffered
 * beyond one event), every message passed through `outward`. `onEnd` runs once, however it ends.
 */
export async function relay(res: UpstreamResponse, tag: string, maxMessageBytes: number, onEnd: () => void): Promise<UpstreamResponse> {
  if (!isEventStream(res)) {
    try {
      const body = await readBody(res, maxMessageBytes);
      return wholeResponse(res.statusCode, body.toString('utf8'), { 'content-type': String(res.headers['content-type'] ?? 'application/json') });
    } finally {
      onEnd();
    }
  }
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    res.destroy();
    onEnd();
  };
  const out = eventStream(res.statusCode, async function* () {
    try {
      const framer = new SseFramer({ maxEventLength: maxMessageBytes });
      for await (const chunk of res as AsyncIterable<Buffer | string>) {
        const blocks = framer.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        if (framer.overflowed) throw new UpstreamTooLargeError(maxMessageBytes);
        for (const block of blocks) {
          const event = renamedEvent(tag, block);
          if (event) yield event;
        }
      }
      const rest = framer.flush();
      const last = rest ? renamedEvent(tag, rest) : undefined;
      if (last) yield last;
    } finally {
      end();
    }
  });
  // A client gone before the first read never starts the generator: its finally would never run.
  out.once('close', end);
  return out;
}

/** A resumption cursor as the client sees it: the member's tag, then the member's own cursor. */
export function eventId(tag: string, id: string): string {
  return `${tag}.${id}`;
}

/** The member tag and its own cursor behind an id made by `eventId`. */
export function readEventId(id: string): { tag: string; id: string } | undefined {
  const dot = id.indexOf('.');
  if (dot <= 0) return undefined;
  return { tag: id.slice(0, dot), id: id.slice(dot + 1) };
}

const RETRY = /^retry:\s?(\d+)$/m;

/**
 * One of a member's events as the client gets it: its message through `outward`, its id renamed, its
 * `event:` and `retry:` kept, a priming event (id, empty data) kept; comments and non-JSON data dropped.
 */
function renamedEvent(tag: string, block: string): string | undefined {
  const { event, data, id } = parseEvent(block);
  let out = event !== undefined && event !== 'message' ? `event: ${event}\n` : '';
  if (id !== undefined && id !== '') out += `id: ${eventId(tag, id)}\n`;
  const retry = RETRY.exec(block);
  if (retry) out += `retry: ${retry[1]}\n`;
  if (data !== undefined && data !== '') {
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return out === '' ? undefined : `${out}data: \n\n`;
    }
    return `${out}data: ${JSON.stringify(outward(tag, message))}\n\n`;
  }
  return out === '' ? undefined : `${out}data: \n\n`;
}

/**
 * An event stream answer made of what `produce` yields. The client pulls it: `produce` runs only as
 * fast as the client reads. `complete` turns true when it ran to its end (a break leaves it false).
 */
export function eventStream(status: number, produce: () => AsyncGenerator<string, void>): UpstreamResponse {
  let out: UpstreamResponse;
  async function* framed(): AsyncGenerator<string, void> {
    yield* produce();
    out.complete = true;
  }
  out = Readable.from(framed(), { objectMode: false }) as UpstreamResponse;
  out.statusCode = status;
  out.headers = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' };
  out.complete = false;
  return out;
}
