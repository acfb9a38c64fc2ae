/**
 * Multi round-trip requests over a 2025 upstream: server requests become `input_required`.
 *
 * A 2025 server asks its client mid-request (elicitation/create, sampling/createMessage, roots/list)
 * on the request's own stream and waits for the answer. A 2026 client is never asked that way: it
 * gets `resultType: "input_required"` with the questions, and retries its request with the answers.
 * So when a flight's stream carries server requests, the flight is parked (its upstream stream left
 * unread, the upstream still waiting), the client gets the questions and a `requestState`, and its
 * retry posts the answers to the upstream as JSON-RPC responses and resumes reading the same stream.
 *
 * The `requestState` is a reference to the parked flight, sealed by the core (`deps.state`): bound to
 * the principal and the route, and carrying the method and name of the request, so it cannot be
 * forged, shown by another caller, or replayed on another request. A sealed state whose flight is no
 * longer here (expired, evicted, another replica, already resumed) is not an error: the retry is
 * forwarded afresh, and the upstream asks again if it still needs to (the spec lets a server repeat
 * `input_required`). Parked flights expire (default 5 minutes) and are bounded per principal and in
 * all; an expired or evicted flight is cancelled upstream.
 */
import { randomBytes } from 'node:crypto';
import type { Principal } from '../../contract.ts';
import { coreRefusal } from '../../errors.ts';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { ownerOf } from '../../session-seal.ts';
import type { StateSealer } from '../translation.ts';
import { ClientAnswer, refusal } from './client-answer.ts';
import { cancel, forward, inputRequired, nameOf, pump, type Asker, type Flight, type FlightEnv, type InputRequest } from './flight.ts';
import { paramsOf, type ClientContext, type Json, type RpcId } from './translate.ts';

export interface ParkOptions {
  ttlMs: number;
  maxPerPrincipal: number;
  max: number;
}

interface Parked {
  ref: string;
  owner: string;
  flight: Flight;
  pending: InputRequest[];
  timer: NodeJS.Timeout;
}

/** What a retry's `requestState` stands for. */
type Claim = { kind: 'invalid' } | { kind: 'gone' } | { kind: 'parked'; parked: Parked };

export class ParkedFlights {
  readonly #opts: ParkOptions;
  readonly #state: StateSealer;
  /** Every parked flight, oldest first (a Map keeps insertion order). */
  readonly #all = new Map<string, Parked>();
  /** Refs per owner, oldest first. */
  readonly #byOwner = new Map<string, Set<string>>();
  #cancel: (flight: Flight, reason: string) => void = () => {};

  constructor(opts: ParkOptions, state: StateSealer) {
    this.#opts = opts;
    this.#state = state;
  }

  /** How a parked flight is abandoned (set once the flight environment exists). */
  onCancel(fn: (flight: Flight, reason: string) => void): void {
    this.#cancel = fn;
  }

  /** Parks `flight` until its retry; returns the sealed reference the client echoes back. */
  park(flight: Flight, pending: InputRequest[], principal: Principal | undefined): string {
    const owner = ownerOf(principal).toString('hex');
    const ref = randomBytes(16).toString('base64url');
    const timer = setTimeout(() => this.#expire(ref, 'the client did not retry in time'), this.#opts.ttlMs);
    timer.unref();
    this.#all.set(ref, { ref, owner, flight, pending, timer });
    let mine = this.#byOwner.get(owner);
    if (!mine) this.#byOwner.set(owner, (mine = new Set()));
    mine.add(ref);
    // Bounds: the caller's oldest first, then anyone's oldest.
    while (mine.size > this.#opts.maxPerPrincipal) this.#expire(mine.values().next().value!, 'too many requests waiting for input');
    while (this.#all.size > this.#opts.max) this.#expire(this.#all.keys().next().value!, 'too many requests waiting for input');
    return this.#state.seal(JSON.stringify({ r: ref, m: flight.method, n: flight.name ?? null }), principal);
  }

  /** The parked flight a retry's state refers to; taken out of the store when found. */
  claim(requestState: unknown, principal: Principal | undefined, method: string, name: string | undefined): Claim {
    if (typeof requestState !== 'string') return { kind: 'invalid' };
    const payload = this.#state.open(requestState, principal);
    if (payload === undefined) return { kind: 'invalid' };
    let ref: unknown;
    try {
      const p = JSON.parse(payload) as { r?: unknown; m?: unknown; n?: unknown };
      if (p.m !== method || p.n !== (name ?? null)) return { kind: 'invalid' };
      ref = p.r;
    } catch {
      return { kind: 'invalid' };
    }
    const parked = typeof ref === 'string' ? this.#all.get(ref) : undefined;
    if (!parked) return { kind: 'gone' };
    // The seal already binds the principal; checked again because the store is shared by all callers.
    if (parked.owner !== ownerOf(principal).toString('hex')) return { kind: 'invalid' };
    this.#remove(parked);
    return { kind: 'parked', parked };
  }

  close(): void {
    for (const ref of [...this.#all.keys()]) this.#expire(ref, 'the gateway is closing');
  }

  #expire(ref: string, reason: string): void {
    const parked = this.#all.get(ref);
    if (!parked) return;
    this.#remove(parked);
    this.#cancel(parked.flight, reason);
  }

  #remove(parked: Parked): void {
    clearTimeout(parked.timer);
    this.#all.delete(parked.ref);
    const mine = this.#byOwner.get(parked.owner);
    mine?.delete(parked.ref);
    if (mine?.size === 0) this.#byOwner.delete(parked.owner);
  }
}

/**
 * A retry: a request carrying `requestState` (and `inputResponses`). Answers the parked flight's
 * questions upstream and resumes it; questions left unanswered are asked again.
 */
export async function retry(env: FlightEnv, parked: ParkedFlights, call: UpstreamCall, message: { id: RpcId; method: string; params?: unknown }, client: ClientContext): Promise<UpstreamResponse> {
  const params = paramsOf(message);
  const claim = parked.claim(params.requestState, call.principal, message.method, nameOf(params));
  if (claim.kind === 'invalid') {
    return refusal(coreRefusal('GW_ERR_REQUEST_STATE_INVALID', 'requestState is not one this gateway issued for this request and caller'), message.id);
  }
  if (claim.kind === 'gone') return forward(env, call, message, client);
  const { flight, pending } = claim.parked;
  const responses = (params.inputResponses && typeof params.inputResponses === 'object' ? params.inputResponses : {}) as Json;
  const unanswered: InputRequest[] = [];
  for (const request of pending) {
    if (!Object.hasOwn(responses, request.key)) {
      unanswered.push(request);
      continue;
    }
    const status = await flight.session.post({ jsonrpc: '2.0', id: request.serverId, result: responses[request.key] }, call.headers).catch(() => 0);
    if (status < 200 || status >= 300) {
      // The upstream lost the session or the request: the flight cannot be resumed; start afresh.
      cancel(env, flight, 'its session is gone');
      return forward(env, call, message, client);
    }
  }
  if (unanswered.length > 0) {
    const requestState = env.park(flight, unanswered, call.principal);
    const again = new ClientAnswer(flight.streamed);
    again.final({ jsonrpc: '2.0', id: message.id, result: inputRequired(env, flight, unanswered, requestState) });
    return again.response;
  }
  const answer = new ClientAnswer(flight.streamed);
  const asker: Asker = { id: message.id, progressToken: client.progressToken, logRank: client.logRank, principal: call.principal, signal: call.signal };
  void pump(env, flight, asker, answer);
  return answer.response;
}
