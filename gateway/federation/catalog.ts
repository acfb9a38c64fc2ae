/**
 * Listings: `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list` asked of every
 * member the caller sees, in parallel, each within the federation's `listTimeout`, merged under the
 * federation's names. A member that fails or times out is left out (and reported degraded); the others'
 * items are served. Each member's listing is reused for its `ttlMs` (or the federation's `listTtl`), and
 * forgotten when the member says its list changed. The tables built from the last listing route calls.
 */
import type { UpstreamCall } from '../runtime.ts';
import { MemberError, type Member, type MemberSession } from './members.ts';
import { collisionMessage, exposeNames, type MemberName, type Naming } from './names.ts';
import type { SessionState } from './session.ts';

export interface ListKind {
  method: string;
  /** The result field holding the items. */
  field: string;
  /** Capability letter (members.ts capsLetters). */
  cap: string;
  /** Whether items are named (and so prefixed); resources are routed by URI instead. */
  named: boolean;
  label: string;
}

export const LIST_KINDS: Readonly<Record<string, ListKind>> = {
  'tools/list': { method: 'tools/list', field: 'tools', cap: 't', named: true, label: 'tool' },
  'prompts/list': { method: 'prompts/list', field: 'prompts', cap: 'p', named: true, label: 'prompt' },
  'resources/list': { method: 'resources/list', field: 'resources', cap: 'r', named: false, label: 'resource' },
  'resources/templates/list': { method: 'resources/templates/list', field: 'resourceTemplates', cap: 'r', named: true, label: 'resource template' },
};

/** A merged listing: what the client is shown, and where each name or URI leads. */
export interface Table {
  /** What the client is shown (empty in the copy a session remembers). */
  items: Record<string, unknown>[];
  byName: Map<string, MemberName>;
  /** Resources: URI → member. Templates: their patterns, in member order. */
  byUri: Map<string, string>;
  templates: Array<{ member: string; uriTemplate: string; pattern: RegExp }>;
  /** Set when a name collision remains: the listing is refused with this message. */
  collision?: string;
}

/** What listings need of the federation. */
export interface ListContext {
  naming: Naming;
  listTimeoutMs: number;
  listTtlMs: number;
  /** The member's session for this client session, opened if need be (within `signal`). */
  sessionFor(member: Member, signal: AbortSignal): Promise<MemberSession>;
  /** Records a member's failure (logged once, shown in /readyz) or its recovery. */
  report(member: Member, failure: string | undefined): void;
}

const MAX_PAGES = 100;

/** Lists `kind` across `members` and remembers the table in the session's state. */
export async function listAll(ctx: ListContext, call: UpstreamCall, state: SessionState, members: readonly Member[], kind: ListKind): Promise<Table> {
  const parts = await Promise.all(members.map((m) => listOne(ctx, call, state, m, kind)));
  const entries: Array<{ member: string; item: Record<string, unknown> }> = [];
  parts.forEach((items, i) => { for (const item of items ?? []) entries.push({ member: members[i].name, item }); });
  const table: Table = { items: [], byName: new Map(), byUri: new Map(), templates: [] };
  if (kind.named) {
    const own = entries.map((e) => ({ member: e.member, name: String(e.item.name ?? '') }));
    const exposed = exposeNames(own, ctx.naming);
    if (!exposed.ok) {
      table.collision = collisionMessage(kind.label, exposed.name, exposed.members, ctx.naming.mode);
    } else {
      entries.forEach((e, i) => {
        table.items.push(exposed.names[i] === own[i].name ? e.item : { ...e.item, name: exposed.names[i] });
        table.byName.set(exposed.names[i], own[i]);
      });
    }
  } else {
    for (const e of entries) table.items.push(e.item);
  }
  for (const e of entries) {
    if (typeof e.item.uri === 'string') {
      const first = table.byUri.get(e.item.uri);
      if (first !== undefined && first !== e.member) table.collision ??= `the resource "${e.item.uri}" is offered by both "${first}" and "${e.member}", so reading it would be ambiguous; remove it from one of them (docs/federation.md)`;
      else table.byUri.set(e.item.uri, e.member);
    }
    if (typeof e.item.uriTemplate === 'string') table.templates.push({ member: e.member, uriTemplate: e.item.uriTemplate, pattern: templatePattern(e.item.uriTemplate) });
  }
  // Only the routes are remembered per session (a session may live long, and there may be many);
  // the items themselves go to the client and are forgotten.
  state.tables.set(kind.method, { ...table, items: [] });
  return table;
}

