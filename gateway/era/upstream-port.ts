/**
 * How a translator reaches the real upstream: over HTTP with the upstream's own agent, or by direct
 * dispatch to an upstream served in process (stdio). Either way the answer is an `UpstreamResponse`.
 */
import http from 'node:http';
import type { InProcessUpstream, UpstreamCall, UpstreamResponse } from '../runtime.ts';
import type { UpstreamPort } from './translation.ts';

/** An HTTP upstream at `origin` (`http://host:port`); `call.pathAndQuery` is appended as it is. */
export function httpPort(origin: string, agent?: http.Agent): UpstreamPort {
  function attempt(call: UpstreamCall, retry: boolean): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const headers = { ...call.headers };
      delete headers.host;
      if (call.body) {
        headers['content-length'] = String(call.body.length);
        delete headers['transfer-encoding'];
      }
      const req = http.request(origin + call.pathAndQuery, { method: call.method, headers, agent, signal: call.signal });
      req.once('response', (res) => resolve(res as UpstreamResponse));
      req.once('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the upstream closed while idle: the request never reached it, so it
        // goes once more on a new connection (as Node's documentation prescribes; safe for any method).
        if (!retry && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && !call.signal.aborted) {
          attempt(call, true).then(resolve, reject);
          return;
        }
        reject(err);
      });
      req.end(call.body);
    });
  }
  return { send: (call) => attempt(call, false) };
}

/** An upstream served in process. */
export function inProcessPort(upstream: InProcessUpstream): UpstreamPort {
  return { send: async (call) => upstream.dispatch(call) };
}
