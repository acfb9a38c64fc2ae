/**
 * Cost of sealing and opening session ids (gateway/session-seal.ts), which every request with a
 * session pays once (open) and every initialize pays once more (seal). Measured in-process: the
 * figure of interest is microseconds per operation, not a ratio.
 */
import { randomUUID } from 'node:crypto';
import { ownerOf, SEAL_KIND, SessionSealer } from '../gateway/session-seal.ts';

export interface SealResult {
  sealUs: number;
  /** First open of a value on this replica (decryption). */
  firstOpenUs: number;
  /** Later opens of the same value (a session's next requests). */
  openUs: number;
  /** Opening with another principal (the refusal path). */
  openForeignUs: number;
}

export function benchSeal(iterations = 50_000): SealResult {
  const sealer = SessionSealer.random();
  const owner = ownerOf({ issuer: 'https://idp.example', tenant: 'acme', subject: 'alice', scopes: [], claims: {} });
  const other = ownerOf({ issuer: 'https://idp.example', tenant: 'globex', subject: 'bob', scopes: [], claims: {} });
  const upstreamId = randomUUID();
  const sealed: string[] = [];
  const time = (fn: (i: number) => void): number => {
    for (let i = 0; i < 2_000; i++) fn(i); // warm-up
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(i);
    return Number(process.hrtime.bigint() - start) / 1_000 / iterations;
  };
  const sealUs = time((i) => { sealed[i % 1000] = sealer.seal(SEAL_KIND.streamableSession, upstreamId, owner, 'route'); });
  // A fresh sealer for the first open of each value (nothing cached), then the repeat opens a
  // session's later requests pay.
  const cold = new SessionSealer([Buffer.alloc(32, 7)]);
  const coldValues = Array.from({ length: iterations + 2_000 }, () => cold.seal(SEAL_KIND.streamableSession, upstreamId, owner, 'route'));
  let next = 0; // every value is opened once: never from the cache
  const firstOpenUs = time(() => { if (!cold.open(SEAL_KIND.streamableSession, coldValues[next++], owner, 'route')?.ownerMatches) throw new Error('open failed'); });
  const openUs = time((i) => { if (!sealer.open(SEAL_KIND.streamableSession, sealed[i % 1000], owner, 'route')?.ownerMatches) throw new Error('open failed'); });
  const openForeignUs = time((i) => { if (sealer.open(SEAL_KIND.streamableSession, sealed[i % 1000], other, 'route')?.ownerMatches) throw new Error('foreign owner matched'); });
  return { sealUs, firstOpenUs, openUs, openForeignUs };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = benchSeal();
  process.stdout.write(`seal ${r.sealUs.toFixed(2)} µs, first open ${r.firstOpenUs.toFixed(2)} µs, later opens ${r.openUs.toFixed(2)} µs, with another owner ${r.openForeignUs.toFixed(2)} µs\n`);
}
