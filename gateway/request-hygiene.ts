/**
 * Header checks that run first, before anything reads a request header (the Host check, CORS,
 * plugins): a request whose headers can be read two ways is refused rather than guessed at.
 *
 * Node turns repeated header lines into one value, differently by name: it keeps the *first*
 * `Host`, `Authorization` or `Proxy-Authorization` and silently drops the rest, and joins a repeated
 * `Origin` or `Mcp-Session-Id` with ", ". A proxy or load balancer in front of the gateway may have
 * checked the *last* one, and an upstream may split the joined value: each layer would then act on a
 * different credential, host or session. `req.rawHeaders` still has every line, so the gateway counts
 * them there.
 */
import type { IncomingMessage } from 'node:http';
import { coreRefusal, type Refusal } from './errors.ts';

/**
 * Headers that must appear at most once, and why:
 * - `host`: RFC 9112 §3.2 requires a 400 for more than one; it decides the DNS-rebinding check.
 * - `authorization`, `proxy-authorization`: credentials. Node keeps the first; which one a client or
 *   an intermediary meant is unknowable. (The `token` plugin's custom `headerName` is joined with ", "
 *   by Node, which that plugin already refuses as malformed.)
 * - `origin`: joined, `http://localhost:1, https://evil.example` would match the glob
 *   `http://localhost:*` and be echoed back as the allowed CORS origin.
 * - `mcp-session-id`, `mcp-protocol-version`: single values in MCP; the joined value is forwarded.
 *
 * Not listed: `content-length` (Node already answers 400 to a repeat), `transfer-encoding` (Node
 * parses the framing; gateway.ts refuses it where http-proxy-3 mishandles it), `cookie` (the core
 * never forwards it), and list-valued headers such as `accept`, where repeats are legal (RFC 9110 §5.3).
 */
export const SINGLE_VALUED_HEADERS = [
  'host', 'authorization', 'proxy-authorization', 'origin', 'mcp-session-id', 'mcp-protocol-version',
] as const;

/**
 * Undefined when the request's headers are unambiguous, else the refusal:
 * 400 GW_ERR_DUPLICATE_HEADER with `data.header` naming the first repeated header (its values are
 * never echoed: one may be a credential). The connection is closed after the answer, as with any
 * request whose framing or headers a front proxy might have read differently.
 */
export function checkRequestHeaders(req: IncomingMessage): Refusal | undefined {
  // The raw header lines, not `req.headersDistinct`: that builds an array per header on every request,
  // and most requests have none of these names twice. Only names of the right length are lower-cased.
  const raw = req.rawHeaders;
  let seen: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (!NAME_LENGTHS.has(name.length)) continue;
    const lower = name.toLowerCase();
    if (!SINGLE.has(lower)) continue;
    if (seen === undefined || !seen.includes(lower)) {
      (seen ??= []).push(lower);
      continue;
    }
    const count = req.headersDistinct[lower]?.length ?? 2;
    return coreRefusal('GW_ERR_DUPLICATE_HEADER', `the request has ${count} ${lower} headers; send exactly one`, {
      data: { header: lower },
      headers: { connection: 'close' },
    });
  }
  return undefined;
}

const SINGLE = new Set<string>(SINGLE_VALUED_HEADERS);
const NAME_LENGTHS = new Set(SINGLE_VALUED_HEADERS.map((h) => h.length));
