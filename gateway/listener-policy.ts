/**
 * Per-listener checks that run before routing and before any plugin: DNS-rebinding protection
 * (`Host`, `Origin`) and CORS. The gateway rewrites `Host` for the upstream, which disables the
 * upstream's own check, so the gateway must do it here.
 */
import type { IncomingMessage } from 'node:http';
import type { ListenerConfig } from '../config/schema.ts';
import { compileWildcards, type WildcardMatcher } from './wildcard.ts';

const EXPOSED = 'mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, ratelimit, ratelimit-policy, x-request-id';
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/**
 * `*.example.com`, `http://localhost:*`: only `*` is special (a `?` is literal), and ASCII case is
 * ignored, as in DNS (RFC 4343). Matched without RegExp, in time linear in host length × pattern length.
 */
const compileGlobs = (globs: readonly string[]): WildcardMatcher => compileWildcards(globs, { ignoreAsciiCase: true, questionMark: false });

export class ListenerPolicy {
  readonly publicUrl: string;
  readonly #hostsAny: boolean;
  readonly #hosts: WildcardMatcher;
  readonly #origins: WildcardMatcher;
  /** Host header values already accepted (bounded: unknown values are still checked each time). */
  readonly #goodHosts = new Set<string>();

  constructor(cfg: ListenerConfig, boundPort: number) {
    const shownHost = cfg.host === '0.0.0.0' || cfg.host === '::' ? 'localhost' : cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
    const scheme = cfg.tls ? 'https' : 'http';
    this.publicUrl = (cfg.publicUrl ?? `${scheme}://${shownHost}:${boundPort}`).replace(/\/+$/, '');
    const publicHost = new URL(this.publicUrl).hostname;
    const hosts = cfg.allowedHosts ?? [publicHost, ...LOOPBACK_NAMES];
    this.#hostsAny = hosts.includes('*');
    this.#hosts = compileGlobs(hosts);
    const origins = cfg.allowedOrigins ?? [new URL(this.publicUrl).origin, 'http://localhost:*', 'http://127.0.0.1:*'];
    this.#origins = compileGlobs(origins);
  }

  /** Undefined when the Host header is acceptable, else a reason. */
  checkHost(req: IncomingMessage): string | undefined {
    if (this.#hostsAny) return undefined;
    const host = req.headers.host;
    if (!host) return 'the request has no Host header';
    // Nearly every request carries one of a handful of Host values: remember the good ones.
    if (this.#goodHosts.has(host)) return undefined;
    const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
    if (this.#hosts(name)) {
      if (this.#goodHosts.size < 64) this.#goodHosts.add(host);
      return undefined;
    }
    return `Host "${name}" is not allowed on this listener (listeners[].allowedHosts)`;
  }

  originAllowed(origin: string): boolean {
    return this.#origins(origin);
  }

  /** CORS headers for an actual (non-preflight) response; empty when there is no allowed Origin. */
  corsHeaders(origin: string | undefined): Record<string, string> {
    if (!origin || !this.originAllowed(origin)) return {};
    return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED, vary: 'Origin' };
  }

  /** Headers answering a preflight from an allowed origin (no authentication: browsers send none). */
  preflightHeaders(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin ?? '';
    const requested = req.headers['access-control-request-headers'];
    const allowHeaders = typeof requested === 'string' && /^[A-Za-z0-9\-_, ]*$/.test(requested)
      ? requested
      : 'authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id';
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
      'access-control-allow-headers': allowHeaders,
      'access-control-expose-headers': EXPOSED,
      'access-control-max-age': '600',
      vary: 'Origin',
    };
  }
}
