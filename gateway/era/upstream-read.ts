/**
 * Reading what an upstream answers the gateway's own calls (era probes, translators): a whole body, or
 * the data of an event stream's messages one by one. Both are capped, so an upstream cannot make the
 * gateway buffer without bound, and events are framed by the SSE codec, so a message split over chunks
 * is read whole and never half.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseEvent, SseFramer } from '../messages/sse-codec.ts';
import type { UpstreamResponse } from '../runtime.ts';

export class UpstreamTooLargeError extends Error {
  constructor(max: number) {
    super(`an upstream message exceeded ${max} bytes`);
  }
}

export function isEventStream(res: { headers: IncomingHttpHeaders }): boolean {
  return /^\s*text\/event-stream\b/i.test(String(res.headers['content-type'] ?? ''));
}

/** The whole body; throws UpstreamTooLargeError past `max` bytes (and destroys the body). */
export async function readBody(res: UpstreamResponse, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > max) {
      res.destroy();
      throw new UpstreamTooLargeError(max);
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/**
 * The data of each `message` event of a stream, in order. Priming events (empty data) and events of
 * other types carry no message and are skipped. Ends with the stream; throws when it breaks or an event
 * outgrows `max`.
 */
export async function* eventData(res: UpstreamResponse, max: number): AsyncGenerator<string, void> {
  const framer = new SseFramer({ maxEventLength: max });
  for await (const chunk of res as AsyncIterable<Buffer | string>) {
    const events = framer.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (framer.overflowed) {
      res.destroy();
      throw new UpstreamTooLargeError(max);
    }
    for (const block of events) {
      const data = messageData(block);
      if (data !== undefined) yield data;
    }
  }
  const rest = framer.flush();
  const data = rest ? messageData(rest) : undefined;
  if (data !== undefined) yield data;
}

function messageData(block: string): string | undefined {
  const { event, data } = parseEvent(block);
  return (event === undefined || event === 'message') && data ? data : undefined;
}

/** Every JSON-RPC message of an answer, whichever of JSON or SSE it is, in order (a batch, one by one). */
export async function* messagesOf(res: UpstreamResponse, max: number): AsyncGenerator<unknown, void> {
  if (!isEventStream(res)) {
    const body = await readBody(res, max);
    if (body.length > 0) yield* parseMessages(body.toString('utf8'));
    return;
  }
  for await (const data of eventData(res, max)) yield* parseMessages(data);
}

function parseMessages(text: string): unknown[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v : [v];
  } catch {
    // An event that is not JSON carries no JSON-RPC message.
    return [];
  }
}
