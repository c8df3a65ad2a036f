/**
 * A tlog-witness: its own process, key and SQLite database. For each log it follows (origin and
 * Ed25519 verifier key) it remembers the latest checkpoint it cosigned, and cosigns a new one only
 * if it is signed by the log and consistent with that one.
 *
 * HTTP API:
 *   POST /add-checkpoint              tlog-witness add-checkpoint: 200 cosignature/v1 signature
 *                                      line; 409 text/x.tlog.size "<size>\n"; 400, 403, 404, 422
 *                                      text/plain (the spec's answers). Any content type; a body
 *                                      over WITNESS_BODY_LIMIT is 413 {code, message} before it
 *                                      is read.
 *   GET  /<hex SHA-256(origin)>/checkpoint   the latest cosigned checkpoint with the log's
 *                                      signature and this witness's cosignature; 404 NOT_FOUND if
 *                                      none; 400 MALFORMED if not 64 lowercase hex digits
 * Everything that is not a tlog-witness answer is answered as the log's and the host's errors are,
 * {code, message} (http-errors.ts): unknown routes 404 NOT_FOUND, schema refusals 400 MALFORMED.
 *
 * The check and the update are one synchronous SQLite transaction (WAL, synchronous=FULL): two
 * concurrent requests cannot both pass against the same old size, and the new size is durable
 * before the cosignature leaves.
 *
 * Storage cannot fool it: beside its key it keeps a MACed record of the largest size (and root) it
 * cosigned per log (witness-state.ts), written after the database commits and before the
 * cosignature leaves. If the database is behind that record or has lost a log the record names
 * (restored or replaced while the key remained), or the record is missing beside a database that
 * holds checkpoints, or its MAC fails, the witness refuses to cosign: 503, body
 * "WITNESS_STATE: <reason>". A fresh witness (no record and an empty database) starts a new record.
 * `adoptState` (--adopt-state) writes the record from the database once, for a witness made before
 * the record existed.
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
import { BkvError, ErrorCode, fromUtf8 } from "@bkv/wire";
import Database from "better-sqlite3";
import Fastify, { type FastifyInstance } from "fastify";
import { type EventSink, logEvent } from "./events.js";
import { installErrorHandlers, LogHttpError } from "./http-errors.js";
import { listen } from "./listen.js";
import { loadOrCreateKey, type NodeKey } from "./node-keys.js";
import { AJV_OPTIONS, HEX32, NO_QUERY, params } from "./request-schemas.js";
import { WitnessStateRecord } from "./witness-state.js";

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
  /**
   * Write the state record from the database if it is missing (once, for a witness made before
   * the record existed). Never for a witness whose record was lost: that is what it guards against.
   */
  readonly adoptState?: boolean;
}

/** The status of a WITNESS_STATE refusal (not one of tlog-witness's: the witness itself is at fault). */
export const WITNESS_STATE_STATUS = 503;

type Answer = { status: number; contentType: string; body: string };

