/**
 * Large messages are decoded and encoded on a worker thread, so that one caller's 20 MB tool result
 * does not stall every other exchange for the ~100 ms each `JSON.parse`/`JSON.stringify` of it takes.
 * The plugins' hooks still run on the main thread (they hold per-exchange state); only the codec moves.
 *
 * Below `OFFLOAD_MIN_CHARS` the two structured-clone copies cost more than the codec itself, so small
 * messages (nearly all of them) stay inline. One worker serves the process, started on first use and
 * never keeping the process alive; if it cannot start or dies, the codec runs inline as before.
 */
import { Worker } from 'node:worker_threads';
import { decodeJson, encodeJson, type Decoded } from './json-codec.ts';

/** Messages at least this long (UTF-16 units) go to the worker. */
export const OFFLOAD_MIN_CHARS = 1_000_000;

type Reply = { id: number; decoded?: Decoded; text?: string; error?: string };

let worker: Worker | undefined;
let unavailable = false;
let nextId = 1;
const waiting = new Map<number, { resolve(r: Reply): void; reject(e: Error): void }>();

function failAll(err: Error): void {
  for (const w of waiting.values()) w.reject(err);
  waiting.clear();
}

function theWorker(): Worker | undefined {
  if (worker || unavailable) return worker;
  try {
    const w = new Worker(new URL('./json-worker.ts', import.meta.url));
    w.unref();
    w.on('message', (reply: Reply) => {
      const pending = waiting.get(reply.id);
      if (!pending) return;
      waiting.delete(reply.id);
      if (reply.error !== undefined) pending.reject(new Error(reply.error));
      else pending.resolve(reply);
    });
    w.on('error', (err) => failAll(err));
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      failAll(new Error('the JSON worker exited'));
    });
    worker = w;
  } catch {
    unavailable = true;
  }
  return worker;
}

function ask(job: { op: 'decode'; text: string } | { op: 'encode'; values: readonly unknown[]; batch: boolean }): Promise<Reply> | undefined {
  const w = theWorker();
  if (!w) return undefined;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.postMessage({ id, ...job });
  });
}

/** `decodeJson`, on the worker when the body is large. */
export async function decode(body: Buffer | string): Promise<Decoded> {
  if (body.length < OFFLOAD_MIN_CHARS) return decodeJson(body);
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const reply = ask({ op: 'decode', text });
  if (!reply) return decodeJson(text);
  return reply.then((r) => r.decoded!, () => decodeJson(text));
}

/** `encodeJson`, on the worker when the message was large (`sizeHint`: the length it arrived with). */
export async function encode(values: readonly unknown[], batch: boolean, sizeHint: number): Promise<string> {
  if (sizeHint < OFFLOAD_MIN_CHARS) return encodeJson(values, batch);
  const reply = ask({ op: 'encode', values, batch });
  if (!reply) return encodeJson(values, batch);
  return reply.then((r) => r.text!, () => encodeJson(values, batch));
}

/** Stops the worker (tests; the gateway never needs to: the worker does not keep it alive). */
export async function stopOffload(): Promise<void> {
  const w = worker;
  worker = undefined;
  if (w) await w.terminate();
}
