/**
 * The command-line flags of the log and witness processes, read with node's parseArgs (as `bkv`
 * does): `--name value` or `--name=value`, no positional arguments, every flag known. A flag not
 * marked repeatable may be given once. Anything wrong is a UsageError, which the processes answer
 * with a message and EXIT_USAGE before they open anything.
 */
import { parseArgs } from "node:util";

/** The exit code of a process started with flags it cannot use (the HSM processes use it too). */
export const EXIT_USAGE = 2;
/** The exit code of a process that could not start or run for any other reason. */
export const EXIT_FAILURE = 1;

export class UsageError extends Error {
  override name = "UsageError";
}

export interface FlagSpec {
  /** May be given more than once (a list). */
  readonly repeatable?: boolean;
}

/** Each flag's values in order, for the flags given. */
export type Flags<N extends string> = { readonly [K in N]?: readonly string[] };

/** Parse argv against the named flags (all take a value); UsageError on anything else. */
export function parseFlags<N extends string>(
  argv: readonly string[],
  specs: { readonly [K in N]: FlagSpec },
): Flags<N> {
  const options: Record<string, { type: "string"; multiple: true }> = {};
  for (const name of Object.keys(specs)) options[name] = { type: "string", multiple: true };
  let values: Record<string, string[] | undefined>;
  try {
    values = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true }).values as Record<
      string,
      string[] | undefined
    >;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const out: Partial<Record<N, readonly string[]>> = {};
  for (const name of Object.keys(specs) as N[]) {
    const list = values[name];
    if (list === undefined) continue;
    if (list.length > 1 && specs[name].repeatable !== true) throw new UsageError(`--${name} given twice`);
    out[name] = list;
  }
  return out as Flags<N>;
}

/** The one value of a flag, if given. */
export function single(values: readonly string[] | undefined): string | undefined {
  return values?.[0];
}

/** The one value of a required flag. */
export function required(values: readonly string[] | undefined, flag: string): string {
  const v = values?.[0];
  if (v === undefined || v === "") throw new UsageError(`--${flag} is required`);
  return v;
}

/** "yes" or "no" (absent: no). */
export function yesNo(values: readonly string[] | undefined, flag: string): boolean {
  const v = values?.[0];
  if (v === undefined || v === "no") return false;
  if (v === "yes") return true;
  throw new UsageError(`--${flag} wants yes or no, got ${v}`);
}

/** A whole number within [min, max], if given. */
export function wholeNumber(
  values: readonly string[] | undefined,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  const v = values?.[0];
  if (v === undefined) return undefined;
  const n = /^[0-9]{1,15}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got ${v}`);
  return n;
}

/** "127.0.0.1:8080" → host and port (0 for any free port). */
export function parseListen(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  const digits = s.slice(i + 1);
  const port = /^[0-9]{1,5}$/.test(digits) ? Number(digits) : Number.NaN;
  if (i <= 0 || !Number.isInteger(port) || port > 65535)
    throw new UsageError(`--listen wants HOST:PORT (port 0..65535), got ${s}`);
  return { host: s.slice(0, i), port };
}

/** "<left>=<C2SP verifier key>", split at the first "=" (base64 keys may end in "="). */
export function splitKeyed(s: string, flag: string): [string, string] {
  const i = s.indexOf("=");
  if (i <= 0) throw new UsageError(`--${flag} wants <name>=<verifier key>, got ${s}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** "<namespace>=<hex key>", split at the last "=" (a namespace may hold "=", hex never does). */
export function splitNamespace(s: string, flag = "namespace"): [string, string] {
  const i = s.lastIndexOf("=");
  if (i <= 0) throw new UsageError(`--${flag} wants <namespace>=<key, hex>, got ${s}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** 32 bytes as 64 hex digits. */
export function hexKey(s: string, flag: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(s)) throw new UsageError(`--${flag}: 64 hex digits expected, got ${s}`);
  return new Uint8Array(Buffer.from(s, "hex"));
}
