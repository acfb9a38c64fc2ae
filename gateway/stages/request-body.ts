/**
 * Stage 2: the request body, read whole under the route's size cap (`maxRequestBytes`) and time
 * limit (`bodyTimeout`).
 *
 * A body over the cap is refused with 413, but only after the rest of it has been read and thrown
 * away (up to a bound): a client still writing its body when the connection closes sees a broken pipe,
 * never the 413 that explains it. Past the bound (or the time limit) the connection is closed anyway,
 * so an oversized upload costs the gateway nothing but reading.
 */
import { coreRefusal, type Refusal } from '../errors.ts';
import type { ExchangeRun } from '../proxy.ts';

/** Most bytes read and discarded after the cap, so the client can read its 413. */
const DRAIN_LIMIT = 64 * 1024 * 1024;
/** Longest time spent discarding them. */
const DRAIN_MS = 5_000;

export async function readRequestBody(run: ExchangeRun): Promise<Refusal | undefined> {
  const { req } = run;
  const limit = run.route.config.maxRequestBytes;
  const declared = Number(req.headers['content-length'] ?? NaN);
  const chunks: Buffer[] = [];
  let size = 0;
  const result = await new Promise<'ok' | 'large' | 'short' | 'slow'>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (r: 'ok' | 'large' | 'short' | 'slow') => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onShort);
      req.off('close', onClose);
      resolve(r);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) return done('large');
      chunks.push(c);
    };
    const onEnd = () => done('ok');
    const onShort = () => done('short');
    const onClose = () => done(req.complete ? 'ok' : 'short');
    if (declared > limit) return resolve('large');
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onShort);
    req.once('close', onClose);
    const ms = run.route.config.bodyTimeout;
    if (ms > 0) timer = setTimeout(() => done('slow'), ms);
  });
  run.outcome.bytesIn = size;
  if (result === 'ok') {
    run.body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    return undefined;
  }
  // Whatever ended the read, this connection cannot carry another request: its body is unread.
  run.res.setHeader('connection', 'close');
  if (result === 'large') {
    await drain(run, declared);
    return coreRefusal('GW_ERR_BODY_TOO_LARGE', `the request body is larger than this route accepts (${limit} bytes)`);
  }
  if (result === 'slow') {
    return coreRefusal('GW_ERR_REQUEST_TIMEOUT', `the request body did not arrive within this route's bodyTimeout (${run.route.config.bodyTimeout} ms)`);
  }
  return coreRefusal('GW_ERR_BAD_FRAMING', 'the request body ended early');
}

/** Reads and discards the rest of an oversized body, within the drain bounds. */
function drain(run: ExchangeRun, declared: number): Promise<void> {
  const { req } = run;
  if (req.complete || req.destroyed) return Promise.resolve();
  // A declared length past the bound will not be drained: answer at once (the client may see EPIPE).
  if (declared > DRAIN_LIMIT) return Promise.resolve();
  return new Promise((resolve) => {
    let discarded = 0;
    const stop = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', stop);
      req.off('close', stop);
      req.pause();
      resolve();
    };
    const onData = (c: Buffer) => {
      discarded += c.length;
      if (discarded > DRAIN_LIMIT) stop();
    };
    const timer = setTimeout(stop, DRAIN_MS);
    req.on('data', onData);
    req.once('end', stop);
    req.once('close', stop);
    req.resume();
  });
}
