/**
 * An example plugin, written the way docs/plugins.md teaches: it keeps credentials that look like API
 * keys out of both directions of an MCP conversation.
 *
 * - A `tools/call` whose arguments contain something matching a pattern is refused before it reaches
 *   the upstream (the secret never leaves the gateway).
 * - Text in tool results that matches is replaced with `[scrubbed]` before it reaches the client.
 * - Each exchange's count of scrubbed values is logged when it ends.
 *
 * Use it in gateway.yaml by path (relative to the config file):
 *
 *   plugins:
 *     - type: ./examples/plugins/secret-scrubber.ts
 *       patterns: ['sk-[A-Za-z0-9]{8,}']
 */
import { z } from 'zod';
import { definePlugin, Key, type JSONRPCMessage } from '../../gateway/contract.ts';

const Options = z.strictObject({
  /** Regular expressions (JavaScript syntax) of values to keep out. Default: common API key shapes. */
  patterns: z.array(z.string().min(1)).default(['sk-[A-Za-z0-9_-]{8,}', 'ghp_[A-Za-z0-9]{20,}', 'AKIA[0-9A-Z]{16}']),
  /** What replaces a match in results. Default `[scrubbed]`. */
  replacement: z.string().default('[scrubbed]'),
});

/** How many values this exchange scrubbed: per-exchange state under a typed key. */
const SCRUBBED = new Key<number>('secretScrubber.scrubbed');

export default definePlugin({
  type: 'secret-scrubber',
  config: Options,
  create(options, { log }) {
    // Compiled once, at load: nothing is parsed per request.
    const pattern = new RegExp(options.patterns.map((p) => `(?:${p})`).join('|'), 'g');
    const matches = (text: string) => {
      pattern.lastIndex = 0;
      return pattern.test(text);
    };

    return {
      name: 'secret-scrubber',

      onRequestMessage(msg) {
        const m = msg as { method?: string; params?: { arguments?: unknown } };
        if (m.method !== 'tools/call') return; // nothing returned: pass unchanged
        if (!matches(JSON.stringify(m.params?.arguments ?? {}))) return;
        return {
          kind: 'reject',
          rpcCode: -32602,
          code: 'EXAMPLE_ERR_SECRET_IN_ARGUMENTS',
          message: 'the tool arguments contain a value that looks like a credential; remove it and call again',
        };
      },

      onResponseMessage(msg, x) {
        const result = (msg as { result?: { content?: Array<{ type: string; text?: string }> } }).result;
        if (!result?.content?.some((c) => c.type === 'text' && c.text && matches(c.text))) return;
        let count = 0;
        const content = result.content.map((c) => {
          if (c.type !== 'text' || !c.text) return c;
          return { ...c, text: c.text.replace(pattern, () => (count++, options.replacement)) };
        });
        x.set(SCRUBBED, (x.get(SCRUBBED) ?? 0) + count);
        // Changes are explicit: a new message replaces the old one.
        return { kind: 'replace', message: { ...msg, result: { ...result, content } } as JSONRPCMessage };
      },

      onDone(x) {
        const count = x.get(SCRUBBED);
        if (count) log.info({ exchange: x.id, scrubbed: count }, 'scrubbed credentials from tool results');
      },
    };
  },
});
