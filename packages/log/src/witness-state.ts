/**
 * The witness's own record of what it cosigned, kept beside its key (witness.state), so that a
 * witness whose database was lost or restored while its key remains refuses to cosign instead of
 * cosigning a fork from an older tree.
 *
 * For each log origin it holds the largest size the witness cosigned and that tree's root, with an
 * HMAC-SHA256 under a key derived from the witness's private key seed: nobody without the key can
 * write a record the witness accepts. The witness writes it (atomically: temporary file, fsync,
 * rename) after its database has committed a cosigned checkpoint and before the cosignature leaves,
 * so the record never runs behind a cosignature sent. Before each cosignature the database must be
 * at or ahead of the record for that origin, with the same root at equal size; otherwise the
 * witness fails closed with WITNESS_STATE.
 *
 * File: JSON {"version":1,"logs":[[origin, size, base64 root], ...sorted by origin],"mac":base64},
 * the MAC over "bkv-witness-state/v1\n" || the JSON of "logs".
 *
 * What it cannot see: the key, the record and the database all restored together from one backup
 * (they agree with each other). The record belongs on storage that is never rolled back, like the
 * key itself.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fromBase64, toBase64, type WitnessRecord } from "@bkv/tlog";
import { BkvError, bytesEqual, ErrorCode } from "@bkv/wire";

export const WITNESS_STATE_FILE = "witness.state";
const DOMAIN = "bkv-witness-state/v1";

function stateError(message: string): BkvError {
  return new BkvError(ErrorCode.WitnessState, message);
}

export class WitnessStateRecord {
  readonly path: string;
  private readonly macKey: Buffer;
  private logs = new Map<string, WitnessRecord>();

  /** `seed`: the witness key's private seed (the MAC key is derived from it, never stored). */
  constructor(dir: string, seed: Uint8Array) {
    this.path = join(dir, WITNESS_STATE_FILE);
    this.macKey = createHmac("sha256", seed).update(`${DOMAIN} mac key`).digest();
  }

  exists(): boolean {
    return existsSync(this.path);
  }

  /** Read and authenticate the record; WITNESS_STATE if it is malformed or its MAC fails. */
  load(): void {
    let parsed: { version?: unknown; logs?: unknown; mac?: unknown };
    try {
      parsed = JSON.parse(readFileSync(this.path, "utf8"));
    } catch (e) {
      throw stateError(`${this.path} is not readable JSON: ${(e as Error).message}`);
    }
    const mac = typeof parsed.mac === "string" ? fromBase64(parsed.mac) : undefined;
    if (parsed.version !== 1 || !Array.isArray(parsed.logs) || mac === undefined) {
      throw stateError(`${this.path} is not a witness state record`);
    }
    const expected = this.mac(parsed.logs);
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
      throw stateError(`${this.path}: its MAC does not verify under this witness's key`);
    }
    const logs = new Map<string, WitnessRecord>();
    for (const row of parsed.logs as unknown[]) {
      const [origin, size, root] = Array.isArray(row) ? row : [];
      const r = typeof root === "string" ? fromBase64(root) : undefined;
      if (
        typeof origin !== "string" ||
        !Number.isSafeInteger(size) ||
        (size as number) < 0 ||
        r === undefined
      ) {
        throw stateError(`${this.path}: a malformed row`);
      }
      logs.set(origin, { size: size as number, root: r });
    }
    this.logs = logs;
  }

  get(origin: string): WitnessRecord | undefined {
    return this.logs.get(origin);
  }

  /** Write the whole record with this origin's new (size, root), durably, before returning. */
  save(origin: string, record: WitnessRecord): void {
    const next = new Map(this.logs);
    const prev = next.get(origin);
    if (prev === undefined || record.size >= prev.size) next.set(origin, record);
    this.write(next);
    this.logs = next;
  }

  /** Replace the record (a fresh witness: empty; an adoption: what the database holds). */
  reset(logs: ReadonlyMap<string, WitnessRecord>): void {
    const next = new Map(logs);
    this.write(next);
    this.logs = next;
  }

  private write(logs: ReadonlyMap<string, WitnessRecord>): void {
    const rows = [...logs.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([origin, r]) => [origin, r.size, toBase64(r.root)]);
    const body = `${JSON.stringify({ version: 1, logs: rows, mac: toBase64(this.mac(rows)) })}\n`;
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    const dirFd = openSync(join(this.path, ".."), "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  private mac(rows: unknown): Uint8Array {
    return new Uint8Array(
      createHmac("sha256", this.macKey).update(`${DOMAIN}\n`).update(JSON.stringify(rows)).digest(),
    );
  }

  /**
   * Why the database's record for `origin` cannot be trusted against this record (null: it can).
   * The database may be ahead (it commits before the record is written), never behind.
   */
  problem(origin: string, db: WitnessRecord | undefined): string | null {
    const mine = this.logs.get(origin);
    if (mine === undefined) return null;
    if (db === undefined) {
      return `this witness cosigned ${origin} at size ${mine.size}, but its database has no checkpoint of it (lost or replaced)`;
    }
    if (db.size < mine.size) {
      return `this witness cosigned ${origin} at size ${mine.size}, but its database is at ${db.size} (restored from an older copy)`;
    }
    if (db.size === mine.size && !bytesEqual(db.root, mine.root)) {
      return `the database's root of ${origin} at size ${db.size} is not the one this witness cosigned`;
    }
    return null;
  }
}