/** One member's items, from its listing cache or asked anew; undefined when it failed. */
async function listOne(ctx: ListContext, call: UpstreamCall, state: SessionState, member: Member, kind: ListKind): Promise<Record<string, unknown>[] | undefined> {
  const key = `${kind.method}\0${member.name}`;
  const cached = state.listings.get(key);
  if (cached && cached.staleAt > Date.now()) return cached.items;
  const signal = deadline(call.signal, ctx.listTimeoutMs);
  for (let attempt = 0; ; attempt++) {
    try {
      const session = await ctx.sessionFor(member, signal);
      if (!session.caps.includes(kind.cap)) return [];
      const items: Record<string, unknown>[] = [];
      let cursor: string | undefined;
      let ttlMs: number | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const answer = await member.ask(call, session, kind.method, cursor === undefined ? undefined : { cursor }, signal);
        if (answer.error) {
          // A member without this list at all has none to offer; that is not a failure.
          if (answer.error.code === -32601) return [];
          throw new MemberError(`answered ${kind.method} with error ${answer.error.code}: ${answer.error.message}`);
        }
        const list = answer.result?.[kind.field];
        if (Array.isArray(list)) for (const it of list) if (it && typeof it === 'object') items.push(it as Record<string, unknown>);
        if (typeof answer.result?.ttlMs === 'number') ttlMs = answer.result.ttlMs;
        cursor = typeof answer.result?.nextCursor === 'string' ? answer.result.nextCursor : undefined;
        if (cursor === undefined) break;
      }
      ctx.report(member, undefined);
      const ttl = ttlMs ?? ctx.listTtlMs;
      if (ttl > 0) state.listings.set(key, { items, staleAt: Date.now() + ttl });
      return items;
    } catch (err) {
      if (err instanceof MemberError && err.sessionGone && attempt === 0) {
        state.forget(member.name);
        continue;
      }
      if (call.signal.aborted) return undefined;
      ctx.report(member, err instanceof MemberError ? err.message : String(err));
      return undefined;
    }
  }
}

/** An abort signal that fires when `parent` does or after `ms`, with a reason a person can read. */
export function deadline(parent: AbortSignal, ms: number): AbortSignal {
  if (ms <= 0) return parent;
  const ctl = new AbortController();
  const onParent = () => clearTimeout(timer);
  const timer = setTimeout(() => {
    // The parent may live as long as the federation (its closing signal): leave no listener on it.
    parent.removeEventListener('abort', onParent);
    ctl.abort(new MemberError(`timed out after ${ms} ms`, { code: 'GW_ERR_UPSTREAM_TIMEOUT' }));
  }, ms);
  timer.unref();
  parent.addEventListener('abort', onParent, { once: true });
  return AbortSignal.any([parent, ctl.signal]);
}

/**
 * A URI template (RFC 6570) as a pattern matching the URIs it expands to: each `{…}` expression may
 * stand for any text. Loose on purpose: it only has to tell members' URI spaces apart.
 */
function templatePattern(template: string): RegExp {
  const parts = template.split(/\{[^}]*\}/).map((lit) => lit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 's');
}

/**
 * The member a URI belongs to: a listed resource, else the one member whose templates match, else the
 * one member that offers resources at all. Undefined when none or several could.
 */
export function memberForUri(uri: string, resources: Table | undefined, templates: Table | undefined, candidates: readonly Member[]): string | undefined | { ambiguous: string[] } {
  const listed = resources?.byUri.get(uri);
  if (listed !== undefined) return listed;
  const matching = new Set<string>();
  for (const t of templates?.templates ?? []) if (t.pattern.test(uri)) matching.add(t.member);
  if (matching.size === 1) return [...matching][0];
  if (matching.size > 1) return { ambiguous: [...matching] };
  return candidates.length === 1 ? candidates[0].name : undefined;
}
