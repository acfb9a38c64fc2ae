/**
 * The JSON codec on a worker thread, for messages large enough that parsing or serializing them would
 * stall every other exchange (a 20 MB tool result takes ~100 ms each way). See offload.ts.
 *
 * Requests: `{ id, op: 'decode', text }` → `{ id, decoded }`; `{ id, op: 'encode', values, batch }` →
 * `{ id, text }`. Results travel by structured clone, which copies a long string in a few milliseconds.
 */
import { parentPort } from 'node:worker_threads';
import { decodeJson, encodeJson } from './json-codec.ts';

type Job = { id: number; op: 'decode'; text: string } | { id: number; op: 'encode'; values: unknown[]; batch: boolean };

parentPort!.on('message', (job: Job) => {
  try {
    if (job.op === 'decode') parentPort!.postMessage({ id: job.id, decoded: decodeJson(job.text) });
    else parentPort!.postMessage({ id: job.id, text: encodeJson(job.values, job.batch) });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: (err as Error).message });
  }
});
