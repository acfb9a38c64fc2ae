/**
 * What the gateway knows of an upstream's tools' `x-mcp-header` declarations, learned from the
 * `tools/list` answers that pass through it (every page), and forgotten when the upstream says its
 * list changed. One per upstream: a tool's schema is the upstream's, whoever asked.
 */
import { LRUCache } from 'lru-cache';
import { declarationsOf, type HeaderDeclaration } from './mirror-headers.ts';

/** `null`: the tool's declarations are invalid (the spec makes such a tool unusable; mirror nothing). */
type Known = readonly HeaderDeclaration[] | null;
const INVALID = { invalid: true } as const;

export class ToolHeaders {
  readonly #tools = new LRUCache<string, readonly HeaderDeclaration[] | typeof INVALID>({ max: 10_000 });

  /** Records every tool of a `tools/list` result. */
  learn(result: unknown): void {
    const tools = (result as { tools?: unknown } | undefined)?.tools;
    if (!Array.isArray(tools)) return;
    for (const t of tools) {
      const name = (t as { name?: unknown } | null)?.name;
      if (typeof name !== 'string') continue;
      this.#tools.set(name, declarationsOf((t as { inputSchema?: unknown }).inputSchema) ?? INVALID);
    }
  }

  /**
   * The declarations of a tool: an array (maybe empty), `null` when its declarations are invalid, or
   * `undefined` when the gateway has not seen the tool listed.
   */
  of(tool: string): Known | undefined {
    const known = this.#tools.get(tool);
    return known === INVALID ? null : (known as Known | undefined);
  }

  /** After `notifications/tools/list_changed`: what was learned may be stale. */
  forget(): void {
    this.#tools.clear();
  }
}
