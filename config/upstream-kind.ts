/**
 * `upstreams.<name>` is either an HTTP MCP server (`url`) or a command (`stdio`). A plain zod union
 * reports the errors of whichever alternative it finds closest, so `stdio: { comand: … }` used to be
 * reported as "url: expected string" and `url` + `stdio` together as "stdio: unknown key". Here the
 * alternative is chosen by the key the user wrote, and only its errors are reported, so each message
 * names the real mistake:
 *
 *   upstreams.memory: give either "url" (an HTTP MCP server) or "stdio" (a command), not both
 *   upstreams.memory.stdio.comand: unknown key
 *   upstreams.memory.headers: unknown key (only HTTP upstreams, with "url", have it)
 */
import { z } from 'zod';

type Shape = z.ZodRawShape;

const BOTH = 'give either "url" (an HTTP MCP server) or "stdio" (a command), not both';
const NEITHER = 'give "url" (an HTTP MCP server) or "stdio" (a command)';

export function upstreamSchema<H extends z.ZodObject<Shape>, S extends z.ZodObject<Shape>>(http: H, stdio: S) {
  const httpKeys = new Set(Object.keys(http.shape));
  const stdioKeys = new Set(Object.keys(stdio.shape));
  return z.unknown().transform((value, ctx): z.output<H> | z.output<S> => {
    const fields = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    const hasUrl = fields !== undefined && 'url' in fields;
    const hasStdio = fields !== undefined && 'stdio' in fields;
    if (!fields || hasUrl === hasStdio) {
      ctx.addIssue({ code: 'custom', message: hasUrl ? BOTH : fields ? NEITHER : `expected an object: ${NEITHER}`, input: value });
      return z.NEVER;
    }
    const [schema, otherKeys, other] = hasStdio ? [stdio, httpKeys, 'HTTP upstreams, with "url",'] : [http, stdioKeys, 'stdio upstreams'];
    const result = schema.safeParse(value);
    if (result.success) return result.data as z.output<H> | z.output<S>;
    for (const issue of result.error.issues) {
      if (issue.code !== 'unrecognized_keys' || issue.path.length > 0) {
        ctx.addIssue({ ...issue, input: undefined });
        continue;
      }
      // A key of the other kind (`headers` next to `stdio`) says what the user mixed up.
      const plain = issue.keys.filter((k) => !otherKeys.has(k));
      if (plain.length > 0) ctx.addIssue({ ...issue, keys: plain, input: undefined });
      for (const key of issue.keys.filter((k) => otherKeys.has(k))) {
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown key (only ${other} have it)`, input: undefined });
      }
    }
    return z.NEVER;
  });
}
