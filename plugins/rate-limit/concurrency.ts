/**
 * Counters of things held open at once per key (SSE streams, in-flight tool calls), in this process.
 *
 * Request budgets cannot see a stream that stays open for hours, so these caps complement them. They
 * are per gateway process on purpose: a lease in a shared store would outlive a crashed replica and
 * lock its tenant out until it expired.
 */
export class ConcurrencyCap {
  readonly max: number;
  readonly #held = new Map<string, number>();

  /** @param max most leases per key; 0 means no cap (acquire always succeeds). */
  constructor(max: number) {
    this.max = max;
  }

  /** Takes one lease for `key`; false (and nothing taken) when the key already holds `max`. */
  acquire(key: string): boolean {
    if (this.max === 0) return true;
    const n = this.#held.get(key) ?? 0;
    if (n >= this.max) return false;
    this.#held.set(key, n + 1);
    return true;
  }

  /** Returns `count` leases of `key`. */
  release(key: string, count = 1): void {
    if (this.max === 0 || count <= 0) return;
    const n = (this.#held.get(key) ?? 0) - count;
    // Deleting at zero keeps the map as small as the set of keys holding something right now.
    if (n > 0) this.#held.set(key, n);
    else this.#held.delete(key);
  }

  held(key: string): number {
    return this.#held.get(key) ?? 0;
  }
}
