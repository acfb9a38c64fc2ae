/**
 * The MCP listeners: for each, a bound socket and the HTTP or HTTPS server that speaks on it.
 *
 * The socket (a net.Server) is kept apart from the protocol server (an http.Server or https.Server that
 * never listens itself: the socket hands it each accepted connection). So a reload that keeps a
 * listener's host and port keeps its socket, and swaps only what depends on the other settings: the
 * policy (Host, Origin, CORS), the ListenerInfo plugins see, the certificate, or the protocol itself
 * (plain ↔ TLS; connections already open stay with the server that accepted them). A new host or port
 * opens a new socket before the old one closes, so a port that cannot be bound fails the reload while
 * the old listener keeps serving.
 *
 * Changes are two-phase, like the runtime: `prepare` binds and loads everything a config needs without
 * touching what serves; `commit` swaps it in; `abort` releases what `prepare` opened.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ConfigError, type LoadedConfig } from '../config/load.ts';
import type { ListenerConfig } from '../config/schema.ts';
import type { ListenerInfo } from './contract.ts';
import { coreRefusal, refusalMessage } from './errors.ts';
import { watchFiles, type FileWatch } from './file-watch.ts';
import { ListenerPolicy } from './listener-policy.ts';
import { loadTls, tlsPaths, type TlsMaterial, type TlsSettings } from './listener-tls.ts';

export interface LiveListener {
  readonly config: ListenerConfig;
  readonly info: ListenerInfo;
  readonly policy: ListenerPolicy;
}

/** `live` is undefined for a socket not yet committed, or one being removed. */
export type ListenerRequestHandler = (live: LiveListener | undefined, req: IncomingMessage, res: ServerResponse) => void;

type ProtocolServer = http.Server | https.Server;

/** One bound socket; its connections go to whichever protocol server is current. */
interface Binding {
  socket: net.Server;
  readonly host: string;
  /** As configured (0: any free port), to recognise an unchanged listener. */
  readonly configuredPort: number;
  port: number;
  protocol: ProtocolServer;
  live: LiveListener | undefined;
  /** Digest of the certificate and key `protocol` serves (TLS only). */
  tlsDigest?: string;
}

interface Slot {
  live: LiveListener;
  binding: Binding;
  /** The protocol server this slot installs on its binding at commit. */
  protocol: ProtocolServer;
  tls?: TlsMaterial;
}

/** What `prepare` made ready; the runtime being built reads `infos` and `policies`. */
export class ListenerPlan {
  readonly slots = new Map<string, Slot>();
  /** Sockets bound by this plan (closed by `abort`). */
  readonly opened: Binding[] = [];
  /** Protocol servers made for existing sockets (plain ↔ TLS). */
  readonly created: ProtocolServer[] = [];
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  get infos(): Map<string, ListenerInfo> {
    return new Map([...this.slots].map(([n, s]) => [n, s.live.info]));
  }
  get policies(): Map<string, ListenerPolicy> {
    return new Map([...this.slots].map(([n, s]) => [n, s.live.policy]));
  }
}

// A slow tool call or a long SSE stream must never be cut by Node's defaults.
const HTTP_OPTIONS: http.ServerOptions = { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 65_000 };
/** How long connections of a replaced socket or protocol server may finish before they are cut. */
const RETIRE_GRACE_MS = 10_000;

export class Listeners {
  #slots = new Map<string, Slot>();
  #dir = '.';
  /** Every protocol server that may still hold connections (current and recently replaced). */
  readonly #protocols = new Set<ProtocolServer>();
  #certWatches: FileWatch[] = [];
  #stopped = false;
  readonly #onRequest: ListenerRequestHandler;
  readonly #log: Logger;
  readonly #watch: boolean;

  constructor(opts: { onRequest: ListenerRequestHandler; log: Logger; watchCertificates: boolean }) {
    this.#onRequest = opts.onRequest;
    this.#log = opts.log;
    this.#watch = opts.watchCertificates;
  }

