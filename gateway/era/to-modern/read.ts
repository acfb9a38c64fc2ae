/**
 * Reading a 2026 upstream's answer: a whole JSON body, or an event stream message by message. Both
 * are capped (an upstream cannot make the translator buffer without bound), and an event stream is
 * framed by the SSE codec, so a message split over chunks is read whole and never half.
 */
import type { UpstreamResponse } from '../../runtime.ts';
import { eventData, readBody } from '../upstream-read.ts';
import { isObject } from './session.ts';

/** The whole body as text; throws UpstreamTooLargeError past `max` bytes. */
export async function readText(res: UpstreamResponse, max: number): Promise<string> {
  return (await readBody(res, max)).toString('utf8');
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
 * The JSON-RPC messages of an event stream, in order. Data that is not a JSON-RPC message carries
 * nothing for a 2025 client and is skipped (as the SDK's transports do).
 */
export async function* eventMessages(res: UpstreamResponse, max: number): AsyncGenerator<Record<string, unknown>> {
  for await (const data of eventData(res, max)) {
    const m = parseMessage(data);
    if (m) yield m;
  }
}

/** A response's id, as sent (a string or a number), or undefined for other messages. */
export function responseId(m: Record<string, unknown>): string | number | undefined {
  if (m.method !== undefined || !('result' in m || 'error' in m)) return undefined;
  return typeof m.id === 'string' || typeof m.id === 'number' ? m.id : undefined;
}
