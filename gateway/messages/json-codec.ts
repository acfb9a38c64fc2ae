/**
 * The JSON codec of the message pipeline: a body (request, JSON answer, or one SSE event's data) to
 * the values it carries, and back.
 *
 * A body is one JSON-RPC message or a batch (an array of them). Nesting is capped before anything
 * walks the value: V8 parses 100,000 nested arrays happily, but `JSON.stringify` and every recursive
 * plugin would then overflow the stack, and a request must never turn into a 500.
 */

/** Deeper than this is refused. JSON-RPC envelope + MCP params leave tool arguments ~90 levels. */
export const MAX_JSON_DEPTH = 100;

export type Decoded =
  | { ok: true; batch: boolean; values: unknown[] }
  | { ok: false; reason: 'parse' | 'shape' | 'depth'; detail: string };

/** Decodes a body. An empty batch or a non-object is not JSON-RPC (`shape`). */
export function decodeJson(body: Buffer | string): Decoded {
  const depth = nestingDepth(body);
  if (depth > MAX_JSON_DEPTH) {
    return { ok: false, reason: 'depth', detail: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` };
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: 'parse', detail: (err as Error).message };
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return { ok: false, reason: 'shape', detail: 'an empty batch' };
    return { ok: true, batch: true, values: value };
  }
  if (!value || typeof value !== 'object') return { ok: false, reason: 'shape', detail: 'not a JSON-RPC object' };
  return { ok: true, batch: false, values: [value] };
}

/** The body for `values`: a batch stays a batch, a lone message stays lone. */
export function encodeJson(values: readonly unknown[], batch: boolean): string {
  return JSON.stringify(batch || values.length !== 1 ? values : values[0]);
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Deepest nesting of `{`/`[` outside strings, stopping as soon as it passes the cap. One pass over the
 * bytes: well under a microsecond per kilobyte, and only on routes whose plugins read messages.
 */
export function nestingDepth(body: Buffer | string): number {
  const n = body.length;
  if (n <= MAX_JSON_DEPTH) return 0; // cannot nest deeper than it is long
  const at = typeof body === 'string' ? (i: number) => body.charCodeAt(i) : (i: number) => body[i];
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = at(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) {
        max = depth;
        if (max > MAX_JSON_DEPTH) return max;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return max;
}
