/**
 * Pure name work for graph-rewrite: prefixing, stripping, filtering listings and log lines.
 * Kept free of the plugin contract so each rule is testable on its own.
 */

/**
 * Characters that may continue a graph name. A tenant prefix counts as found only where none of these
 * precede it, so tenant `acme` does not match inside `bacme_x` or `b_acme_x`.
 */
const NAME_CHAR = 'A-Za-z0-9_.\\-';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class TenantNames {
  readonly tenant: string;
  readonly prefix: string;
  readonly #prefixAtTokenStart: RegExp;

  constructor(tenant: string, separator: string) {
    this.tenant = tenant;
    this.prefix = `${tenant}${separator}`;
    this.#prefixAtTokenStart = new RegExp(`(?<![${NAME_CHAR}])${escapeRegExp(this.prefix)}`, 'g');
  }

  /** The name the upstream sees. */
  toUpstream(name: string): string {
    return this.prefix + name;
  }

  owns(upstreamName: string): boolean {
    return upstreamName.startsWith(this.prefix) && upstreamName.length > this.prefix.length;
  }

  /** The name the client sees, or undefined when the upstream name is not this tenant's. */
  toClient(upstreamName: string): string | undefined {
    return this.owns(upstreamName) ? upstreamName.slice(this.prefix.length) : undefined;
  }

  /**
   * Replaces every occurrence of the upstream name `upstreamName` (one of ours) in `text` by the name the
   * client knows. Only whole names are replaced: not when more name characters follow or precede.
   */
  stripName(text: string, upstreamName: string, clientName: string): string {
    if (!text.includes(upstreamName)) return text;
    const re = new RegExp(`(?<![${NAME_CHAR}])${escapeRegExp(upstreamName)}(?![${NAME_CHAR}])`, 'g');
    return text.replace(re, () => clientName);
  }

  /** Whether `text` mentions a name carrying this tenant's prefix. */
  mentionsOwn(text: string): boolean {
    this.#prefixAtTokenStart.lastIndex = 0;
    return this.#prefixAtTokenStart.test(text);
  }

  /** Removes this tenant's prefix wherever a name carrying it starts. */
  stripPrefixes(text: string): string {
    return text.replace(this.#prefixAtTokenStart, '');
  }

  /**
   * Keeps the lines of a listing that name this tenant's graphs, unprefixed. Lines without the expected
   * `linePrefix` are dropped: a line the plugin cannot read could name anyone's graph.
   */
  filterListing(text: string, linePrefix: string): string {
    const kept: string[] = [];
    for (const raw of text.split('\n')) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (!line.startsWith(linePrefix)) continue;
      const name = this.toClient(line.slice(linePrefix.length));
      if (name !== undefined) kept.push(linePrefix + name);
    }
    return kept.join('\n');
  }
}

/**
 * Returns `value` with `fn` applied to every string inside it (object keys excluded), copying only the
 * parts that change.
 */
export function mapStrings<T>(value: T, fn: (s: string) => string): T {
  if (typeof value === 'string') return fn(value) as T;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const m = mapStrings(v, fn);
      if (m !== v) (out ??= value.slice())[i] = m;
    });
    return (out ?? value) as T;
  }
  if (value !== null && typeof value === 'object') {
    let out: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(value)) {
      const m = mapStrings(v, fn);
      if (m !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = m;
    }
    return (out ?? value) as T;
  }
  return value;
}
