/**
 * The names a federation shows its client: each member's tools, prompts and resource templates under
 * `<prefix><separator><name>` (always), only where two members share a name (on-collision), or as they
 * are (never). Whatever collision remains is reported, never settled by picking one member: a client
 * calling `search` must reach the server whose `search` it was shown.
 */
import type { PrefixMode } from './types.ts';

export interface MemberName {
  member: string;
  /** The member's own name for the item. */
  name: string;
}

export interface Naming {
  mode: PrefixMode;
  separator: string;
  /** Member → prefix, in configuration order. */
  prefixes: ReadonlyMap<string, string>;
}

export type Exposure =
  | { ok: true; names: string[] }
  | { ok: false; name: string; members: string[] };

/** The exposed name of each item (same order), or the first collision that remains. */
export function exposeNames(items: readonly MemberName[], naming: Naming): Exposure {
  let shared: Set<string> | undefined;
  if (naming.mode === 'on-collision') {
    const owner = new Map<string, string>();
    shared = new Set();
    for (const it of items) {
      const first = owner.get(it.name);
      if (first === undefined) owner.set(it.name, it.member);
      else if (first !== it.member) shared.add(it.name);
    }
  }
  const names = items.map((it) =>
    naming.mode === 'always' || shared?.has(it.name) ? prefixed(it, naming) : it.name);
  const seen = new Map<string, string>();
  for (let i = 0; i < names.length; i++) {
    const first = seen.get(names[i]);
    if (first !== undefined) return { ok: false, name: names[i], members: first === items[i].member ? [first] : [first, items[i].member] };
    seen.set(names[i], items[i].member);
  }
  return { ok: true, names };
}

export function prefixed(item: MemberName, naming: Naming): string {
  return `${naming.prefixes.get(item.member) ?? item.member}${naming.separator}${item.name}`;
}

/**
 * The member and own name behind a prefixed name, read from the prefix alone (the configuration
 * refuses prefixes that could be read two ways). Undefined when no member's prefix starts it.
 */
export function splitPrefixed(exposed: string, naming: Naming, members: readonly string[]): MemberName | undefined {
  for (const member of members) {
    const head = `${naming.prefixes.get(member) ?? member}${naming.separator}`;
    if (exposed.length > head.length && exposed.startsWith(head)) return { member, name: exposed.slice(head.length) };
  }
  return undefined;
}

/** What a person reads when a collision remains. */
export function collisionMessage(kind: string, name: string, members: readonly string[], mode: PrefixMode): string {
  const who = members.length === 1
    ? `the upstream "${members[0]}" lists it twice`
    : `the upstreams "${members[0]}" and "${members[1]}" both offer it`;
  const fix = mode === 'never'
    ? 'set the federation\'s `prefix` to `on-collision` or `always`'
    : 'give the members prefixes that cannot produce the same name';
  return `the ${kind} name "${name}" is ambiguous on this federated server: ${who}; ${fix} (docs/federation.md)`;
}
