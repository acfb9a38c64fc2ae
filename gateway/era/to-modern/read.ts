/**
 * Reading a 2026 upstream's answer: a whole JSON body, or an event stream message by message. Both
 * are capped (an upstream cannot make the translator buffer without bound), and an event stream is
 * framed by the SSE codec, so a message split over chunks is read whole and never half.
 */
import { SseFramer, parseEvent } from '../../messages/sse-codec.ts';
import type { UpstreamResponse } from '../../runtime.ts';
import { isObject } from './session.ts';

export class UpstreamTooLarge extends Error {
  constructor(max: number) {
    super(`the upstream's message is larger than ${max} bytes`);
  }
}

export function isEventStream(res: UpstreamResponse): boolean {
  return /^\s*text\/event-stream/i.test(String(res.headers['content-type'] ?? ''));
}

export function isJson(res: UpstreamResponse): boolean {
  return /^\s*application\/(?:[\w.+-]+\+)?json/i.test(String(res.headers['content-type'] ?? ''));
}

/** The whole body as text; throws UpstreamTooLarge past `max` bytes (and destroys the body). */
export async function readText(res: UpstreamResponse, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > max) {
      res.destroy();
      throw new UpstreamTooLarge(max);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A JSON-RPC message (a single object) parsed from text; undefined for anything else. */
export function parseMessage(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) && v.jsonrpc === '2.0' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The JSON-RPC messages of an event stream, in order. Events of another type than `message`, and
 * data that is not a JSON-RPC message, carry nothing for a 2025 client and are skipped (as the SDK's
 * transports do). Ends when the stream ends; throws when it breaks or an event outgrows `max`.
 */
export async function* eventMessages(res: UpstreamResponse, max: number): AsyncGenerator<Record<string, unknown>> {
  const framer = new SseFramer({ maxEventLength: max });
  for await (const chunk of res as AsyncIterable<Buffer | string>) {
    const events = framer.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (framer.overflowed) {
      res.destroy();
      throw new UpstreamTooLarge(max);
    }
    for (const block of events) {
      const m = messageOf(block);
      if (m) yield m;
    }
  }
  const rest = framer.flush();
  if (rest) {
    const m = messageOf(rest);
    if (m) yield m;
  }
}

function messageOf(block: string): Record<string, unknown> | undefined {
  const f = parseEvent(block);
  if ((f.event !== undefined && f.event !== 'message') || f.data === undefined || f.data === '') return undefined;
  return parseMessage(f.data);
}

/** A response's id, as sent (a string or a number), or undefined for other messages. */
export function responseId(m: Record<string, unknown>): string | number | undefined {
  if (m.method !== undefined || !('result' in m || 'error' in m)) return undefined;
  return typeof m.id === 'string' || typeof m.id === 'number' ? m.id : undefined;
}
