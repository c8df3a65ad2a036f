/** Command-line flags of the two processes: `--name value`, repeatable where a list is wanted. */

export function parseFlags(argv: readonly string[], repeatable: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new Error(`--${name} needs a value`);
      value = next;
      i++;
    }
    const list = out.get(name) ?? [];
    if (list.length > 0 && !repeatable.includes(name)) throw new Error(`--${name} given twice`);
    list.push(value);
    out.set(name, list);
  }
  return out;
}

export function required(flags: Map<string, string[]>, name: string): string {
  const v = flags.get(name)?.[0];
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

/** "127.0.0.1:8080" → host and port (0 for any free port). */
export function parseListen(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --listen ${s}`);
  return { host: s.slice(0, i), port };
}

/** "<left>=<C2SP verifier key>", split at the first "=" (base64 keys may end in "="). */
export function splitKeyed(s: string, flag: string): [string, string] {
  const i = s.indexOf("=");
  if (i <= 0) throw new Error(`--${flag} wants <name>=<verifier key>, got ${s}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** "<namespace>=<hex key>", split at the last "=" (a namespace may hold "=", hex never does). */
export function splitNamespace(s: string, flag = "namespace"): [string, string] {
  const i = s.lastIndexOf("=");
  if (i <= 0) throw new Error(`--${flag} wants <namespace>=<key, hex>, got ${s}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** 32 bytes as 64 hex digits. */
export function hexKey(s: string, flag: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(s)) throw new Error(`--${flag}: 64 hex digits expected, got ${s}`);
  return new Uint8Array(Buffer.from(s, "hex"));
}

export type EventSink = (event: string, fields?: Record<string, unknown>) => void;

/** One JSON line on stderr per event: never request bodies or keys. */
export function logEvent(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}
