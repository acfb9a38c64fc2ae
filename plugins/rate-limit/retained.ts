/**
 * Rate-limit state that outlives a hot reload. Each reload builds new plugin instances; without this,
 * saving gateway.yaml (even an unrelated line) would hand every caller a fresh in-memory budget and
 * forget the streams and tool calls each key holds open.
 *
 * Instances for the same route with the same options share one state; a changed option means a new
 * state (new limits start fresh, as the operator asked for). A state is released when the last
 * instance using it closes. The old runtime closes its plugins only after the new runtime is built and
 * its exchanges ended, so across a reload the count goes 1 → 2 → 1 and never through 0.
 *
 * States are kept per gateway (keyed by its SharedServices object): two gateways in one process (tests)
 * never share budgets.
 */
import type { Budgets } from './budgets.ts';
import type { ConcurrencyCap } from './concurrency.ts';

export interface LimiterState {
  budgets: Budgets;
  streams: ConcurrencyCap;
  inflight: ConcurrencyCap;
}

interface Entry {
  state: LimiterState;
  users: number;
}

const byGateway = new WeakMap<object, Map<string, Entry>>();
let held = 0;

/** The state for `key` in `gateway`, made by `create` when no live instance holds one. */
export function acquireLimiterState(gateway: object, key: string, create: () => LimiterState): { state: LimiterState; release(): void } {
  let states = byGateway.get(gateway);
  if (!states) byGateway.set(gateway, (states = new Map()));
  let entry = states.get(key);
  if (!entry) {
    states.set(key, (entry = { state: create(), users: 0 }));
    held++;
  }
  entry.users++;
  const mine = entry;
  let released = false;
  return {
    state: mine.state,
    release() {
      if (released) return;
      released = true;
      if (--mine.users === 0 && states.get(key) === mine) {
        states.delete(key);
        held--;
      }
    },
  };
}

/** How many states this process holds, all gateways together (tests: nothing leaks across reloads). */
export function retainedStateCount(): number {
  return held;
}

/** JSON with object keys sorted, so equal options give equal keys whatever order YAML listed them in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v);
}
