/**
 * Password hashing for the users file: Argon2id through @node-rs/argon2 (the PHC winner, prebuilt
 * binaries for every platform Node runs on, so no compiler is needed at install; the work runs on
 * libuv's thread pool and never blocks the event loop).
 *
 * Parameters follow OWASP's Password Storage Cheat Sheet for Argon2id: 19 MiB of memory, 2 passes,
 * 1 lane (~0.1 s on a server core). Each hash carries its own parameters, so raising them later only
 * affects passwords set after the change: older hashes still verify.
 */
import { randomBytes } from 'node:crypto';
import { hash, verify, type Algorithm } from '@node-rs/argon2';

/** `Algorithm.Argon2id`: the enum is `const` in the typings, which isolated modules cannot read. */
const ARGON2ID = 2 as Algorithm.Argon2id;

export const HASH_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/**
 * Longest password accepted. Argon2 pre-hashes any length, but a megabyte "password" per request is
 * cheap for an attacker and not for us; no passphrase a person types comes near this.
 */
export const MAX_PASSWORD_LENGTH = 1024;

/** An encoded Argon2 hash (PHC string format), the only thing the users file may hold as a password. */
const ARGON2_PHC = /^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

export function isArgon2Hash(value: string): boolean {
  return ARGON2_PHC.test(value);
}

export async function hashPassword(password: string): Promise<string> {
  if (password.length === 0) throw new Error('the password is empty');
  if (password.length > MAX_PASSWORD_LENGTH) throw new Error(`the password is longer than ${MAX_PASSWORD_LENGTH} characters`);
  return hash(password, HASH_OPTIONS);
}

/**
 * A hash of a random password nobody knows, made with the current parameters: an unknown username is
 * verified against it, so "no such user" takes as long as "wrong password" and the response time does
 * not reveal which usernames exist. Made once, lazily (it costs one hash).
 */
let dummy: Promise<string> | undefined;
export function dummyHash(): Promise<string> {
  dummy ??= hash(randomBytes(32).toString('base64url'), HASH_OPTIONS);
  return dummy;
}

/** Whether `password` matches `encoded`; false (never a throw) for a malformed hash or an oversize password. */
export async function verifyPassword(encoded: string, password: string): Promise<boolean> {
  // Still spend the time of a verification for an oversize password, against the dummy.
  const tooLong = password.length > MAX_PASSWORD_LENGTH;
  try {
    const ok = await verify(tooLong ? await dummyHash() : encoded, tooLong ? '' : password);
    return ok && !tooLong;
  } catch {
    return false;
  }
}
