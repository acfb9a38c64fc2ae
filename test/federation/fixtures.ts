/**
 * The federation end-to-end stack: real members (server-everything on Streamable HTTP, server-memory on
 * stdio with one process per tenant, @falkordb/mcpserver behind an API key on the local Redis) and the
 * real gateway in process with a `federation:` upstream in front of them, authenticated with HS256
 * tokens whose `tenant_id` is the tenant.
 *
 * server-everything and FalkorDB are reached through recording forwarders (fixtures-raw.ts), so a test
 * can check what reached a member, and what never did.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, authPlugins, tokenFor } from '../helpers/hs256-auth.ts';
import { freePort, packageBin, startEverything, startFalkorMcp, stopChild, type RunningUpstream } from '../helpers/upstreams.ts';
import { connectV1, connectV2, type ElicitHandler, type V1Connection, type V2Connection } from '../helpers/v2-client.ts';
import { startRecordingProxy, type RecordingProxy } from './fixtures-raw.ts';

export { redisAvailable } from '../tenant/fixtures.ts';
export { textOf } from '../helpers/v2-client.ts';
export { tokenFor } from '../helpers/hs256-auth.ts';

/** FalkorDB's own credential (the gateway adds it; clients never send it). */
export const GRAPHS_API_KEY = 'graphs-key-0123456789abcdef';

/**
 * Upstream names the federation can have as members:
 * - `everything`, `everything2`: the same server-everything (two names, so every tool collides);
 * - `memory`: server-memory on stdio, one process and one file per tenant;
 * - `graphs`: @falkordb/mcpserver (needs Redis);
 * - `nowhere`: a URL on a port nobody listens on (a name no log message contains by chance);
 * - `hung`: a server that accepts connections and never answers.
 */
export type MemberName = 'everything' | 'everything2' | 'memory' | 'graphs' | 'nowhere' | 'hung';

export interface MemberOptions {
  prefix?: string;
  tenants?: string[];
  scopes?: string[];
}

export interface FederationOptions {
  /** Written only when given, so the default (`on-collision`) can be tested too. */
  prefix?: 'always' | 'on-collision' | 'never';
  separator?: string;
  listTimeout?: string;
  /** In listing order. */
  members: Partial<Record<MemberName, MemberOptions>>;
  /** More lines for the `federation:` block, unindented (e.g. `listTtl: 0`). */
  extra?: string[];
}

