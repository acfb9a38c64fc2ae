/**
 * A test plugin whose construction takes a while (like one that fetches keys or warms a cache at load),
 * so a reload stays "in flight" long enough for a test to act during it. It does nothing per request.
 */
import { z } from 'zod';
import { definePlugin } from '../../../gateway/contract.ts';

export default definePlugin({
  type: 'slow-start',
  config: z.strictObject({
    /** How long create() takes. Default 1000 ms. */
    delayMs: z.number().int().min(0).default(1000),
  }),
  async create(config) {
    await new Promise((r) => setTimeout(r, config.delayMs));
    return { name: 'slow-start' };
  },
});
