/**
 * Server-sent events by protocol framing, not by chunk.
 *
 * The framer forwards each event the moment its terminating blank line arrives, never half an event,
 * and never holds a complete one back. Its work is linear in the bytes it sees: it keeps its scan
 * position across chunks (jumping from line terminator to line terminator with `indexOf`) and keeps a
 * pending event as a list of pieces, joined once when the event completes. A pending event larger than
 * the cap is an overflow, reported once; the caller ends the stream.
 *
 * In `track` mode it keeps no text at all, only whether the stream is between events, for relays that
 * forward bytes as they come but must know when a heartbeat comment is safe to insert.
 *
 * Blocks are kept as the upstream wrote them (line endings, comments, `id:`, `retry:`, field order),
 * so an event no plugin touches is forwarded byte for byte. eventsource-parser is the right tool for a
 * consumer, but it hands out parsed fields, not the raw block a proxy must forward unchanged.
 */
import { StringDecoder } from 'node:string_decoder';

const LF = 10;
const CR = 13;
const NO_EVENTS: string[] = [];

export class SseFramer {
  readonly #decoder = new StringDecoder('utf8');
  readonly #track: boolean;
  readonly #max: number;
  /** Pieces of the event under way (frame mode). */
  #parts: string[] = [];
  #pendingLength = 0;
  /** At the start of a line: a terminator here ends the event. */
  #lineStart = true;
  /** The last character seen was `\r`: a following `\n` belongs to the same terminator. */
  #afterCR = false;
  /** The blank line that ended an event was a lone `\r` at a chunk's end: its `\n` may follow. */
  #heldEvent: string | undefined;
  #overflowed = false;

  /**
   * @param opts.maxEventLength longest pending event, in UTF-16 units; Infinity for none.
   * @param opts.track keep no text, only the boundary state (`betweenEvents`).
   */
  constructor(opts: { maxEventLength?: number; track?: boolean } = {}) {
    this.#max = opts.maxEventLength ?? Infinity;
    this.#track = opts.track ?? false;
  }

  /** Length of an incomplete event held back (0 in track mode). */
  get pendingLength(): number {
    return this.#pendingLength;
  }

  /** True when no event is under way, so a comment written now cannot split one. */
  get betweenEvents(): boolean {
    return this.#lineStart && !this.#midEvent && !this.#afterCR && this.#heldEvent === undefined;
  }

  /** Set once a pending event grew past the cap; nothing is returned from then on. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** Whether bytes of an event have been seen since the last boundary (track mode needs it). */
  #midEvent = false;

