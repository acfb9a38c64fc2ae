/**
 * A listener's public origin as the client asking knows it.
 *
 * Why it may follow the request's Host: a listener bound to 127.0.0.1 without `publicUrl` is reached as
 * `http://localhost:3001` by some clients and `http://127.0.0.1:3001` by others (the README says
 * localhost, the bind says 127.0.0.1, both work). OAuth clients compare identifiers exactly (the
 * protected resource's `resource`, the authorization server's `issuer`) and stop with a mismatch before
 * they ever show the real problem. So when the listener's public URL is a loopback URL, identifiers use
 * the loopback name the client sent in `Host`.
 *
 * Only the three loopback names are followed, and only on the public URL's own port: any other Host is
 * the client's choice, not the operator's, and a discovery document must not advertise names nobody
 * configured. A `publicUrl` that is not loopback is used as written. Behind a port mapping
 * (`-p 8080:3001`) the client's port differs: set `publicUrl` there.
 *
 * Used by the `jwt` plugin (plugins/jwt/resource.ts) and the gateway's authorization server.
 */
import type { ListenerInfo } from './contract.ts';

export const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'] as const;
const LOOPBACK_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?$/i;

/** `http://localhost:3001` → `3001`; `http://localhost` → `80`. */
function effectivePort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}

export function isLoopbackUrl(url: URL): boolean {
  return (LOOPBACK_NAMES as readonly string[]).includes(url.hostname.toLowerCase());
}

/**
 * The listener's public origin as the client that sent `host` knows it: its loopback name swapped in
 * when both are loopback and the ports agree, else the configured (or default) public URL.
 */
export function publicOriginFor(listener: ListenerInfo, host: string | undefined): string {
  return originFor(listener.publicUrl, host);
}

/** The same for any configured URL; only its origin is kept when the loopback name is swapped in. */
export function originFor(configuredUrl: string, host: string | undefined): string {
  const configured = configuredUrl.replace(/\/+$/, '');
  if (host === undefined) return configured;
  const m = LOOPBACK_HOST.exec(host);
  if (!m) return configured;
  const pub = new URL(configured);
  if (!isLoopbackUrl(pub)) return configured;
  const port = m[2] ?? (pub.protocol === 'https:' ? '443' : '80');
  if (Number(port) !== Number(effectivePort(pub))) return configured;
  return `${pub.protocol}//${m[1].toLowerCase()}${pub.port ? `:${pub.port}` : ''}`;
}

/**
 * Every loopback spelling of a loopback origin (itself first, as given but without trailing slashes);
 * just that otherwise.
 */
export function loopbackSpellings(origin: string): string[] {
  const url = new URL(origin);
  const base = origin.replace(/\/+$/, '');
  if (!isLoopbackUrl(url)) return [base];
  const others = LOOPBACK_NAMES.map((n) => `${url.protocol}//${n}${url.port ? `:${url.port}` : ''}`);
  return [base, ...others.filter((o) => o !== base)];
}
