/**
 * Access tokens the authorization server revoked itself: when an authorization code or a refresh token
 * is presented a second time (someone has a copy), every token of that grant is revoked (OAuth 2.1
 * §4.1.3, §6.1).
 *
 * They are kept three ways:
 * - in memory, which the `jwt` plugins of this gateway check on every request (at once, no polling);
 * - with Redis configured, in the set the `jwt` plugin's Redis revocation list reads, announced on its
 *   channel, so every replica refuses them too (plugins/jwt/revocation.ts, `revokedKey`);
 * - otherwise, when the signing keys are a key folder, in its `revoked.txt` (where
 *   `npm run token -- revoke` writes), so a restart does not forget them.
 * Entries leave memory when the token would have expired anyway.
 */
import { appendFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

const MAX_IN_MEMORY = 100_000;

export class RevokedTokens {
  /** jti → epoch ms after which the token is expired anyway. */
  readonly #ids = new Map<string, number>();
  /** Size at which `add` next sweeps out expired entries; doubles past live ones, so a sweep is amortised. */
  #sweepAt = MAX_IN_MEMORY;

  has(jti: string): boolean {
    const until = this.#ids.get(jti);
    if (until === undefined) return false;
    if (until < Date.now()) {
      this.#ids.delete(jti);
      return false;
    }
    return true;
  }

  add(jti: string, untilMs: number): void {
    // Live entries are never dropped (that would un-revoke a token): past the bound, sweep the expired
    // ones, and when most are live, wait until the map has doubled before sweeping again.
    if (this.#ids.size >= this.#sweepAt) {
      const now = Date.now();
      for (const [id, until] of this.#ids) if (until < now) this.#ids.delete(id);
      this.#sweepAt = Math.max(MAX_IN_MEMORY, this.#ids.size * 2);
    }
    this.#ids.set(jti, untilMs);
  }
}

export interface RevocationSinks {
  redis?: Redis;
  keyPrefix: string;
  file?: string;
  log: Logger;
}

/** Records a revocation where other processes look for it; failures are logged (memory still has it). */
export async function publishRevocation(jti: string, why: string, sinks: RevocationSinks): Promise<void> {
  try {
    if (sinks.redis) {
      // The same set and channel as `npm run token -- revoke` (plugins/jwt/revocation.ts revokedKey).
      const key = `${sinks.keyPrefix}revoked-jti`;
      await sinks.redis.sadd(key, jti);
      await sinks.redis.publish(key, jti);
    } else if (sinks.file) {
      await appendFile(sinks.file, `${jti}  # ${why}, ${new Date().toISOString()}\n`);
    }
  } catch (err) {
    sinks.log.error({ jti, err: (err as Error).message }, 'could not record a revocation outside this process; it holds here until the token expires');
  }
}
