/**
 * Upstream targets: how the gateway reaches each configured upstream (an HTTP server through its own
 * agent, a stdio command or a federation served in process), with what it learns about each (era,
 * tool headers).
 */
import http from 'node:http';
import type { Logger } from 'pino';
import type { FederationUpstreamConfig, HttpUpstreamConfig, StdioUpstreamConfig, UpstreamConfig } from '../config/schema.ts';
import { ToolHeaders } from './era/tool-headers.ts';
import { UpstreamEra } from './era/upstream-era.ts';
import { httpPort, inProcessPort } from './era/upstream-port.ts';
import type { Era } from './era/versions.ts';
import type { StdioCache, StdioEntry, UpstreamTarget } from './runtime.ts';
import { signIdentityHeaders } from './upstream-identity.ts';

/** An HTTP or stdio upstream; federations are built by `buildFederationUpstream`, after these. */
export async function buildUpstream(
  name: string,
  cfg: Exclude<UpstreamConfig, FederationUpstreamConfig>,
  dir: string,
  ctx: StdioContext,
): Promise<UpstreamTarget> {
  const agent = newAgent();
  if ('stdio' in cfg) return buildStdioUpstream(name, cfg.stdio, cfg.era, dir, agent, ctx);
  return buildHttpUpstream(name, cfg, agent);
}

function newAgent(): http.Agent {
  // No cap on sockets: every open SSE stream holds one for its whole life, and a capped agent would
  // queue stream N+1 forever without an error. Idle keep-alive sockets are bounded instead.
  return new http.Agent({ keepAlive: true, maxSockets: Infinity });
}

function buildHttpUpstream(name: string, cfg: HttpUpstreamConfig, agent: http.Agent): UpstreamTarget {
  const url = new URL(cfg.url);
  const fixed = { ...cfg.headers };
  const identity = cfg.identity;
  return {
    name,
    kind: 'http',
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    agent,
    timeouts: cfg.timeouts,
    identityPrefix: identity?.headerPrefix.toLowerCase(),
    toolHeaders: new ToolHeaders(),
    era: new UpstreamEra(cfg.era),
    port: httpPort(url.origin, agent),
    requestHeaders(principal) {
      if (!identity || !principal) return fixed;
      return { ...fixed, ...signIdentityHeaders(principal, identity, Date.now()) };
    },
  };
}

export interface StdioContext {
  log: Logger;
  stdio: StdioCache;
  startedStdio: Map<string, StdioEntry>;
  onStdioSessionEnded?(upstream: string, sessionId: string): void;
}

/** Where stdio upstreams seem to live for code that needs a URL base (legacy endpoints); never dialled. */
const STDIO_ORIGIN = 'http://stdio.invalid';
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

async function buildStdioUpstream(
  name: string,
  cfg: StdioUpstreamConfig,
  era: 'auto' | Era,
  dir: string,
  agent: http.Agent,
  ctx: StdioContext,
): Promise<UpstreamTarget> {
  const key = JSON.stringify({ cfg, dir });
  let entry = ctx.stdio.get(name);
  if (!entry || entry.key !== key) {
    // A new or changed stdio upstream is built anew; the old one keeps serving the old runtime's
    // exchanges and is closed by the gateway once that runtime is done.
    // Loaded on demand: a gateway without stdio upstreams never loads the stdio code.
    const { StdioUpstream } = await import('./stdio/upstream.ts');
    const upstream = new StdioUpstream(name, cfg, {
      log: ctx.log.child({ upstream: name }),
      configDir: dir,
      onSessionEnded: (id) => ctx.onStdioSessionEnded?.(name, id),
    });
    entry = { key, upstream };
    ctx.startedStdio.set(name, entry);
  }
  const upstream = entry.upstream;
  return {
    name,
    kind: 'stdio',
    origin: STDIO_ORIGIN,
    // Legacy endpoints name `/mcp` (virtual-session.ts), so a route's client path maps onto it.
    basePath: '/mcp',
    agent,
    // The child is local: a request waits as long as the tool runs (requestTimeout in the multiplexer).
    timeouts: { connect: 0, firstByte: 0, idle: 0, total: 0 },
    requestHeaders: () => NO_HEADERS,
    toolHeaders: new ToolHeaders(),
    era: new UpstreamEra(era),
    port: inProcessPort(upstream),
    stdio: upstream,
    inProcess: upstream,
  };
}

/** Where federations seem to live for code that needs a URL base; never dialled, like STDIO_ORIGIN. */
const FEDERATION_ORIGIN = 'http://federation.invalid';

/**
 * A federation, in front of its members' targets (built before it, and shared with any route that
 * names a member directly). Built anew with every runtime: its sessions live in the sealed ids clients
 * hold, so there is nothing to carry over a reload.
 */
export async function buildFederationUpstream(
  name: string,
  cfg: FederationUpstreamConfig,
  built: ReadonlyMap<string, UpstreamTarget>,
  log: Logger,
): Promise<UpstreamTarget> {
  const members = new Map<string, UpstreamTarget>();
  // The config's cross-checks guarantee each member exists and is no federation.
  for (const member of Object.keys(cfg.federation.members)) members.set(member, built.get(member)!);
  // Loaded on demand, as the stdio code: a gateway without federations never loads it.
  const { createFederation } = await import('./federation/index.ts');
  const fed = createFederation(name, cfg.federation, { log: log.child({ upstream: name }), members });
  return {
    name,
    kind: 'federation',
    origin: FEDERATION_ORIGIN,
    basePath: '/mcp',
    // Never given a socket; there only because every target has one (Runtime.close destroys them all).
    agent: newAgent(),
    // Each member has its own timeouts; the federation adds none on top.
    timeouts: { connect: 0, firstByte: 0, idle: 0, total: 0 },
    requestHeaders: () => NO_HEADERS,
    toolHeaders: new ToolHeaders(),
    // The federation speaks the 2025 era; 2026 clients reach it through the to-legacy translator.
    era: new UpstreamEra('2025'),
    port: inProcessPort(fed),
    inProcess: fed,
    federation: fed,
  };
}
