/**
 * One GET of a URL chosen by a stranger (a Client ID Metadata Document's `client_id`), with every limit
 * enforced here rather than trusted to the other side:
 *
 * - the address is vetted and pinned by the SSRF guard (ssrf-guard.ts);
 * - one deadline covers DNS, connect, TLS, headers and body, so a server that trickles bytes cannot hold
 *   a sign-in open;
 * - the body is counted while it streams and the connection is cut at the limit (a `Content-Length`
 *   over it is refused before reading anything), so a 1 GB answer costs at most `maxBytes` of memory;
 * - redirects are not followed (the document must live at its own `client_id` URL, and a redirect is
 *   the classic way around an SSRF check);
 * - no cookies, credentials or connection reuse: a fresh connection (`agent: false`) that is closed after.
 *
 * Node's own fetch is not used because it offers neither a per-request `lookup` (to pin the address)
 * nor a hard byte limit.
 */
import http from 'node:http';
import https from 'node:https';
import { pinnedLookup, SsrfRefusal, vetHost, type Resolver } from './ssrf-guard.ts';

export interface GuardedGetOptions {
  timeoutMs: number;
  maxBytes: number;
  allowPrivateNetworks: boolean;
  /** `Accept` header. */
  accept: string;
  resolve?: Resolver;
}

export interface GuardedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Why a fetch failed, in words that can follow "could not be fetched: ". */
export class FetchProblem extends Error {}

export async function guardedGet(url: URL, opts: GuardedGetOptions): Promise<GuardedResponse> {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && opts.allowPrivateNetworks)) {
    throw new FetchProblem(`only https: URLs are fetched (got ${url.protocol})`);
  }
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new FetchProblem(`no complete answer within ${opts.timeoutMs} ms`)),
    opts.timeoutMs,
  );
  try {
    const vetted = await untilAborted(vetHost(url.hostname, opts), controller.signal).catch((err: unknown) => {
      if (err instanceof SsrfRefusal || err instanceof FetchProblem) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new FetchProblem(`the host ${url.hostname} could not be resolved (${code ?? String(err)})`);
    });
    return await get(url, opts, pinnedLookup(vetted), controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** A DNS lookup cannot be cancelled, but the caller need not wait for it past the deadline. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function get(
  url: URL,
  opts: GuardedGetOptions,
  lookup: ReturnType<typeof pinnedLookup>,
  signal: AbortSignal,
): Promise<GuardedResponse> {
  return new Promise<GuardedResponse>((resolve, reject) => {
    let settled = false;
    const fail = (problem: Error) => {
      if (settled) return;
      settled = true;
      // Destroying the request closes the socket: the server sees the connection cut.
      req.destroy();
      reject(problem);
    };
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, {
      method: 'GET',
      headers: { accept: opts.accept, 'user-agent': 'mcp-gateway (client metadata fetch)', connection: 'close' },
      agent: false,
      lookup,
    });
    const onAbort = () => fail(signal.reason instanceof Error ? signal.reason : new FetchProblem('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => signal.removeEventListener('abort', onAbort));
    req.on('error', (err: NodeJS.ErrnoException) => {
      fail(new FetchProblem(err.code ? `${err.code} (${err.message})` : err.message));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) {
        const where = typeof res.headers.location === 'string' ? ` to ${res.headers.location.slice(0, 200)}` : '';
        return fail(new FetchProblem(`the server answered ${status} (a redirect${where}); redirects are not followed, the document must be served at its client_id URL`));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        return fail(new FetchProblem(`the document is larger than ${opts.maxBytes} bytes (Content-Length ${declared})`));
      }
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > opts.maxBytes) return fail(new FetchProblem(`the document is larger than ${opts.maxBytes} bytes`));
        chunks.push(chunk);
      });
      const cutShort = () => new FetchProblem('the server closed the connection before the end of the document');
      res.on('error', (err) => fail(res.complete ? new FetchProblem(err.message) : cutShort()));
      res.on('close', () => {
        if (!res.complete) fail(cutShort());
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve({ status, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.end();
  });
}
