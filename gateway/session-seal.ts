/**
 * Sealed session ids: the client never sees the upstream's session id. It gets an AES-256-GCM sealed
 * token that carries the upstream value and a hash of its owner (issuer, tenant, subject), bound to
 * the route by the additional authenticated data. Any replica holding the key can open it, so no
 * session store is needed, and a session id presented with another principal's token fails the owner
 * check exactly like an unknown session (404).
 *
 * Layout (base64url): iv(12) ‖ ciphertext ‖ tag(16); plaintext: owner(16) ‖ kind(1) ‖ payload (UTF-8).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal } from './contract.ts';

/** What a sealed value stands for. Part of the plaintext so one kind can never be replayed as another. */
export const SEAL_KIND = { streamableSession: 1, legacyEndpoint: 2, requestState: 3 } as const;
/**
 * Longest sealed text `open` accepts, per kind. Session ids are short; a multi round-trip
 * `requestState` is whatever the upstream chose to carry (servers keep their state in it).
 */
const MAX_SEALED: Record<number, number> = { [SEAL_KIND.requestState]: 1_000_000 };
const MAX_SEALED_DEFAULT = 8192;
type SealKind = (typeof SEAL_KIND)[keyof typeof SEAL_KIND];

const NO_OWNER = Buffer.alloc(16);
/** Verified-token caches hand out the same principal object for every request of a token. */
const owners = new WeakMap<Principal, Buffer>();

/** 16 bytes identifying who owns a session; all zeros for unauthenticated routes. */
export function ownerOf(principal: Principal | undefined): Buffer {
  if (!principal) return NO_OWNER;
  let owner = owners.get(principal);
  if (!owner) {
    owner = createHash('sha256').update(`${principal.issuer}\0${principal.tenant}\0${principal.subject}`).digest().subarray(0, 16);
    owners.set(principal, owner);
  }
  return owner;
}

export interface Opened {
  payload: string;
  /** True when the owner in the seal is the given owner. */
  ownerMatches: boolean;
}

interface OpenedSeal {
  kind: number;
  binding: string;
  payload: string;
  owner: Buffer;
}

export class SessionSealer {
  readonly #keys: Buffer[];
  /**
   * Seals this process opened before, by their exact text. A client repeats its session id on every
   * request, and a cipher object costs ~20 µs to set up in Node, far more than the decryption itself;
   * an entry exists only for a value that was authenticated once, and kind, binding and owner are
   * still compared on every request.
   */
  readonly #opened = new LRUCache<string, OpenedSeal>({ max: 20_000 });

  /** @param keys the current key first, then keys that may still open older seals. Each 32 bytes. */
  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new Error('SessionSealer needs a key');
    for (const k of keys) if (k.length !== 32) throw new Error('a session key must be 32 bytes (base64 of 32 random bytes)');
    this.#keys = keys;
  }

  /** Parses `sessions.key`/`previousKeys` (base64). Returns undefined for an empty current key. */
  static fromConfig(key: string | undefined, previous: readonly string[]): SessionSealer | undefined {
    if (!key) return undefined;
    // Empty entries are allowed so `${GATEWAY_SESSION_PREVIOUS_KEY:-}` can stay in the file between rotations.
    return new SessionSealer([key, ...previous.filter((k) => k !== '')].map(decodeKey));
  }

  static random(): SessionSealer {
    return new SessionSealer([randomBytes(32)]);
  }

  seal(kind: SealKind, payload: string, owner: Buffer, binding: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#keys[0], iv);
    cipher.setAAD(Buffer.from(binding));
    const head = Buffer.allocUnsafe(17);
    owner.copy(head, 0, 0, 16);
    head[16] = kind;
    const body = Buffer.concat([cipher.update(head), cipher.update(payload, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return Buffer.concat([iv, body]).toString('base64url');
  }

  /** Undefined when the value is not a seal of this kind made with one of our keys for this binding. */
  open(kind: SealKind, sealed: string, owner: Buffer, binding: string): Opened | undefined {
    // Request states are opened once (a retry), and may be large: never kept.
    const cacheable = kind !== SEAL_KIND.requestState;
    const cached = cacheable ? this.#opened.get(sealed) : undefined;
    if (cached) {
      if (cached.kind !== kind || cached.binding !== binding) return undefined;
      return { payload: cached.payload, ownerMatches: cached.owner.equals(owner) };
    }
    if (sealed.length < 60 || sealed.length > (MAX_SEALED[kind] ?? MAX_SEALED_DEFAULT) || !/^[A-Za-z0-9_-]+$/.test(sealed)) return undefined;
    const raw = Buffer.from(sealed, 'base64url');
    const iv = raw.subarray(0, 12);
    const tag = raw.subarray(raw.length - 16);
    const data = raw.subarray(12, raw.length - 16);
    for (const key of this.#keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(Buffer.from(binding));
        decipher.setAuthTag(tag);
        const plain = Buffer.concat([decipher.update(data), decipher.final()]);
        const entry = { kind: plain[16], binding, payload: plain.subarray(17).toString('utf8'), owner: Buffer.from(plain.subarray(0, 16)) };
        if (cacheable) this.#opened.set(sealed, entry);
        if (entry.kind !== kind) return undefined;
        return { payload: entry.payload, ownerMatches: entry.owner.equals(owner) };
      } catch {
        // Wrong key or tampered: try the next key.
      }
    }
    return undefined;
  }
}

function decodeKey(b64: string): Buffer {
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 32) throw new Error('sessions.key must be base64 of exactly 32 bytes (openssl rand -base64 32)');
  return key;
}
