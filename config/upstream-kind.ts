/**
 * `upstreams.<name>` is an HTTP MCP server (`url`), a command (`stdio`) or several upstreams behind one
 * endpoint (`federation`). A plain zod union reports the errors of whichever alternative it finds
 * closest, so `stdio: { comand: … }` used to be reported as "url: expected string" and `url` + `stdio`
 * together as "stdio: unknown key". Here the alternative is chosen by the key the user wrote, and only
 * its errors are reported, so each message names the real mistake:
 *
 *   upstreams.memory: give exactly one of "url" (an HTTP MCP server), …; not "url" and "stdio" together
 *   upstreams.memory.stdio.comand: unknown key
 *   upstreams.memory.headers: unknown key (only HTTP upstreams, with "url", have it)
 */
import { z } from 'zod';

type Shape = z.ZodRawShape;

/** One kind of upstream: its schema, and how messages name it. */
export interface UpstreamKind<S extends z.ZodObject<Shape> = z.ZodObject<Shape>> {
  schema: S;
  /** What the key means, in the "give one of" message: `an HTTP MCP server`. */
  what: string;
  /** Who has a key, in the "only … have it" message: `HTTP upstreams, with "url",`. */
  who: string;
}

/** @param kinds keyed by the key that selects each kind (`url`, `stdio`, `federation`), in message order. */
export function upstreamSchema<K extends Record<string, UpstreamKind>>(kinds: K) {
  const selectors = Object.keys(kinds);
  const keysOf = new Map(selectors.map((k) => [k, new Set(Object.keys(kinds[k].schema.shape))]));
  const listed = selectors.map((k) => `"${k}" (${kinds[k].what})`);
  const choices = `${listed.slice(0, -1).join(', ')} or ${listed.at(-1)}`;
  type Out = z.output<K[keyof K]['schema']>;
  return z.unknown().transform((value, ctx): Out => {
    const fields = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    const given = fields ? selectors.filter((k) => k in fields) : [];
    if (!fields || given.length !== 1) {
      const message = !fields
        ? `expected an object: give one of ${choices}`
        : given.length === 0
          ? `give one of ${choices}`
          : `give exactly one of ${choices}; not ${given.map((k) => `"${k}"`).join(' and ')} together`;
      ctx.addIssue({ code: 'custom', message, input: value });
      return z.NEVER;
    }
    const chosen = given[0];
    const result = kinds[chosen].schema.safeParse(value);
    if (result.success) return result.data as Out;
    for (const issue of result.error.issues) {
      if (issue.code !== 'unrecognized_keys' || issue.path.length > 0) {
        ctx.addIssue({ ...issue, input: undefined });
        continue;
      }
      // A key of another kind (`headers` next to `stdio`) says what the user mixed up.
      const owners = (key: string) => selectors.filter((k) => k !== chosen && keysOf.get(k)!.has(key));
      const plain = issue.keys.filter((key) => owners(key).length === 0);
      if (plain.length > 0) ctx.addIssue({ ...issue, keys: plain, input: undefined });
      for (const key of issue.keys.filter((k) => owners(k).length > 0)) {
        const who = owners(key).map((k) => kinds[k].who);
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown key (only ${who.join(' and ')} have it)`, input: undefined });
      }
    }
    return z.NEVER;
  });
}