export class WitnessService {
  readonly key: NodeKey;
  private readonly db: Database.Database;
  private readonly trusted = new Map<string, NoteVerifier[]>();
  private readonly now: () => number;
  private readonly event: EventSink;
  private readonly record: WitnessStateRecord;
  /** Set when the record cannot be trusted at all (MAC, format, missing beside a used database). */
  private stateProblem: string | null = null;

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
    this.record = new WitnessStateRecord(options.dir, this.key.key.seed);
    this.openRecord(options.adoptState === true);
  }

  private openRecord(adopt: boolean): void {
    const rows = this.db.prepare("SELECT origin, size, root FROM logs").all() as {
      origin: string;
      size: number;
      root: Buffer;
    }[];
    if (!this.record.exists()) {
      if (rows.length === 0 || adopt) {
        this.record.reset(
          new Map(rows.map((r) => [r.origin, { size: r.size, root: new Uint8Array(r.root) }])),
        );
        if (rows.length > 0) this.event("witness-state-adopted", { logs: rows.length });
        return;
      }
      this.stateProblem = `the database holds checkpoints but ${this.record.path} is missing`;
    } else {
      try {
        this.record.load();
      } catch (e) {
        if (!(e instanceof BkvError)) throw e;
        this.stateProblem = e.message;
      }
    }
    if (this.stateProblem === null) {
      for (const origin of this.trusted.keys()) {
        const p = this.record.problem(origin, this.latest(origin));
        if (p !== null) this.event("witness-state", { origin, reason: p });
      }
    } else {
      this.event("witness-state", { reason: this.stateProblem });
    }
  }

  /** Where this witness's events go. */
  get onEvent(): EventSink {
    return this.event;
  }

  /** Why this witness cannot cosign for `origin` now (null: it can). */
  stateProblemFor(origin: string): string | null {
    return this.stateProblem ?? this.record.problem(origin, this.latest(origin));
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

  /**
   * Handle an add-checkpoint body: check the state record, check, cosign and persist atomically
   * in the database, then write the record, then answer.
   */
  addCheckpoint(body: string): Answer {
    const refuse = (reason: string): Answer => {
      this.event("witness-refused", { status: WITNESS_STATE_STATUS, code: ErrorCode.WitnessState, reason });
      return {
        status: WITNESS_STATE_STATUS,
        contentType: "text/plain; charset=utf-8",
        body: `${ErrorCode.WitnessState}: ${reason}\n`,
      };
    };
    let cosigned: { origin: string; size: number; root: Uint8Array } | undefined;
    const run = this.db.transaction((): Answer => {
      const d = checkAddCheckpoint(
        body,
        (o) => this.trusted.get(o),
        (o) => {
          // Asked only for a known origin under a valid log signature. A decision from a database
          // that lost history would be a cosignature of a fork: fail closed instead.
          const problem = this.stateProblemFor(o);
          if (problem !== null) throw new BkvError(ErrorCode.WitnessState, problem);
          return this.latest(o);
        },
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
      cosigned = { origin: d.checkpoint.origin, size: d.checkpoint.size, root: d.checkpoint.root };
      return { status: 200, contentType: "text/plain; charset=utf-8", body: line };
    });
    let answer: Answer;
    try {
      answer = run();
    } catch (e) {
      if (e instanceof BkvError && e.code === ErrorCode.WitnessState) return refuse(e.message);
      throw e;
    }
    if (cosigned !== undefined) {
      // The database has committed; the record follows before the cosignature leaves.
      try {
        this.record.save(cosigned.origin, { size: cosigned.size, root: cosigned.root });
      } catch (e) {
        return refuse(`the state record could not be written: ${(e as Error).message}`);
      }
      this.event("cosigned", { origin: cosigned.origin, size: cosigned.size });
    }
    return answer;
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

/**
 * The largest add-checkpoint body: a checkpoint with its signatures (a few hundred bytes from a log
 * that signs once), MAX_WITNESS_PROOF_LINES proof lines and the "old" line fit many times over.
 */
export const WITNESS_BODY_LIMIT = 64 * 1024;

export function witnessApp(w: WitnessService): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: WITNESS_BODY_LIMIT, ajv: AJV_OPTIONS });
  installErrorHandlers(app, w.onEvent);
  // tlog-witness bodies are text of any declared type: read as bytes, decoded below.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: WITNESS_BODY_LIMIT }, (_req, body, done) =>
    done(null, body),
  );

  // Spec-defined answers (tlog-witness): text/plain, 409 text/x.tlog.size; kept as they are.
  app.post("/add-checkpoint", async (req, reply) => {
    let text: string;
    try {
      const body = req.body as Buffer | undefined;
      text = fromUtf8(body === undefined ? new Uint8Array(0) : new Uint8Array(body));
    } catch {
      return reply.code(400).type("text/plain; charset=utf-8").send("the body is not UTF-8\n");
    }
    const a = w.addCheckpoint(text);
    return reply.code(a.status).type(a.contentType).send(a.body);
  });

  // Not in tlog-witness: its errors are {code, message}.
  app.get<{ Params: { originHash: string } }>(
    "/:originHash/checkpoint",
    { schema: { params: params({ originHash: HEX32 }), querystring: NO_QUERY } },
    async (req, reply) => {
      const note = w.checkpointByOriginHash(req.params.originHash);
      if (note === undefined)
        throw new LogHttpError(404, "this witness has cosigned no checkpoint of that log");
      return reply.type("text/plain; charset=utf-8").header("cache-control", "no-store").send(note);
    },
  );

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
