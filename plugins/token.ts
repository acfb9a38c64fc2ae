/**
 * `token`: finds the client's credential and puts it in the exchange (BEARER_TOKEN) for `jwt` to verify.
 *
 * Sources, allowed per route:
 * - `header`: `Authorization: Bearer <token>` (the standard, RFC 6750 §2.1), or the header named by
 *   `headerName` (e.g. `X-API-Key: <token>`) for clients that can set a header but not that one;
 * - `query`: `?token=<token>`, a deliberate opt-in for MCP clients that cannot send headers at all. The
 *   MCP spec forbids URL tokens because URLs end up in logs, so the parameter is removed from `x.url`
 *   here, before anything (upstream request, logs, metrics) sees the URL; the gateway re-adds it only to
 *   the legacy SSE endpoint URI it hands back to that same client (URL_TOKEN).
 *
 * No passthrough: the core never forwards the client's `Authorization` header; a custom `headerName` is
 * removed from the upstream headers here.
 */
import { z } from 'zod';
import { int } from '../config/units.ts';
import { BEARER_TOKEN, URL_TOKEN, definePlugin, type Exchange, type Verdict } from '../gateway/contract.ts';
import { authVerdict } from './jwt/challenge.ts';

/** RFC 6750 b64token: the characters a bearer token may contain. JWTs fit it. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const BEARER_SCHEME = /^Bearer[ \t]+(.*)$/i;

export const TokenConfigSchema = z.strictObject({
  /**
   * Where the credential may come from, in order of preference: `header` and/or `query`.
   * Default `[header]`. A request carrying a token in a source that is not allowed is refused
   * (GW_ERR_TOKEN_SOURCE), and a URL token is removed from the URL even then, so it never reaches logs.
   */
  sources: z.array(z.enum(['header', 'query'])).min(1).default(['header']),
  /** Query parameter holding the token for the `query` source. Default `token`. */
  queryParam: z.string().min(1).default('token'),
  /**
   * Header holding the token for the `header` source. Default `authorization`, which requires the
   * `Bearer` scheme; any other header (e.g. `X-API-Key`) holds the bare token (a `Bearer ` prefix is
   * tolerated) and is removed from what goes upstream.
   */
  headerName: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'an HTTP header name').default('authorization')
    .transform((h) => h.toLowerCase()),
  /** Longest accepted token, in characters; longer is GW_ERR_TOKEN_MALFORMED. Default 8192. */
  maxLength: int().pipe(z.number().min(16)).default(8192),
});

export type TokenConfig = z.output<typeof TokenConfigSchema>;

type Found = { token: string } | { refuse: Verdict } | undefined;

export default definePlugin({
  type: 'token',
  config: TokenConfigSchema,
  create(config) {
    const allowHeader = config.sources.includes('header');
    const allowQuery = config.sources.includes('query');
    const isAuthorization = config.headerName === 'authorization';
    const described = config.sources.map((s) => (s === 'query' ? `the "${config.queryParam}" query parameter` : isAuthorization ? 'an Authorization: Bearer header' : `the ${config.headerName} header`)).join(' or ');

    function check(x: Exchange, raw: string, where: string): Found {
      if (raw.length === 0) return { refuse: authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', `The token in ${where} is empty.`) };
      if (raw.length > config.maxLength) return { refuse: authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', `The token in ${where} is longer than ${config.maxLength} characters.`) };
      if (!B64TOKEN.test(raw)) return { refuse: authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', `The token in ${where} contains characters a bearer token cannot contain.`) };
      return { token: raw };
    }

    function fromHeader(x: Exchange): Found {
      const value = x.req.headers[config.headerName];
      if (value === undefined) return undefined;
      if (Array.isArray(value)) return { refuse: authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', `More than one ${config.headerName} header.`) };
      const scheme = BEARER_SCHEME.exec(value.trim());
      if (isAuthorization && !scheme) {
        return { refuse: authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', 'The Authorization header must use the Bearer scheme.') };
      }
      return check(x, (scheme ? scheme[1] : value).trim(), `the ${config.headerName} header`);
    }

    /** Reads and always removes the query token, allowed or not: it must never reach logs or the upstream. */
    function fromQuery(x: Exchange): Found {
      const params = x.url.searchParams;
      if (!params.has(config.queryParam)) return undefined;
      const values = params.getAll(config.queryParam);
      // In place, so any reference to this URL object taken before this plugin ran loses the token too.
      params.delete(config.queryParam);
      if (!allowQuery) {
        return { refuse: authVerdict(x, 'GW_ERR_TOKEN_SOURCE', `This endpoint does not accept a token in the URL; send ${described}.`) };
      }
      if (values.length > 1) return { refuse: authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', `More than one "${config.queryParam}" query parameter.`) };
      const found = check(x, values[0], `the "${config.queryParam}" query parameter`);
      if (found && 'token' in found) x.set(URL_TOKEN, { param: config.queryParam, value: found.token });
      return found;
    }

    return {
      name: 'token',
      onRequest(x) {
        // Query first: its removal from the URL must happen even when the request is refused for another reason.
        const query = x.url.search ? fromQuery(x) : undefined;
        if (!isAuthorization) delete x.upstreamHeaders[config.headerName];
        if (query && 'refuse' in query) return query.refuse;
        // A header on a query-only route is ignored, not refused: Authorization is never forwarded anyway.
        const header = allowHeader ? fromHeader(x) : undefined;
        if (header && 'refuse' in header) return header.refuse;
        const headerToken = header && 'token' in header ? header.token : undefined;
        const queryToken = query && 'token' in query ? query.token : undefined;
        if (headerToken && queryToken && headerToken !== queryToken) {
          // RFC 6750 §2: a client must not use more than one method; two different tokens are ambiguous.
          return authVerdict(x, 'GW_ERR_TOKEN_MALFORMED', 'Two different tokens were sent (header and URL); send one.');
        }
        const token = headerToken ?? queryToken;
        if (!token) return authVerdict(x, 'GW_ERR_TOKEN_MISSING', `No token: send ${described}.`);
        x.set(BEARER_TOKEN, token);
      },
    };
  },
});
