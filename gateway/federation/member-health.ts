/**
 * Each member's state as seen by the listings and session openings of every caller: what /readyz and
 * the metrics show, what the log says, and when clients are told to list again.
 *
 * A member can fail for one tenant and work for another (a per-tenant process limit, a tenant the
 * member itself refuses), so its state may flip on every request. The state always follows; the log
 * line and the clients' `list_changed` follow at most once per `windowMs` per member, and once more at
 * the end of the window if the state moved on meanwhile. Without that, the clients' re-listing could
 * itself flip the state again and keep every client re-listing forever.
 */
import type { Logger } from 'pino';
import type { MemberStatus } from './types.ts';

interface Told {
  /** The state last logged and told to clients. */
  ok: boolean;
  at: number;
  timer?: NodeJS.Timeout;
}

export class MemberHealth {
  readonly #statuses = new Map<string, MemberStatus>();
  readonly #told = new Map<string, Told>();
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #notify: () => void;

  /** @param notify tells every client stream of this replica to list again. */
  constructor(members: readonly string[], log: Logger, notify: () => void, windowMs = 30_000) {
    const now = Date.now();
    for (const m of members) {
      this.#statuses.set(m, { member: m, ok: true, since: now });
      this.#told.set(m, { ok: true, at: -Infinity });
    }
    this.#log = log;
    this.#notify = notify;
    this.#windowMs = windowMs;
  }

  /** A member answered (`failure` undefined) or failed, with a reason a person can read. */
  report(member: string, failure: string | undefined): void {
    const before = this.#statuses.get(member)!;
    const ok = failure === undefined;
    if (ok && before.ok) return;
    if (!ok && !before.ok && before.reason === failure) return;
    this.#statuses.set(member, { member, ok, ...(ok ? {} : { reason: failure }), since: before.ok === ok ? before.since : Date.now() });
    if (before.ok !== ok) this.#tell(member);
  }

  list(): MemberStatus[] {
    return [...this.#statuses.values()];
  }

  close(): void {
    for (const t of this.#told.values()) clearTimeout(t.timer);
  }

  #tell(member: string): void {
    const told = this.#told.get(member)!;
    if (told.timer) return;
    const wait = told.at + this.#windowMs - Date.now();
    if (wait > 0) {
      told.timer = setTimeout(() => {
        told.timer = undefined;
        if (this.#statuses.get(member)!.ok !== told.ok) this.#tell(member);
      }, wait);
      told.timer.unref();
      return;
    }
    const now = this.#statuses.get(member)!;
    told.ok = now.ok;
    told.at = Date.now();
    if (now.ok) this.#log.info({ member }, `federation member "${member}" answers again; its tools are listed again`);
    else this.#log.warn({ member, reason: now.reason }, `federation member "${member}" failed (${now.reason}); its tools, prompts and resources are left out until it answers again`);
    this.#notify();
  }
}
