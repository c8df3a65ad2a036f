/**
 * A tlog-witness: its own process, key and SQLite database. For each log it follows (origin and
 * Ed25519 verifier key) it remembers the latest checkpoint it cosigned, and cosigns a new one only
 * if it is signed by the log and consistent with that one.
 *
 * HTTP API:
 *   POST /add-checkpoint              tlog-witness add-checkpoint: 200 cosignature/v1 signature
 *                                      line; 409 text/x.tlog.size "<size>\n"; 400, 403, 404, 422
 *   GET  /<hex SHA-256(origin)>/checkpoint   the latest cosigned checkpoint with the log's
 *                                      signature and this witness's cosignature; 404 if none
 *
 * The check and the update are one synchronous SQLite transaction (WAL, synchronous=FULL): two
 * concurrent requests cannot both pass against the same old size, and the new size is durable
 * before the cosignature leaves.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  checkAddCheckpoint,
  formatSignatureLine,
  formatSizeBody,
  type NoteVerifier,
  noteVerifier,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  TLOG_SIZE_CONTENT_TYPE,
  type WitnessRecord,
} from "@bkv/tlog";
import { fromUtf8 } from "@bkv/wire";
import Database from "better-sqlite3";
import Fastify, { type FastifyInstance } from "fastify";
import { type EventSink, logEvent } from "./args.js";
import { listen } from "./listen.js";
import { loadOrCreateKey, type NodeKey } from "./node-keys.js";

export interface WitnessOptions {
  readonly dir: string;
  /** The witness's key name. */
  readonly name: string;
  /** Logs it follows: [origin, Ed25519 verifier key]. */
  readonly logs: readonly (readonly [string, string])[];
  /** POSIX seconds; tests may fix it. */
  readonly now?: () => number;
  /** Where events go; default one JSON line each on stderr. */
  readonly onEvent?: EventSink;
}

type Answer = { status: number; contentType: string; body: string };

export class WitnessService {
  readonly key: NodeKey;
  private readonly db: Database.Database;
  private readonly trusted = new Map<string, NoteVerifier[]>();
  private readonly now: () => number;
  private readonly event: EventSink;

  constructor(options: WitnessOptions) {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    this.key = loadOrCreateKey(options.dir, "witness.key", options.name, SIG_COSIGNATURE_V1);
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.event = options.onEvent ?? logEvent;
    for (const [origin, vkey] of options.logs) {
      const v = noteVerifier(vkey);
      if (v.type !== SIG_ED25519) throw new Error(`log key ${vkey} is not an Ed25519 key`);
      this.trusted.set(origin, [...(this.trusted.get(origin) ?? []), v]);
    }
    this.db = new Database(join(options.dir, "witness.sqlite"));
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL)",
    );
  }

  close(): void {
    this.db.close();
  }

  latest(origin: string): WitnessRecord | undefined {
    const r = this.db.prepare("SELECT size, root FROM logs WHERE origin = ?").get(origin) as
      | { size: number; root: Buffer }
      | undefined;
    return r === undefined ? undefined : { size: r.size, root: new Uint8Array(r.root) };
  }

  /** Handle an add-checkpoint body; check, cosign and persist atomically. */
  addCheckpoint(body: string): Answer {
    const run = this.db.transaction((): Answer => {
      const d = checkAddCheckpoint(
        body,
        (o) => this.trusted.get(o),
        (o) => this.latest(o),
      );
      if (d.status === 409) {
        return { status: 409, contentType: TLOG_SIZE_CONTENT_TYPE, body: formatSizeBody(d.size) };
      }
      if (d.status !== 200) {
        this.event("witness-refused", { status: d.status, reason: d.reason });
        return { status: d.status, contentType: "text/plain; charset=utf-8", body: `${d.reason}\n` };
      }
      const line = formatSignatureLine({
        name: this.key.key.name,
        keyId: this.key.key.keyId,
        signature: this.key.cosign(this.now(), d.note.text),
      });
      const logSigs = d.note.verified.map((s) => ({ name: s.name, keyId: s.keyId, signature: s.signature }));
      const stored = `${d.note.text}\n${logSigs.map(formatSignatureLine).join("")}${line}`;
      this.db
        .prepare("INSERT OR REPLACE INTO logs (origin, size, root, note) VALUES (?, ?, ?, ?)")
        .run(d.checkpoint.origin, d.checkpoint.size, d.checkpoint.root, stored);
      this.event("cosigned", { origin: d.checkpoint.origin, size: d.checkpoint.size });
      return { status: 200, contentType: "text/plain; charset=utf-8", body: line };
    });
    return run();
  }

  /** The latest cosigned checkpoint of the log whose origin hashes to this hex SHA-256. */
  checkpointByOriginHash(hex: string): string | undefined {
    for (const origin of this.trusted.keys()) {
      if (createHash("sha256").update(origin).digest("hex") !== hex) continue;
      const r = this.db.prepare("SELECT note FROM logs WHERE origin = ?").get(origin) as
        | { note: string }
        | undefined;
      return r?.note;
    }
    return undefined;
  }
}

export function witnessApp(w: WitnessService): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));

  app.post("/add-checkpoint", async (req, reply) => {
    let text: string;
    try {
      text = fromUtf8(new Uint8Array(req.body as Buffer));
    } catch {
      return reply.code(400).type("text/plain; charset=utf-8").send("the body is not UTF-8\n");
    }
    const a = w.addCheckpoint(text);
    return reply.code(a.status).type(a.contentType).send(a.body);
  });

  app.get("/:originHash/checkpoint", async (req, reply) => {
    const note = w.checkpointByOriginHash((req.params as { originHash: string }).originHash);
    if (note === undefined) return reply.code(404).type("text/plain; charset=utf-8").send("no checkpoint\n");
    return reply.type("text/plain; charset=utf-8").header("cache-control", "no-store").send(note);
  });

  return app;
}

export interface RunningWitness {
  readonly url: string;
  readonly service: WitnessService;
  close(): Promise<void>;
}

export async function startWitnessServer(
  options: WitnessOptions,
  host: string,
  port: number,
): Promise<RunningWitness> {
  const service = new WitnessService(options);
  const app = witnessApp(service);
  const url = await listen(app, host, port, () => service.close());
  return {
    url,
    service,
    close: async () => {
      await app.close();
      service.close();
    },
  };
}
