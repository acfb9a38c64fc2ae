/**
 * `upstreams.<name>.federation`: several configured upstreams behind one MCP endpoint
 * (docs/federation.md). The YAML is parsed here straight into the `FederationConfig` the federation is
 * built from (gateway/federation/types.ts), defaults filled in, so nothing downstream re-derives them.
 *
 * Checks that need only the federation itself (prefixes) run in the schema; those that need the other
 * upstreams (members exist, no nesting) run with the other cross-references (config/load.ts).
 */
import { z } from 'zod';
import { SCOPE_PATTERN } from '../gateway/oauth/scope.ts';
import type { FederationConfig, FederationMemberConfig } from '../gateway/federation/types.ts';
import { duration } from './units.ts';

/** Prefixes and the separator end up inside tool, prompt and resource names: keep them plain. */
const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;
const SEPARATOR = /^[A-Za-z0-9_.-]{1,8}$/;

/**
 * A tenant id, or a pattern in which `*` stands for any run of characters and `?` for one
 * (gateway/wildcard.ts, as tool names in tool-policy). Whitespace is refused: no tenant id has any, so
 * an entry with some is a typo (`acme, lab` written as one string) that would silently match nobody.
 */
const tenantPattern = z
  .string()
  .regex(/^\S+$/, 'a tenant id, or a pattern with "*" (any characters) and "?" (one character), without spaces');

const MemberSchema = z.strictObject({
  /** Put before this member's names (`<prefix><separator><name>`). Default: the member's upstream name. */
  prefix: z.string().regex(PREFIX, 'use 1 to 64 letters, digits, "_", "." or "-"').optional(),
  /** Tenants that see this member. Default: every tenant. */
  tenants: z.array(tenantPattern).min(1, 'list at least one tenant, or leave "tenants" out for every tenant').optional(),
  /** The caller needs one of these scopes to see this member. Default: no scope needed. */
  scopes: z
    .array(z.string().regex(SCOPE_PATTERN, 'a scope is printable ASCII without spaces, quotes or backslashes'))
    .min(1, 'list at least one scope, or leave "scopes" out')
    .optional(),
});

export const FederationUpstreamSchema = z.strictObject({
  federation: z
    .strictObject({
      /** `always` prefix member names, only `on-collision` (both colliding names get theirs), or `never`. */
      prefix: z.enum(['always', 'on-collision', 'never']).default('on-collision'),
      /** Between a prefix and a name. Default `__`. */
      separator: z.string().regex(SEPARATOR, 'use 1 to 8 letters, digits, "_", "." or "-"').default('__'),
      /**
       * Deadline for one member's part of a listing, or for opening its session. Default 5s. Must be above
       * 0: a member that never answers would otherwise hold every listing forever.
       */
      listTimeout: duration().pipe(z.number().min(1, 'use a duration above 0')).default(5_000),
      /** How long a member's listing is reused when it gives no `ttlMs` of its own. Default 0 (never). */
      listTtl: duration().default(0),
      /** How long members' `list_changed` notifications are gathered into one. Default 200ms. */
      listChangedDebounce: duration().default(200),
      /** What `initialize` names as the server; each field optional. */
      serverInfo: z
        .strictObject({ name: z.string().min(1).optional(), version: z.string().min(1).optional(), title: z.string().min(1).optional() })
        .optional(),
      /** `instructions` of the `initialize` result. */
      instructions: z.string().optional(),
      /** Upstream name → options, in listing order; `null` or `{}` takes the defaults. */
      members: z.record(z.string(), MemberSchema.nullable()),
    })
    .transform((f, ctx): FederationConfig => {
      const members: Record<string, FederationMemberConfig> = {};
      for (const [member, options] of Object.entries(f.members)) {
        // Absent options stay absent (not `undefined`): "every tenant" is the key's absence.
        members[member] = {
          prefix: options?.prefix ?? member,
          ...(options?.tenants && { tenants: options.tenants }),
          ...(options?.scopes && { scopes: options.scopes }),
        };
      }
      if (Object.keys(members).length === 0) {
        ctx.addIssue({ code: 'custom', path: ['members'], message: 'list at least one member (an upstream name)', input: f.members });
      }
      for (const problem of prefixProblems(members, f.prefix, f.separator, f.members)) ctx.addIssue({ ...problem, code: 'custom', input: undefined });
      return {
        members,
        prefix: f.prefix,
        separator: f.separator,
        listTimeoutMs: f.listTimeout,
        listTtlMs: f.listTtl,
        listChangedDebounceMs: f.listChangedDebounce,
        ...(f.serverInfo && { serverInfo: f.serverInfo }),
        ...(f.instructions !== undefined && { instructions: f.instructions }),
      };
    }),
});

export type FederationUpstreamConfig = z.output<typeof FederationUpstreamSchema>;

/**
 * Prefixes must tell members apart in both directions: a client's name is split back into member and
 * name by its prefix, so two members with one prefix, or one prefix-plus-separator that begins another
 * (`a__` and `a__b__`), would make some names belong to either member. With `prefix: never` no name
 * carries a prefix, so none of this applies (prefixes written there are ignored).
 */
function prefixProblems(
  members: Record<string, FederationMemberConfig>,
  mode: FederationConfig['prefix'],
  separator: string,
  written: Record<string, { prefix?: string } | null>,
): Array<{ path: PropertyKey[]; message: string }> {
  if (mode === 'never') return [];
  const problems: Array<{ path: PropertyKey[]; message: string }> = [];
  const shown = (m: string) => `"${members[m].prefix}"${written[m]?.prefix === undefined ? ' (its default: the member\'s name)' : ''}`;
  const names = Object.keys(members);
  names.forEach((b, j) => {
    for (const a of names.slice(0, j)) {
      const pa = members[a].prefix;
      const pb = members[b].prefix;
      const path = ['members', b, 'prefix'];
      if (pa === pb) {
        problems.push({ path, message: `prefix ${shown(b)} is also member "${a}"'s prefix; give each member its own` });
        continue;
      }
      const [short, long, shortMember, longMember] = (pa + separator).length <= (pb + separator).length ? [pa, pb, a, b] : [pb, pa, b, a];
      if ((long + separator).startsWith(short + separator)) {
        const example = `${long}${separator}x`;
        const rest = example.slice(short.length + separator.length);
        problems.push({
          path,
          message:
            `prefix ${shown(b)} overlaps member "${a}"'s prefix ${shown(a)}: "${example}" could mean "x" of member "${longMember}" ` +
            `or "${rest}" of member "${shortMember}"; choose prefixes where neither, followed by "${separator}", begins the other`,
        });
      }
    }
  });
  return problems;
}

/**
 * What only the whole `upstreams` map can tell: every member names an upstream, which is neither a
 * federation (they do not nest: a federation speaks to its members as upstreams, not as federations)
 * nor the federation itself.
 */
export function federationReferenceProblems(upstreams: Record<string, object>): string[] {
  const problems: string[] = [];
  const have = Object.keys(upstreams).join(', ');
  for (const [name, upstream] of Object.entries(upstreams)) {
    if (!('federation' in upstream)) continue;
    const cfg = (upstream as FederationUpstreamConfig).federation;
    for (const member of Object.keys(cfg.members)) {
      const at = `upstreams.${name}.federation.members.${member}`;
      if (member === name) problems.push(`${at}: a federation cannot be its own member`);
      else if (!(member in upstreams)) problems.push(`${at}: no upstream named "${member}" (have: ${have})`);
      else if ('federation' in upstreams[member]) {
        problems.push(`${at}: "${member}" is a federation itself; federations do not nest, list its members here instead`);
      }
    }
  }
  return problems;
}
