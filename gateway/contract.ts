/**
 * The plugin contract: everything a plugin (built-in or a plugin author's module) may see and return.
 *
 * The shape follows Envoy's filter chain and agentgateway's policies:
 * - a plugin is built ONCE per route from validated config (`PluginDefinition.create`), and takes part in
 *   each exchange through hooks;
 * - request hooks run in the route's order, response hooks in reverse (onion);
 * - a plugin never writes to the raw response: it refuses by *returning* a verdict, and the first
 *   refusal wins;
 * - returning nothing means "unchanged / continue";
 * - a hook that throws fails closed (the exchange is refused with GW_ERR_PLUGIN_FAILED).
 *
 * Bodies are parsed only when some plugin on the route has a message hook; otherwise bytes stream
 * straight through the gateway.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { JSONRPCMessage, JSONRPCRequest } from '@modelcontextprotocol/server';

export type { JSONRPCMessage, JSONRPCRequest };
export type Awaitable<T> = T | Promise<T>;

/** HTTP-level verdict. Only possible before the upstream's response head has been sent to the client. */
export type Verdict =
  | { kind: 'continue' }
  | {
      kind: 'respond';
      /** HTTP status, e.g. 401, 403, 429. */
      status: number;
      /** Stable, documented error code: `GW_ERR_…`. Tests assert this, people read `message`. */
      code: string;
      /** What a person can act on. Never contains a secret. */
      message: string;
      headers?: Record<string, string>;
      /** Extra data placed in the JSON-RPC error's `data` next to `code`. */
      data?: Record<string, unknown>;
    };

/** Per JSON-RPC message verdict; the same for JSON bodies, SSE events and each element of a batch. */
export type MessageVerdict =
  | { kind: 'pass' }
  | { kind: 'replace'; message: JSONRPCMessage }
  /** Remove the message silently (e.g. a notification that must not reach this client). */
  | { kind: 'drop' }
  /**
   * Refuse the message. A refused request is answered with a JSON-RPC error carrying its `id` and is
   * not forwarded; a refused notification or response is dropped. `rpcCode` is the JSON-RPC error code
   * (e.g. -32602 invalid params), `code` the gateway's stable `GW_ERR_…` code.
   */
  | {
      kind: 'reject';
      rpcCode: number;
      code: string;
      message: string;
      /** Extra data placed in the JSON-RPC error's `data` next to `code`. */
      data?: Record<string, unknown>;
      /**
       * HTTP status of the answer when the refused message is a lone request in a JSON body (e.g. 429
       * for a rate limit). Inside a batch or an SSE stream each message gets its JSON-RPC error and the
       * HTTP status stays 200. Default 200.
       */
      httpStatus?: number;
      /** HTTP headers for that same lone-request answer (e.g. `retry-after`). */
      httpHeaders?: Record<string, string>;
    };

