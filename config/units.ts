/**
 * Small value types shared by every config schema: durations, byte sizes, and numbers/booleans that may
 * arrive as strings through `${ENV}` interpolation.
 */
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `250ms`, `30s`, `5m`, `2h`, `7d` or a bare number of milliseconds. Returns undefined if invalid. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_UNIT_MS[m[2] ?? 'ms']);
}

const BYTES = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i;
const BYTE_UNIT: Record<string, number> = {
  b: 1, kb: 1000, kib: 1024, mb: 1_000_000, mib: 1024 ** 2, gb: 1_000_000_000, gib: 1024 ** 3,
};

/** Parses `512kb`, `4mib`, `1gb` or a bare number of bytes. */
export function parseBytes(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = BYTES.exec(value.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * BYTE_UNIT[(m[2] ?? 'b').toLowerCase()]);
}

/** A duration in milliseconds; `0` means "no limit" wherever a field says so. */
export const duration = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as 500ms, 30s, 5m or 2h; got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

/** A size in bytes. */
export const bytes = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parseBytes(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as 512kb, 4mb or 1048576; got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });

/** An integer that may be written as a string (it often comes from `${PORT:-3001}`). */
export const int = () =>
  z.preprocess((v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v), z.number().int());

/** A boolean that may be written as `"true"`/`"false"`. */
export const bool = () =>
  z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());