export interface Members {
  everything: RunningUpstream;
  /** The forwarder in front of server-everything: what the federation sent it. */
  everythingWire: RecordingProxy;
  falkor?: RunningUpstream;
  /** The forwarder in front of FalkorDB. */
  graphsWire?: RecordingProxy;
  memoryBin: string;
  /** A port nothing listens on. */
  downPort: number;
  /** A port that accepts connections and never answers. */
  hungPort: number;
  /** Kills FalkorDB and closes its forwarder: from then on the member refuses connections. */
  killGraphs(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the members. `graphs: true` starts FalkorDB (the caller has checked Redis is there). */
export async function startMembers(opts: { graphs?: boolean } = {}): Promise<Members> {
  const everything = await startEverything('streamableHttp');
  const everythingWire = await startRecordingProxy(everything.url);
  let falkor: RunningUpstream | undefined;
  let graphsWire: RecordingProxy | undefined;
  try {
    if (opts.graphs) {
      falkor = await startFalkorMcp({ apiKey: GRAPHS_API_KEY });
      graphsWire = await startRecordingProxy(falkor.url);
    }
  } catch (err) {
    await everythingWire.close();
    await everything.close();
    throw err;
  }
  const downPort = await freePort();
  const { server: hung, port: hungPort } = await startHungServer();
  return {
    everything,
    everythingWire,
    falkor,
    graphsWire,
    memoryBin: packageBin('@modelcontextprotocol/server-memory'),
    downPort,
    hungPort,
    async killGraphs() {
      if (falkor) await stopChild(falkor.child);
      await graphsWire?.close();
    },
    async close() {
      await Promise.all([everythingWire.close(), graphsWire?.close(), hung.close()]);
      await Promise.all([everything.close(), falkor?.close()]);
    },
  };
}

/** Accepts TCP connections, reads and never writes; close() drops them all. */
async function startHungServer(): Promise<{ server: { close(): Promise<void> }; port: number }> {
  const sockets = new Set<Socket>();
  const srv: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.resume();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return {
    port,
    server: {
      close: () => new Promise<void>((resolve) => {
        srv.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
    },
  };
}

function upstreamYaml(name: MemberName, m: Members): string {
  switch (name) {
    case 'everything':
    case 'everything2':
      return `  ${name}: { url: ${m.everythingWire.url}/mcp }`;
    case 'memory':
      return `  memory: { stdio: { command: ${JSON.stringify(m.memoryBin)}, poolKey: '{tenant}', pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' } } }`;
    case 'graphs':
      if (!m.graphsWire) throw new Error('the graphs member needs startMembers({ graphs: true })');
      return `  graphs: { url: ${m.graphsWire.url}/mcp, headers: { Authorization: "Bearer ${GRAPHS_API_KEY}" } }`;
    case 'hung':
      return `  hung: { url: http://127.0.0.1:${m.hungPort}/mcp }`;
    case 'nowhere':
      return `  nowhere: { url: http://127.0.0.1:${m.downPort}/mcp }`;
  }
}

function memberYaml(opts: MemberOptions): string {
  const parts: string[] = [];
  if (opts.prefix !== undefined) parts.push(`prefix: ${opts.prefix}`);
  if (opts.tenants) parts.push(`tenants: [${opts.tenants.join(', ')}]`);
  if (opts.scopes) parts.push(`scopes: [${opts.scopes.map((x) => `"${x}"`).join(', ')}]`);
  return parts.length ? `{ ${parts.join(', ')} }` : '{}';
}

/** The gateway.yaml of a federation `workspace` over the given members, routed at `main` `/mcp`. */
export function federationYaml(m: Members, opts: FederationOptions): string {
  const names = Object.keys(opts.members) as MemberName[];
  const fed: string[] = [];
  if (opts.prefix) fed.push(`prefix: ${opts.prefix}`);
  if (opts.separator) fed.push(`separator: "${opts.separator}"`);
  fed.push(`listTimeout: ${opts.listTimeout ?? '5s'}`);
  fed.push(...(opts.extra ?? []));
  fed.push('members:');
  for (const n of names) fed.push(`  ${n}: ${memberYaml(opts.members[n]!)}`);
  return `
listeners: [{ name: main, port: 0 }]
upstreams:
${names.map((n) => upstreamYaml(n, m)).join('\n')}
  workspace:
    federation:
${fed.map((l) => `      ${l}`).join('\n')}
routes:
  - name: fed
    listener: main
    path: /mcp
    upstream: workspace
    plugins: ${authPlugins()}
`;
}

export interface FederationGateway {
  tg: TestGateway;
  /** The federated endpoint, `http://127.0.0.1:PORT/mcp`. */
  url: string;
  /** A 2025 client (SDK v1, one session) of this tenant; closed with the gateway. */
  v1(tenant: string, opts?: { onElicit?: ElicitHandler; scope?: string }): Promise<V1Connection>;
  /** A 2026-07-28 client (SDK v2, pinned: no fallback), closed with the gateway. */
  v2(tenant: string, opts?: { onElicit?: ElicitHandler; scope?: string }): Promise<V2Connection>;
  /** Warning (or worse) log lines the gateway wrote, minus the start-up reachability check's. */
  warnings(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startFederation(m: Members, opts: FederationOptions): Promise<FederationGateway> {
  const tg = await startTestGateway(federationYaml(m, opts), { env: GATEWAY_ENV });
  const url = `${tg.url('main')}/mcp`;
  const open: Array<{ close(): Promise<void> }> = [];
  return {
    tg,
    url,
    async v1(tenant, o = {}) {
      const c = await connectV1(url, { token: await tokenFor(tenant, { scope: o.scope }), onElicit: o.onElicit, name: `v1-${tenant}` });
      open.push(c);
      return c;
    },
    async v2(tenant, o = {}) {
      const c = await connectV2(url, { token: await tokenFor(tenant, { scope: o.scope }), mode: 'pin-2026', onElicit: o.onElicit, name: `v2-${tenant}` });
      open.push(c);
      return c;
    },
    warnings: () =>
      tg.logs().filter((l) => typeof l.level === 'number' && l.level >= 40
        && !/is not reachable at|could not be checked at start/.test(String(l.msg ?? ''))),
    async close() {
      await Promise.all(open.map((c) => c.close().catch(() => {})));
      await tg.close();
    },
  };
}

/** Every tool name a v1 client is shown (all pages). */
export async function toolNames(client: V1Client | V2Connection['client']): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined);
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  return names.sort();
}

/** The tools of each member, as the members themselves name them (checked against the real servers). */
export const EVERYTHING_TOOLS = ['echo', 'get-sum', 'get-tiny-image', 'trigger-long-running-operation'];
export const MEMORY_TOOLS = ['create_entities', 'read_graph', 'search_nodes', 'open_nodes', 'add_observations', 'delete_entities', 'create_relations', 'delete_observations', 'delete_relations'];
export const GRAPHS_TOOLS = ['query_graph', 'query_graph_readonly', 'list_graphs', 'delete_graph', 'get_graph_schema', 'get_node_schema', 'get_relationship_schema'];

/** What FalkorDB answers `list_graphs` on plain Redis: proof the call reached FalkorDB. */
export const FALKOR_LIST_GRAPHS = /Failed to list graphs: ERR unknown command 'GRAPH\.LIST'/;