/** A typed key for per-exchange state, so plugins share values without ad-hoc properties. */
export class Key<T> {
  declare readonly __type?: T;
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/** Who is calling, as established by an authentication plugin. */
export interface Principal {
  /** The token's issuer (`iss`), or the name of the authenticating plugin for non-JWT credentials. */
  issuer: string;
  /** Tenant id. Matches the configured tenant alphabet, so it can be used in names and paths. */
  tenant: string;
  /** Subject (`sub`). */
  subject: string;
  scopes: readonly string[];
  /** `jti` of the token, when it has one. */
  tokenId?: string;
  /** Seconds since the epoch at which the credential stops being valid, when it expires. */
  expiresAt?: number;
  /** All verified claims, for plugins that need more than the fields above. */
  claims: Readonly<Record<string, unknown>>;
}

/** The raw credential found by the token plugin. Never logged, never forwarded upstream. */
export const BEARER_TOKEN = new Key<string>('bearerToken');
/** Set when the credential came from the URL query: the gateway re-adds it to legacy endpoint URIs. */
export const URL_TOKEN = new Key<{ param: string; value: string }>('urlToken');
/** Set by an authentication plugin once the credential is verified. */
export const PRINCIPAL = new Key<Principal>('principal');
/**
 * Epoch milliseconds after which a long-lived response (an SSE stream) must end, e.g. the token's
 * expiry plus a grace period. The gateway closes the stream then; the client reconnects with a fresh
 * token.
 */
export const STREAM_DEADLINE = new Key<number>('streamDeadline');

/**
 * What the core learned of a request's MCP protocol, set before any message hook runs: its era
 * (`2025`: initialize and sessions; `2026`: 2026-07-28 and later, stateless), the protocol version
 * (`MCP-Protocol-Version`, or the body's `_meta`), and the client's `clientInfo` when the request
 * carries it (`initialize`, or every 2026 request's `_meta`).
 */
export interface ProtocolInfo {
  era?: '2025' | '2026';
  version?: string;
  clientInfo?: { name?: unknown; version?: unknown };
}
export const PROTOCOL = new Key<ProtocolInfo>('protocol');

export type Transport = 'streamable-http' | 'sse' | 'unknown';

/** One HTTP request/response pair flowing through a route. */
export interface Exchange {
  /** Unique id of this exchange (also sent upstream as `x-request-id` when the client sent none). */
  readonly id: string;
  readonly route: RouteInfo;
  /** The client's request. Read it; do not consume its body (the gateway does). */
  readonly req: IncomingMessage;
  readonly method: string;
  /**
   * The request URL as the client sent it, path included. Mutable: a plugin may remove a query
   * parameter (the token plugin removes `?token=`) and everything after it (upstream, logs) sees the
   * changed URL.
   */
  url: URL;
  /**
   * Headers that will be sent upstream. Starts as the client's headers minus hop-by-hop headers and the
   * client's credentials (`authorization`, `cookie`: never passed through). Plugins may add, change or
   * delete entries.
   */
  readonly upstreamHeaders: IncomingHttpHeaders;
  /** The client-facing MCP session id, once known (after unsealing), else undefined. */
  readonly sessionId: string | undefined;
  readonly transport: Transport;
  /** `process.hrtime.bigint()` when the exchange started. */
  readonly startedAt: bigint;
  readonly log: Logger;
  get<T>(key: Key<T>): T | undefined;
  set<T>(key: Key<T>, value: T): void;
}

export interface RouteInfo {
  readonly name: string;
  /** Client-facing path prefix, e.g. `/mcp`. */
  readonly path: string;
  readonly listener: ListenerInfo;
  readonly upstream: string;
}

export interface ListenerInfo {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The origin clients use to reach this listener, e.g. `http://localhost:3001`. */
  readonly publicUrl: string;
}

/** The upstream's response head, as seen by `onResponse` hooks. Headers are mutable. */
export interface ResponseHead {
  status: number;
  headers: OutgoingHttpHeaders;
}

/** Context given with each message to message hooks. */
export interface MessageContext {
  /** `request`: client → upstream; `response`: upstream → client. */
  readonly direction: 'request' | 'response';
  /** Where the message travels: a JSON body, an SSE event or an element of a JSON batch. */
  readonly framing: 'json' | 'sse' | 'batch';
  /**
   * For upstream responses: the (possibly rewritten) client request this message answers, when the
   * gateway saw it. Lets a plugin know that a result belongs to e.g. `tools/call list_graphs`.
   */
  readonly request?: JSONRPCRequest;
}

export interface Outcome {
  /** The status sent to the client (0 when the client went away before a head was sent). */
  status: number;
  /** Set when the gateway or a plugin refused the exchange; `message` is the refusal's (never a secret). */
  refusal?: { code: string; plugin?: string; message?: string };
  /**
   * Why the exchange did not complete normally: the client left before its answer was complete, the
   * upstream broke it off, a timeout. An SSE stream that ended by the upstream, a POST's stream that
   * delivered every answer, and a GET stream the client closed (it has no last message) are complete.
   */
  error?: Error;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** Time until the upstream's response head arrived, when the upstream was called. */
  upstreamMs?: number;
  /** JSON-RPC messages refused one by one (e.g. one element of a batch, a denied tool call). */
  messageRefusals: Array<{ id: string | number | null; method?: string; code: string; plugin?: string; message?: string }>;
}

/** A response served by a plugin itself on a fixed path (e.g. OAuth metadata), without auth. */
export interface ServedResponse {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

export interface Plugin {
  readonly name: string;
  onRequest?(x: Exchange): Awaitable<Verdict | void>;
  onRequestMessage?(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): Awaitable<MessageVerdict | void>;
  onResponse?(res: ResponseHead, x: Exchange): Awaitable<Verdict | void>;
  onResponseMessage?(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): Awaitable<MessageVerdict | void>;
  /** Always runs, once, after the exchange ended for any reason. Must not throw (errors are logged). */
  onDone?(x: Exchange, outcome: Outcome): void;
  /**
   * Fixed paths this plugin answers on its route's listener, before any route matching and without
   * authentication (e.g. `/.well-known/oauth-protected-resource/mcp`).
   */
  serves?: Readonly<Record<string, (req: IncomingMessage) => Awaitable<ServedResponse>>>;
  /** Release timers, connections and files (on reload or shutdown). */
  close?(): Awaitable<void>;
  /**
   * Reopen the files this plugin writes by their names (log rotation: after `mv audit.log audit.log.1`
   * a SIGHUP makes new lines go to a new `audit.log`). Called at the start of every reload.
   */
  reopen?(): Awaitable<void>;
}

/** What every plugin factory receives besides its own config. */
export interface PluginDeps {
  /** Logger bound to this plugin (`log.child({ plugin })`); secrets are redacted by its configuration. */
  log: Logger;
  route: RouteInfo;
  /** Folder of the config file: relative paths in plugin config resolve against it. */
  configDir: string;
  /** Shared services configured at the top level of gateway.yaml. */
  shared: SharedServices;
}

export interface SharedServices {
  /** A connected ioredis client when `redis.url` is configured, else undefined. */
  redis?: import('ioredis').Redis;
  /** Key prefix for everything this gateway writes to Redis (`redis.keyPrefix`). */
  redisKeyPrefix: string;
  /** The gateway's own authorization server, when gateway.yaml has an `authorization:` section. */
  authorizationServer?: GatewayAuthorizationServer;
}

/**
 * The gateway's own OAuth authorization server (gateway.yaml `authorization:`), as a plugin that
 * verifies its tokens sees it: who it is, how to check its signatures, and a way to say "I trust it for
 * this route", so that it issues tokens for that route's resource. The endpoints themselves are the
 * core's (gateway/oauth/).
 */
export interface GatewayAuthorizationServer {
  /** Every `iss` its tokens may carry: the issuer, and on a loopback listener each loopback spelling. */
  readonly issuers: readonly string[];
  /** The issuer as a client that sent this `Host` knows it: what protected-resource metadata names. */
  issuerFor(host: string | undefined): string;
  /** Its public keys, for jose's `jwtVerify`. */
  readonly verificationKey: import('jose').JWTVerifyGetKey;
  /** The algorithms it signs with. */
  readonly algorithms: readonly string[];
  /** Claim its tokens carry the tenant in (`authorization.tenantClaim`). */
  readonly tenantClaim: string;
  /** Revocation list file of its signing keys' folder (`<dir>/revoked.txt`), when it signs with a key folder. */
  readonly revocationFile?: string;
  /** Token ids it revoked itself (a reused code or refresh token); checked like any revocation list. */
  revoked(jti: string): boolean;
  /**
   * Called by each plugin that trusts it: from then on it issues tokens whose `aud` is one of
   * `resource.all` (the route's identifiers), with at most the scopes the account may have.
   */
  trust(route: RouteInfo, resource: { readonly canonical: string; readonly all: readonly string[] }, defaultScopes: readonly string[]): void;
}

export interface PluginDefinition<S extends z.ZodType = z.ZodType> {
  /** Its key in gateway.yaml (`plugins: [{ type: jwt, … }]`). */
  readonly type: string;
  /** Plugin types that must appear earlier in the same route; checked when the config loads. */
  readonly requires?: readonly string[];
  /** Strict schema of this plugin's options (everything but `type`). Validated once, at load. */
  readonly config: S;
  create(config: z.output<S>, deps: PluginDeps): Awaitable<Plugin>;
}

/** Helper so plugin modules get their config type inferred. */
export function definePlugin<S extends z.ZodType>(def: PluginDefinition<S>): PluginDefinition<S> {
  return def;
}
