/**
 * Which era a request speaks, told apart per request: a 2026 request names its version in the
 * `MCP-Protocol-Version` header and in its body's `_meta`; a 2025 request opens with `initialize` and
 * then rides an `Mcp-Session-Id` session (its header, when present, names a 2025 version).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ProtocolInfo } from '../contract.ts';
import { eraOfVersion, HEADER, META } from './versions.ts';

/** What the headers alone tell (stage 3, before the body is read). */
export function protocolFromHeaders(headers: IncomingHttpHeaders): ProtocolInfo {
  const version = headers[HEADER.protocolVersion];
  if (typeof version !== 'string') return {};
  return { era: eraOfVersion(version), version };
}

/**
 * What a lone message adds (stage 4): a body's `_meta` version makes the request 2026-era whatever
 * the header said (the header is then checked against it); `initialize` makes it 2025-era.
 */
export function protocolFromMessage(info: ProtocolInfo, message: unknown): ProtocolInfo {
  const m = message as { method?: unknown; params?: { _meta?: Record<string, unknown>; protocolVersion?: unknown; clientInfo?: unknown } } | null;
  if (!m || typeof m.method !== 'string') return info;
  const meta = m.params?._meta;
  const metaVersion = meta?.[META.protocolVersion];
  if (typeof metaVersion === 'string') {
    return { era: eraOfVersion(metaVersion) ?? '2026', version: metaVersion, clientInfo: infoOf(meta?.[META.clientInfo]) };
  }
  if (m.method === 'initialize') {
    const v = m.params?.protocolVersion;
    return { era: '2025', version: typeof v === 'string' ? v : info.version, clientInfo: infoOf(m.params?.clientInfo) };
  }
  return info;
}

function infoOf(v: unknown): ProtocolInfo['clientInfo'] {
  return v !== null && typeof v === 'object' ? (v as ProtocolInfo['clientInfo']) : undefined;
}