  get(name?: string): LiveListener | undefined {
    return (name === undefined ? this.#slots.values().next().value : this.#slots.get(name))?.live;
  }

  all(): LiveListener[] {
    return [...this.#slots.values()].map((s) => s.live);
  }

  /** Binds new sockets and loads certificates for `loaded`'s listeners; nothing serving changes yet. */
  async prepare(loaded: LoadedConfig): Promise<ListenerPlan> {
    const plan = new ListenerPlan(loaded.dir);
    const claimed = new Set<Binding>();
    try {
      for (const [i, cfg] of loaded.config.listeners.entries()) {
        let material: TlsMaterial | undefined;
        if (cfg.tls) {
          try {
            material = await loadTls(cfg.tls, loaded.dir);
          } catch (err) {
            throw new ConfigError(loaded.source, [`listeners[${i}].${(err as Error).message}`]);
          }
        }
        let binding = this.#reusable(cfg, claimed);
        let protocol: ProtocolServer;
        if (binding) {
          claimed.add(binding);
          const sameKind = (binding.protocol instanceof https.Server) === (material !== undefined);
          protocol = sameKind ? binding.protocol : this.#protocolServer(binding, material);
          if (!sameKind) plan.created.push(protocol);
        } else {
          binding = await this.#bind(cfg, material);
          plan.opened.push(binding);
          protocol = binding.protocol;
        }
        const policy = new ListenerPolicy(cfg, binding.port);
        const info: ListenerInfo = { name: cfg.name, host: cfg.host, port: binding.port, publicUrl: policy.publicUrl };
        plan.slots.set(cfg.name, { live: { config: cfg, info, policy }, binding, protocol, tls: material });
      }
    } catch (err) {
      this.abort(plan);
      throw err;
    }
    return plan;
  }

  /** Swaps a prepared plan in: sockets no longer wanted stop accepting, kept ones get the new settings. */
  commit(plan: ListenerPlan): void {
    const kept = new Set([...plan.slots.values()].map((s) => s.binding));
    for (const [name, slot] of this.#slots) {
      if (kept.has(slot.binding)) continue;
      slot.binding.live = undefined;
      slot.binding.socket.close();
      this.#retire(slot.binding.protocol);
      this.#log.info({ listener: name }, plan.slots.has(name) ? 'listener changed: reopening it with the new settings' : 'listener removed');
    }
    for (const [name, slot] of plan.slots) {
      const { binding } = slot;
      const before = binding.live;
      if (binding.protocol !== slot.protocol) {
        this.#retire(binding.protocol);
        binding.protocol = slot.protocol;
        this.#log.info({ listener: name }, slot.tls ? 'listener switched to TLS on the same socket' : 'listener switched to plain HTTP on the same socket');
      } else if (slot.tls && binding.tlsDigest !== slot.tls.digest) {
        (binding.protocol as https.Server).setSecureContext(slot.tls.options);
        this.#log.info({ listener: name, certificate: slot.tls.summary }, 'TLS certificate reloaded');
      }
      binding.tlsDigest = slot.tls?.digest;
      this.#protocols.add(binding.protocol);
      binding.live = slot.live;
      if (before && JSON.stringify(before.config) !== JSON.stringify(slot.live.config)) {
        this.#log.info({ listener: name }, 'listener settings changed; its socket stays open');
      }
    }
    this.#slots = plan.slots;
    this.#dir = plan.dir;
    this.#watchCertificates();
  }

  /** Releases what a plan opened that is not serving. */
  abort(plan: ListenerPlan): void {
    for (const b of plan.opened) {
      if (b.live) continue; // committed after all
      b.socket.close();
      b.protocol.close();
    }
    for (const p of plan.created) if (!this.#protocols.has(p)) p.close();
  }

  /** Drain, first step: no new connections; idle keep-alive connections are closed. */
  stopAccepting(): void {
    this.#stopped = true;
    for (const w of this.#certWatches) w.close();
    this.#certWatches = [];
    for (const s of this.#slots.values()) s.binding.socket.close();
    for (const p of this.#protocols) p.close();
  }

  /** Drain, last step: every connection still open is cut. */
  closeAllConnections(): void {
    for (const p of this.#protocols) p.closeAllConnections();
  }

  /** The bound socket a listener config can keep: same host and port, the same name's first. */
  #reusable(cfg: ListenerConfig, claimed: Set<Binding>): Binding | undefined {
    const same = (b: Binding) => !claimed.has(b) && b.host === cfg.host && b.configuredPort === cfg.port;
    const byName = this.#slots.get(cfg.name)?.binding;
    if (byName && same(byName)) return byName;
    // A renamed listener on a fixed port keeps its socket too (port 0 means "any": never shared).
    if (cfg.port === 0) return undefined;
    return [...this.#slots.values()].map((s) => s.binding).find(same);
  }

  async #bind(cfg: ListenerConfig, material: TlsMaterial | undefined): Promise<Binding> {
    const binding = { host: cfg.host, configuredPort: cfg.port, port: 0, live: undefined, tlsDigest: material?.digest } as Binding;
    binding.protocol = this.#protocolServer(binding, material);
    // noDelay as http.createServer sets it: SSE events must not wait for Nagle's algorithm.
    binding.socket = net.createServer({ noDelay: true }, (conn) => binding.protocol.emit('connection', conn));
    try {
      await new Promise<void>((resolve, reject) => {
        binding.socket.once('error', reject);
        binding.socket.listen(cfg.port, cfg.host, () => {
          binding.socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      binding.protocol.close();
      throw err;
    }
    binding.socket.on('error', (err) => this.#log.error({ listener: cfg.name, error: err.message }, 'listener socket error'));
    binding.port = (binding.socket.address() as AddressInfo).port;
    return binding;
  }

  #protocolServer(binding: Binding, material: TlsMaterial | undefined): ProtocolServer {
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.#onRequest(binding.live, req, res);
    const server: ProtocolServer = material
      ? https.createServer({ ...HTTP_OPTIONS, ...material.options }, onRequest)
      : http.createServer(HTTP_OPTIONS, onRequest);
    server.timeout = 0;
    server.on('clientError', answerClientError);
    // It never listens itself; 'listening' starts Node's per-connection clock (headersTimeout, the
    // slow-headers guard), which would otherwise never run.
    server.emit('listening');
    return server;
  }

  /** A replaced protocol server: open exchanges may finish for a while, then are cut. */
  #retire(server: ProtocolServer): void {
    server.close();
    setTimeout(() => {
      server.closeAllConnections();
      this.#protocols.delete(server);
    }, RETIRE_GRACE_MS).unref();
  }

  #watchCertificates(): void {
    for (const w of this.#certWatches) w.close();
    this.#certWatches = [];
    if (!this.#watch || this.#stopped) return;
    for (const slot of this.#slots.values()) {
      const settings = slot.live.config.tls;
      if (!settings) continue;
      const p = tlsPaths(settings, this.#dir);
      const name = slot.live.info.name;
      this.#certWatches.push(watchFiles([p.cert, p.key], () => void this.#reloadCertificate(slot.binding, settings, this.#dir, name), {
        onError: (folder, err) => this.#log.warn({ listener: name, folder, error: err.message }, 'cannot watch the TLS files; reload the config (SIGHUP) after renewing them'),
      }));
    }
  }

  async #reloadCertificate(binding: Binding, settings: TlsSettings, dir: string, name: string): Promise<void> {
    let material: TlsMaterial;
    try {
      material = await loadTls(settings, dir);
    } catch (err) {
      this.#log.error({ listener: name, error: (err as Error).message }, 'the changed TLS files cannot be used; the previous certificate keeps serving');
      return;
    }
    // A reload that replaced these settings meanwhile loaded the files itself.
    if (binding.live?.config.tls !== settings || material.digest === binding.tlsDigest) return;
    (binding.protocol as https.Server).setSecureContext(material.options);
    binding.tlsDigest = material.digest;
    this.#log.info({ listener: name, certificate: material.summary }, 'TLS certificate reloaded');
  }
}

/** Requests Node cannot even parse never reach a route; they still get an answer with a code. */
function answerClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (!socket.writable) return void socket.destroy();
  const r = err.code === 'HPE_HEADER_OVERFLOW'
    ? coreRefusal('GW_ERR_HEADERS_TOO_LARGE', 'the request headers are larger than the gateway accepts')
    : coreRefusal('GW_ERR_BAD_FRAMING', `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`);
  const body = JSON.stringify(refusalMessage(r, null));
  const reason = r.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.end(`HTTP/1.1 ${r.status} ${reason}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
