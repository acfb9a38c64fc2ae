/**
 * Server-sent events by protocol framing, not by chunk: the relay forwards each event the moment its
 * terminating blank line arrives, never a half event, and never holds a complete one back.
 *
 * Blocks are kept as the upstream wrote them (line endings, comments, `id:`, `retry:`, field order),
 * so an event no plugin touches is forwarded byte for byte. eventsource-parser is the right tool for a
 * consumer, but it hands out parsed fields, not the raw block a proxy must forward unchanged.
 */
import { StringDecoder } from 'node:string_decoder';

/** A blank line ends an event: two line terminators in a row (`\r\n`, `\n` or `\r`, mixed). */
const BOUNDARY = /(?:\r\n|\r|\n)(?:\r\n|\r|\n)/g;

export class SseFramer {
  readonly #decoder = new StringDecoder('utf8');
  #buf = '';
  /** Bytes (UTF-16 units) of an incomplete event held back, to cap memory. */
  get pendingLength(): number {
    return this.#buf.length;
  }

  /** Feeds a chunk; returns the complete events it finished, each with its terminator. */
  push(chunk: Buffer): string[] {
    this.#buf += this.#decoder.write(chunk);
    const events: string[] = [];
    let start = 0;
    BOUNDARY.lastIndex = 0;
    for (let m = BOUNDARY.exec(this.#buf); m; m = BOUNDARY.exec(this.#buf)) {
      const end = m.index + m[0].length;
      // A `\r` at the very end may be the first half of `\r\n`: wait for the next chunk.
      if (end === this.#buf.length && this.#buf.endsWith('\r')) break;
      events.push(this.#buf.slice(start, end));
      start = end;
    }
    this.#buf = start === 0 ? this.#buf : this.#buf.slice(start);
    return events;
  }

  /** Whatever is left when the stream ends (an unterminated event is forwarded as it is). */
  flush(): string {
    const rest = this.#buf + this.#decoder.end();
    this.#buf = '';
    return rest;
  }
}

export interface SseFields {
  /** `event:` value; undefined means the default type `message`. */
  event?: string;
  /** `data:` lines joined with `\n`; undefined when the event has no data line. */
  data?: string;
  id?: string;
}

/** The fields of one event block (comments and unknown fields ignored). */
export function parseEvent(block: string): SseFields {
  const fields: SseFields = {};
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') fields.data = fields.data === undefined ? value : `${fields.data}\n${value}`;
    else if (name === 'event') fields.event = value;
    else if (name === 'id') fields.id = value;
  }
  return fields;
}

/**
 * The block with its data replaced by `data` (one line per `\n` in it), every other line (id, event,
 * retry, comments) kept in place. Used when a plugin replaced the message an event carries.
 */
export function replaceEventData(block: string, data: string): string {
  const out: string[] = [];
  let written = false;
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === '') continue;
    if (line === 'data' || line.startsWith('data:')) {
      if (!written) {
        for (const part of data.split('\n')) out.push(`data: ${part}`);
        written = true;
      }
      continue;
    }
    out.push(line);
  }
  if (!written) for (const part of data.split('\n')) out.push(`data: ${part}`);
  return `${out.join('\n')}\n\n`;
}

/** A new `message` event carrying one JSON-RPC message. */
export function messageEvent(json: string): string {
  return `event: message\ndata: ${json}\n\n`;
}

/** An SSE comment; clients ignore it, intermediaries see traffic. */
export const HEARTBEAT = ': ping\n\n';
