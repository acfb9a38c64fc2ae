/**
 * The JSON codec of the message pipeline: a body (request, JSON answer, or one SSE event's data) to
 * the values it carries, and back.
 *
 * A body is one JSON-RPC message or a batch (an array of them). Nesting is capped before anything
 * else walks the value: V8 parses 100,000 nested arrays happily, but `JSON.stringify` and every
 * recursive plugin would then overflow the stack, and a request must never turn into a 500.
 */

/** Deeper than this is refused. JSON-RPC envelope + MCP params leave tool arguments ~90 levels. */
export const MAX_JSON_DEPTH = 100;

export type Decoded =
  | { ok: true; batch: boolean; values: unknown[] }
  | { ok: false; reason: 'parse' | 'shape' | 'depth'; detail: string };

/** Decodes a body. An empty batch or a non-object is not JSON-RPC (`shape`). */
export function decodeJson(body: Buffer | string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: 'parse', detail: (err as Error).message };
  }
  // V8's parser is iterative and accepts any depth; what would overflow is everything after it.
  if (nestedDeeperThan(value, MAX_JSON_DEPTH)) {
    return { ok: false, reason: 'depth', detail: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` };
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

/**
 * Whether `value` nests objects/arrays more than `room` levels deep. Walks containers only (a string
 * is a leaf whatever its length, so a 20 MB tool result costs nothing here) and stops at the first
 * path past the cap, so its recursion is never deeper than the cap itself.
 */
export function nestedDeeperThan(value: unknown, room: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (room === 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const e: unknown = value[i];
      if (e !== null && typeof e === 'object' && nestedDeeperThan(e, room - 1)) return true;
    }
    return false;
  }
  for (const k in value) {
    const e = (value as Record<string, unknown>)[k];
    if (e !== null && typeof e === 'object' && nestedDeeperThan(e, room - 1)) return true;
  }
  return false;
}
