/**
 * The start-up banner: what this gateway serves, in the order requests meet it, so an operator reading
 * the first lines of the log knows which plugins guard which route and where the metrics are.
 *
 * Pure: plain data in, lines out (the caller logs them). It never prints a secret: URLs lose their
 * userinfo and query, upstream headers show their names only, stdio arguments are not shown.
 */
import type { GatewayConfig } from '../config/schema.ts';
import type { PrefixMode } from './federation/types.ts';

/** A federation member as the banner shows it: who sees it is config, never a secret. */
export interface FederationMemberLine {
  name: string;
  prefix: string;
  tenants?: readonly string[];
  scopes?: readonly string[];
}

export interface BannerInfo {
  version?: string;
  configPath: string;
  listeners: ReadonlyArray<{ name: string; url: string }>;
  routes: ReadonlyArray<{ name: string; listener: string; path: string; upstream: string; plugins: readonly string[] }>;
  upstreams: ReadonlyArray<
    | { name: string; kind: 'http'; url: string; headerNames: readonly string[]; signsIdentity: boolean }
    | { name: string; kind: 'stdio'; command: string; mode: 'shared' | 'per-session'; poolKey: string }
    | { name: string; kind: 'federation'; members: ReadonlyArray<FederationMemberLine>; prefix: PrefixMode; separator: string }
  >;
  /** Absent when the admin listener is disabled. */
  admin?: { url: string; apiEnabled: boolean };
  /** The gateway's process id: what an operator signals to stop or reload it. */
  pid?: number;
  /** Present when the gateway runs its own authorization server: where people sign in, against what. */
  signIn?: { url: string; accounts: readonly string[] };
}

export function formatBanner(info: BannerInfo): string[] {
  const lines: string[] = [];
  lines.push(`mcp-gateway${info.version ? ` ${info.version}` : ''} started with ${info.configPath}`);

  lines.push('listeners:');
  lines.push(...table(info.listeners.map((l) => [l.name, safeUrl(l.url)])));

  lines.push('routes (request hooks run left to right, response hooks right to left):');
  lines.push(
    ...table(
      info.routes.map((r) => [
        r.name,
        `${r.listener}${r.path}`,
        `-> ${r.upstream}`,
        r.plugins.length ? `[${r.plugins.join(' > ')}]` : '[no plugins: open route]',
      ]),
    ),
  );

  lines.push('upstreams:');
  lines.push(
    ...table(
      info.upstreams.map((u) =>
        u.kind === 'federation'
          ? [u.name, 'federation', `members: ${u.members.map(memberText).join(', ')}`, prefixText(u)]
          : u.kind === 'http'
          ? [
              u.name,
              'http',
              safeUrl(u.url),
              [
                u.headerNames.length ? `adds headers: ${[...u.headerNames].map((h) => h.toLowerCase()).sort().join(', ')}` : '',
                u.signsIdentity ? 'signs identity headers' : '',
              ].filter(Boolean).join('; '),
            ]
          : [u.name, 'stdio', u.command, u.mode === 'per-session' ? 'one process per session' : `one process per ${u.poolKey}`],
      ),
    ),
  );

  if (info.signIn) {
    // Clients that take only a URL send people here; nobody can sign in until an account exists.
    lines.push(`sign-in: ${safeUrl(info.signIn.url)}/oauth/authorize (accounts: ${info.signIn.accounts.join(', ')})`);
  }

  if (info.admin) {
    const admin = safeUrl(info.admin.url);
    lines.push(`metrics: ${admin}/metrics   health: ${admin}/healthz ${admin}/readyz`);
    lines.push(info.admin.apiEnabled ? `admin API: ${admin}/admin/ (bearer admin token)` : 'admin API: off (set admin.token to enable it)');
  } else {
    lines.push('admin listener: disabled (no /metrics, /healthz, /readyz)');
  }
  if (info.pid !== undefined) {
    // Under `npm start` the pid of npm is not the gateway's; this one is.
    lines.push(`pid ${info.pid}: Ctrl-C or SIGTERM stops it (in-flight requests finish first); SIGHUP, or saving ${info.configPath}, reloads it`);
  }
  return lines;
}

