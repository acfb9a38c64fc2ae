/**
 * What a federation is configured with and what it reports, shared by the config schema's consumers
 * (gateway/upstream-targets.ts, health, banner) and the federation itself (gateway/federation/).
 */

/** How member names reach the client. */
export type PrefixMode = 'always' | 'on-collision' | 'never';

export interface FederationMemberConfig {
  /** What this member's names are prefixed with (`<prefix><separator><name>`). Default: its upstream name. */
  prefix: string;
  /** Tenants that see this member (`*` wildcards). Absent: every tenant. */
  tenants?: string[];
  /** Scopes of which the caller must hold at least one to see this member. Absent: no scope needed. */
  scopes?: string[];
}

export interface FederationConfig {
  /** Members in order: upstream name → options. The order decides nothing but listing order. */
  members: Record<string, FederationMemberConfig>;
  prefix: PrefixMode;
  separator: string;
  /** Deadline for one member's part of a listing, or of opening its session. */
  listTimeoutMs: number;
  /** How long a member's listing is reused when the member gives no `ttlMs` of its own. 0: never. */
  listTtlMs: number;
  /** How long `list_changed` notifications are gathered before one reaches the client. */
  listChangedDebounceMs: number;
  /** What `initialize` names as the server. */
  serverInfo?: { name?: string; version?: string; title?: string };
  /** `instructions` of the `initialize` result. */
  instructions?: string;
}

/** One member's state as the last listing or session opening found it (for /readyz and the admin API). */
export interface MemberStatus {
  member: string;
  /** False after a failed listing or session opening, until one succeeds again. True before any. */
  ok: boolean;
  /** Why it failed, for people: "timed out after 5000 ms", "HTTP 401", "ECONNREFUSED". */
  reason?: string;
  /** Epoch ms of the last change of `ok`. */
  since: number;
}
