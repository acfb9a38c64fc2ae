/**
 * Strict correlation of responses to the requests they answer.
 *
 * Plugins decide what a response may show by the request it answers (a `list_graphs` result is
 * filtered, a `query_graph` result is not), so a map that silently let a second request overwrite the
 * first would apply the wrong rule to a response. JSON-RPC forbids reusing an id while it is pending;
 * the gateway enforces that instead of guessing: a request whose id is already pending in its scope
 * is refused and never forwarded.
 *
 * The scope is the session where there is one: Streamable HTTP POSTs of one session each get their own
 * response stream, but the upstream correlates by id across the whole session; legacy HTTP+SSE answers
 * every POST of a session on one GET stream.
 */
import type { JSONRPCRequest } from '@modelcontextprotocol/server';

export type Reservation = 'ok' | 'duplicate' | 'full';

/** Requests awaiting their answer, by id key. */
export class PendingRequests {
  readonly #map = new Map<string, JSONRPCRequest>();
  readonly #max: number;
  /** @param max most requests pending at once; past it new requests are refused, never evicted. */
  constructor(max = Infinity) {
    this.#max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  has(key: string): boolean {
    return this.#map.has(key);
  }

  /** Records a request unless its id is already pending (or the table is full). */
  add(key: string, req: JSONRPCRequest): Reservation {
    if (this.#map.has(key)) return 'duplicate';
    if (this.#map.size >= this.#max) return 'full';
    this.#map.set(key, req);
    return 'ok';
  }

  /** The request a response answers, removed: a second response to the same id finds nothing. */
  take(key: string): JSONRPCRequest | undefined {
    const r = this.#map.get(key);
    if (r !== undefined) this.#map.delete(key);
    return r;
  }

  keys(): IterableIterator<string> {
    return this.#map.keys();
  }

  requests(): IterableIterator<JSONRPCRequest> {
    return this.#map.values();
  }

  entries(): IterableIterator<[string, JSONRPCRequest]> {
    return this.#map.entries();
  }

  clear(): void {
    this.#map.clear();
  }
}

/** A session's ids on this replica: in flight on its open exchanges, or parked for a resumed stream. */
export interface InflightHold {
  ids: Set<string>;
  /** Whether an id is parked (its request still pending at the upstream, its stream gone). */
  parked?(key: string): boolean;
  release(): void;
}

/**
 * One exchange's view of correlation: its own requests, checked against what other in-flight
 * exchanges of the same session have pending (`shared`, per replica) and what the session parked.
 * Released when the exchange ends.
 */
export class ExchangeCorrelation {
  readonly own = new PendingRequests();
  readonly #shared: Set<string> | undefined;
  readonly #hold: InflightHold | undefined;

  /** @param hold the session's in-flight ids on this replica (SessionRegistry.holdInflight), if any. */
  constructor(hold?: InflightHold) {
    this.#shared = hold?.ids;
    this.#hold = hold;
  }

  has(key: string): boolean {
    return this.own.has(key) || (this.#shared?.has(key) ?? false) || (this.#hold?.parked?.(key) ?? false);
  }

  add(key: string, req: JSONRPCRequest): Reservation {
    // A parked id is still pending upstream: reusing it would make its replayed answer ambiguous.
    if (this.#shared?.has(key) || this.#hold?.parked?.(key)) return 'duplicate';
    const r = this.own.add(key, req);
    if (r === 'ok') this.#shared?.add(key);
    return r;
  }

  take(key: string): JSONRPCRequest | undefined {
    const r = this.own.take(key);
    if (r !== undefined) this.#shared?.delete(key);
    return r;
  }

  /**
   * Hands the requests still unanswered to `park` (their answers may come on a resumed stream) and
   * frees their ids here; parked, they stay reserved in the session. Safe to call more than once.
   */
  parkUnanswered(park: (key: string, req: JSONRPCRequest) => void): void {
    for (const [key, req] of this.own.entries()) {
      park(key, req);
      this.#shared?.delete(key);
    }
    this.own.clear();
  }

  /** Frees the ids this exchange still held (its stream ended without every answer). Once. */
  release(): void {
    if (this.#shared) for (const k of this.own.keys()) this.#shared.delete(k);
    this.own.clear();
    this.#hold?.release();
  }
}