/**
 * Builds the banner data from a loaded config and the addresses the listeners actually bound (ports
 * may be 0 in the config).
 */
export function bannerInfoFromConfig(
  config: GatewayConfig,
  runtime: { configPath: string; version?: string; listenerUrls: Readonly<Record<string, string>>; adminUrl?: string; pid?: number },
): BannerInfo {
  return {
    pid: runtime.pid ?? process.pid,
    version: runtime.version,
    configPath: runtime.configPath,
    listeners: config.listeners.map((l) => ({
      name: l.name,
      url: runtime.listenerUrls[l.name] ?? l.publicUrl ?? `http://${l.host}:${l.port}`,
    })),
    routes: config.routes.map((r) => ({
      name: r.name ?? `${r.listener}${r.path}`,
      listener: r.listener,
      path: r.path,
      upstream: r.upstream,
      plugins: r.plugins.map((p) => p.type),
    })),
    upstreams: Object.entries(config.upstreams).map(([name, u]): BannerInfo['upstreams'][number] =>
      'url' in u
        ? { name, kind: 'http', url: u.url, headerNames: Object.keys(u.headers), signsIdentity: u.identity !== undefined }
        : 'stdio' in u
          ? { name, kind: 'stdio', command: u.stdio.command, mode: u.stdio.mode, poolKey: u.stdio.poolKey }
          : {
              name,
              kind: 'federation',
              members: Object.entries(u.federation.members).map(([member, m]) => ({ name: member, ...m })),
              prefix: u.federation.prefix,
              separator: u.federation.separator,
            },
    ),
    signIn: config.authorization ? signInOf(config, runtime.listenerUrls) : undefined,
    admin:
      config.admin.enabled && runtime.adminUrl !== undefined
        ? { url: runtime.adminUrl, apiEnabled: config.admin.token !== '' }
        : undefined,
  };
}

function signInOf(config: GatewayConfig, listenerUrls: Readonly<Record<string, string>>): BannerInfo['signIn'] {
  const auth = config.authorization!;
  const listener = config.listeners.find((l) => l.name === (auth.listener ?? config.listeners[0].name));
  const url = auth.issuer ?? (listener ? listenerUrls[listener.name] ?? listener.publicUrl ?? `http://${listener.host}:${listener.port}` : '');
  const accounts: string[] = [];
  if (auth.accounts.usersFile !== undefined) accounts.push(`${auth.accounts.usersFile} (npm run users -- add)`);
  if (auth.accounts.oidc) accounts.push(`OpenID Connect at ${safeUrl(auth.accounts.oidc.issuer)}`);
  return { url, accounts };
}

/** `graphs (tenants acme, lab-*; scopes graphs)`: a member seen by only some callers says by whom. */
function memberText(m: FederationMemberLine): string {
  const who = [m.tenants && `tenants ${m.tenants.join(', ')}`, m.scopes && `scopes ${m.scopes.join(', ')}`].filter(Boolean);
  return who.length ? `${m.name} (${who.join('; ')})` : m.name;
}

/** How clients see members' names: `names prefixed on collision: everything__, mem__`. */
function prefixText(u: { members: ReadonlyArray<FederationMemberLine>; prefix: PrefixMode; separator: string }): string {
  if (u.prefix === 'never') return 'names never prefixed';
  const prefixes = u.members.map((m) => `${m.prefix}${u.separator}`).join(', ');
  return `names prefixed ${u.prefix === 'always' ? 'always' : 'on collision'}: ${prefixes}`;
}

/** Origin and path only: userinfo and query may hold credentials. */
export function safeUrl(raw: string): string {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** Left-aligned columns, two spaces apart, indented by two; trailing empty cells trimmed. */
function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => `  ${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')}`.trimEnd());
}