  /** Feeds a chunk; returns the complete events it finished, each with its terminator. */
  push(chunk: Buffer): string[] {
    if (this.#overflowed) return [];
    if (this.#track) {
      this.#trackBytes(chunk);
      return NO_EVENTS;
    }
    const text = this.#decoder.write(chunk);
    const events: string[] = [];
    const n = text.length;
    let i = 0;
    let start = 0; // where the current event's text begins in `text`
    if (this.#heldEvent !== undefined && n > 0) {
      const held = this.#heldEvent;
      this.#heldEvent = undefined;
      if (text.charCodeAt(0) === LF) {
        events.push(held + '\n');
        i = start = 1;
      } else {
        events.push(held);
      }
      this.#afterCR = false;
    }
    // Positions of the next `\n` and `\r`, recomputed only once passed, so a chunk is scanned once.
    let nextLF = -2;
    let nextCR = -2;
    while (i < n) {
      if (this.#afterCR) {
        this.#afterCR = false;
        if (text.charCodeAt(i) === LF) {
          i++;
          continue;
        }
      }
      if (!this.#lineStart) {
        if (nextLF !== -1 && nextLF < i) nextLF = text.indexOf('\n', i);
        if (nextCR !== -1 && nextCR < i) nextCR = text.indexOf('\r', i);
        const j = nextLF === -1 ? nextCR : nextCR === -1 ? nextLF : Math.min(nextLF, nextCR);
        if (j === -1) {
          i = n;
          break;
        }
        i = j;
      }
      const c = text.charCodeAt(i);
      if (c !== LF && c !== CR) {
        // A character at the start of a line: the line has content.
        this.#lineStart = false;
        this.#midEvent = true;
        i++;
        continue;
      }
      i++;
      if (!this.#lineStart) {
        // End of a line with content.
        this.#lineStart = true;
        if (c === CR) this.#afterCR = true;
        continue;
      }
      // A terminator at the start of a line: a blank line, the event ends here.
      if (c === CR) {
        if (i < n && text.charCodeAt(i) === LF) i++;
        else if (i === n) {
          // The `\n` of a `\r\n` may be in the next chunk: hold the event until it is seen.
          const held = this.#take(text, start, i);
          if (!this.#overflowed && !this.#track) this.#heldEvent = held;
          this.#afterCR = true;
          this.#midEvent = false;
          return events;
        }
      }
      // (A blank line with no event before it is forwarded too: it dispatches nothing.)
      const event = this.#take(text, start, i);
      if (this.#overflowed) return events;
      if (!this.#track) events.push(event);
      this.#midEvent = false;
      start = i;
    }
    if (start < n && !this.#track) {
      this.#parts.push(text.slice(start));
      this.#pendingLength += n - start;
      if (this.#pendingLength > this.#max) this.#overflow();
    }
    return events;
  }

  /**
   * Track mode: the same state machine over the raw bytes, nothing decoded or kept. (`\r` and `\n`
   * never occur inside a multi-byte UTF-8 sequence, so bytes are as good as characters here.)
   */
  #trackBytes(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    let nextLF = -2;
    let nextCR = -2;
    while (i < n) {
      if (this.#afterCR) {
        this.#afterCR = false;
        if (chunk[i] === LF) {
          i++;
          continue;
        }
      }
      if (!this.#lineStart) {
        if (nextLF !== -1 && nextLF < i) nextLF = chunk.indexOf(LF, i);
        if (nextCR !== -1 && nextCR < i) nextCR = chunk.indexOf(CR, i);
        const j = nextLF === -1 ? nextCR : nextCR === -1 ? nextLF : Math.min(nextLF, nextCR);
        if (j === -1) return;
        i = j;
      }
      const c = chunk[i++];
      if (c !== LF && c !== CR) {
        this.#lineStart = false;
        this.#midEvent = true;
        continue;
      }
      if (c === CR) this.#afterCR = true;
      // The end of a line with content, or a blank line, which ends the event.
      if (this.#lineStart) this.#midEvent = false;
      this.#lineStart = true;
    }
  }

  /** The pending pieces plus text[start, end), as one event; resets the pending state. */
  #take(text: string, start: number, end: number): string {
    if (this.#track) return '';
    if (this.#pendingLength + (end - start) > this.#max) this.#overflow();
    const tail = text.slice(start, end);
    if (this.#parts.length === 0) return tail;
    this.#parts.push(tail);
    const whole = this.#parts.join('');
    this.#parts = [];
    this.#pendingLength = 0;
    return whole;
  }

  #overflow(): void {
    this.#overflowed = true;
    this.#parts = [];
    this.#pendingLength = 0;
  }

  /** Whatever is left when the stream ends (an unterminated event is forwarded as it is). */
  flush(): string {
    const rest = (this.#heldEvent ?? '') + this.#parts.join('') + this.#decoder.end();
    this.#heldEvent = undefined;
    this.#parts = [];
    this.#pendingLength = 0;
    return this.#track || this.#overflowed ? '' : rest;
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
  for (const line of lines(block)) {
    if (line === '' || line.charCodeAt(0) === 58 /* : */) continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (name === 'data') fields.data = fields.data === undefined ? value : `${fields.data}\n${value}`;
    else if (name === 'event') fields.event = value;
    else if (name === 'id') fields.id = value;
  }
  return fields;
}

/**
 * The lines of a block, without terminators (`\r\n`, `\r`, `\n`). Jumps between terminators with
 * `indexOf` rather than a regular expression: an event's data line may be megabytes long.
 */
function lines(block: string): string[] {
  const out: string[] = [];
  const n = block.length;
  let i = 0;
  let nextLF = -2;
  let nextCR = -2;
  while (i < n) {
    if (nextLF !== -1 && nextLF < i) nextLF = block.indexOf('\n', i);
    if (nextCR !== -1 && nextCR < i) nextCR = block.indexOf('\r', i);
    const j = nextLF === -1 ? nextCR : nextCR === -1 ? nextLF : Math.min(nextLF, nextCR);
    if (j === -1) {
      out.push(block.slice(i));
      break;
    }
    out.push(block.slice(i, j));
    i = block.charCodeAt(j) === CR_CODE && block.charCodeAt(j + 1) === LF_CODE ? j + 2 : j + 1;
  }
  return out;
}

const CR_CODE = 13;
const LF_CODE = 10;

/**
 * The block with its data replaced by `data` (one line per `\n` in it), every other line (id, event,
 * retry, comments) kept in place. Used when a plugin replaced the message an event carries.
 */
export function replaceEventData(block: string, data: string): string {
  const out: string[] = [];
  let written = false;
  for (const line of lines(block)) {
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
