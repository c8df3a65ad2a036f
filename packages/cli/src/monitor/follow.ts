/**
 * Following the log. One poll: fetch the checkpoint and verify it (the pinned log key, at least
 * `threshold` witness cosignatures); demand that it extends the checkpoint seen before (the state
 * file's at first, then the last one this run verified); read the entries not yet read from the
 * tiles (authenticated against the root) and check each one (entries.ts), reporting its fleet and
 * what changed from the previous epoch of its namespace. The state file is written only when
 * every check of the run so far held. With `follow`, poll every interval until the signal aborts.
 */
import { MemberIndex } from "@bkv/client";
import { isTlogError, openCosignedCheckpoint, TILE_WIDTH, TiledLog, TlogErrorCode } from "@bkv/tlog";
import { toHex } from "@bkv/wire";
import type { MonitorConfig } from "./config.js";
import { diffFleets, FleetHistory } from "./diff.js";
import { checkEntry, type EarlierFleet } from "./entries.js";
import type { MonitorEvent, NamedFailure, SummaryEvent } from "./events.js";
import { LogClient } from "./log-client.js";
import { type Consistency, checkConsistency, loadState, type SavedCheckpoint, saveState } from "./state.js";

export interface MonitorIo {
  readonly emit: (e: MonitorEvent) => void;
  /** Aborting it stops following (and cancels requests in flight). */
  readonly signal?: AbortSignal;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Monitor {
  private readonly client: LogClient;
  private readonly history = new FleetHistory();
  /** The genesis members of every entry read, to catch one HSM in two fleets (members.fresh). */
  private readonly members = new MemberIndex<EarlierFleet>();
  /** Fleet entries read so far by namespace and epoch (epoch.first). */
  private readonly epochs = new Map<string, number>();
  private readonly latest = new Map<string, number>();
  /** The checkpoint the state file held when the run started. */
  private readonly initial: SavedCheckpoint | undefined;
  /**
   * The last checkpoint whose signatures and consistency this run verified (or the state file's),
   * whether or not all its entries could be read yet: every later checkpoint must extend it.
   */
  private anchor: SavedCheckpoint | undefined;
  /** Entries [0, read) have been checked. */
  private read = 0;
  private readonly failures: NamedFailure[] = [];
  private lastFailure: string | undefined;
  private newEntries = 0;
  private stateSaved: string | null = null;
  private announcedEmpty = false;
  /** Every entry of the anchor checkpoint has been read. */
  private caughtUp = false;

  constructor(
    readonly config: MonitorConfig,
    private readonly io: MonitorIo,
  ) {
    this.client = new LogClient(config.logUrl, io.signal);
    this.initial = config.statePath === null ? undefined : loadState(config.statePath, config.policy.logKey);
    this.anchor = this.initial;
  }

  get ok(): boolean {
    return this.failures.length === 0;
  }

  private get stopped(): boolean {
    return this.io.signal?.aborted === true;
  }

  /** A failure outside the entries; repeated identical ones (while following) are reported once. */
  private checkpointFailure(check: string, msg: string): void {
    // A request cut short by the stop signal is not a failure of the log.
    if (this.stopped) return;
    const key = `${check}\n${msg}`;
    if (this.lastFailure !== key) this.io.emit({ type: "failure", check, message: msg });
    this.lastFailure = key;
    this.failures.push({ check, message: msg });
  }

  /** One look at the log. Returns whether it held (a consistent checkpoint, new entries all good). */
  async poll(): Promise<boolean> {
    const before = this.failures.length;
    await this.pollOnce();
    const clean = this.failures.length === before;
    if (clean) this.lastFailure = undefined;
    return clean;
  }

  private async pollOnce(): Promise<void> {
    const { policy } = this.config;
    let note: string | undefined;
    try {
      note = await this.client.checkpoint();
    } catch (e) {
      this.checkpointFailure("checkpoint.fetch", message(e));
      return;
    }
    if (note === undefined) {
      if (this.anchor !== undefined && this.anchor.size > 0) {
        this.checkpointFailure(
          "checkpoint.rollback",
          `the log serves no checkpoint; one of size ${this.anchor.size} was seen before`,
        );
      } else if (!this.announcedEmpty) {
        this.announcedEmpty = true;
        this.io.emit({ type: "note", message: "the log has published no checkpoint yet" });
      }
      return;
    }
    let opened: ReturnType<typeof openCosignedCheckpoint>;
    try {
      opened = openCosignedCheckpoint(note, policy);
    } catch (e) {
      this.checkpointFailure("checkpoint.signatures", `the checkpoint does not verify: ${message(e)}`);
      return;
    }
    const cp = opened.checkpoint;
    const anchor = this.anchor;
    if (anchor !== undefined && anchor.origin !== cp.origin) {
      this.checkpointFailure(
        "checkpoint.origin",
        `the log is ${cp.origin}, the state file is for ${anchor.origin}`,
      );
      return;
    }

    const tiles = new TiledLog(this.client, cp.size, cp.root);
    let consistency: Consistency;
    try {
      consistency = await checkConsistency(anchor, tiles);
    } catch (e) {
      const check =
        anchor === undefined || !isTlogError(e)
          ? "checkpoint.consistency"
          : cp.size < anchor.size
            ? "checkpoint.rollback"
            : e.code === TlogErrorCode.Inconsistent || e.code === TlogErrorCode.BadProof
              ? "checkpoint.split-view"
              : "checkpoint.consistency";
      this.checkpointFailure(check, message(e));
      return;
    }
    // Following, and nothing new since the last poll.
    if (this.caughtUp && anchor !== undefined && anchor.size === cp.size) return;
    if (!this.caughtUp || anchor === undefined || anchor.size !== cp.size) {
      this.io.emit({
        type: "checkpoint",
        origin: cp.origin,
        size: cp.size,
        root: toHex(cp.root),
        cosigners: opened.cosigners,
        threshold: policy.threshold,
        consistency,
      });
    }

    // From here on this checkpoint is the one later checkpoints must extend, whether or not every
    // entry under it can be read in this poll: a poll that fails to read them must not let an older
    // checkpoint in unnoticed next time. Its entries are read (again) until one poll reads them all.
    this.anchor = { origin: cp.origin, size: cp.size, root: cp.root, note };
    this.caughtUp = false;
    const ctx = {
      client: this.client,
      policy,
      size: cp.size,
      root: cp.root,
      vendorRoots: this.config.vendorRoots,
      maxGuessLimit: this.config.maxGuessLimit,
      allowTestRoots: this.config.allowTestRoots === true,
      allowSmallFleet: this.config.allowSmallFleet === true,
      ...(this.config.releaseKey === undefined ? {} : { releaseKey: this.config.releaseKey }),
      members: this.members,
      epochs: this.epochs,
      latest: this.latest,
    };
    for (let b = Math.floor(this.read / TILE_WIDTH); b * TILE_WIDTH < cp.size; b++) {
      let raw: Uint8Array[];
      try {
        raw = await tiles.entries(b);
      } catch (e) {
        this.checkpointFailure("entries.read", `entries from ${b * TILE_WIDTH}: ${message(e)}`);
        return;
      }
      for (let i = Math.max(this.read, b * TILE_WIDTH); i < b * TILE_WIDTH + raw.length; i++) {
        const r = await checkEntry(i, raw[i - b * TILE_WIDTH]!, ctx);
        if (this.stopped) return;
        const prev = r.fleet === null ? undefined : this.history.previous(r.fleet);
        if (r.fleet !== null) this.history.add(r.fleet);
        const isNew = i >= (this.initial?.size ?? 0);
        if (isNew) this.newEntries++;
        for (const f of r.failures) this.failures.push({ ...f, index: i });
        this.io.emit({
          type: "fleet",
          index: i,
          namespace: r.namespace,
          epoch: r.epoch,
          new: isNew,
          ok: r.failures.length === 0,
          fleet: r.fleet,
          release: r.release,
          diff: prev === undefined || r.fleet === null ? null : diffFleets(prev, r.fleet),
          passed: r.passed,
          skipped: r.skipped,
          failures: r.failures,
          reusedMembers: r.reusedMembers,
        });
        this.read = i + 1;
      }
    }
    this.caughtUp = true;
    const path = this.config.statePath;
    // Only a run in which every check so far held may move the saved checkpoint.
    if (path !== null && this.failures.length === 0) {
      saveState(path, this.anchor);
      this.stateSaved = path;
    }
  }

  summary(): SummaryEvent {
    return {
      type: "summary",
      ok: this.ok,
      origin: this.anchor?.origin ?? null,
      size: this.anchor?.size ?? 0,
      entries: this.read,
      newEntries: this.newEntries,
      vendorRootChecked: this.config.vendorRoots !== null,
      stateSaved: this.stateSaved,
      failures: this.failures,
    };
  }
}

/** Resolves after ms, or at once when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export interface RunOptions {
  readonly follow: boolean;
  readonly intervalMs: number;
}

/** Run the monitor once, or follow until io.signal aborts; emits the summary last. */
export async function runMonitor(config: MonitorConfig, io: MonitorIo, o: RunOptions): Promise<SummaryEvent> {
  const m = new Monitor(config, io);
  if (config.vendorRoots === null) {
    io.emit({
      type: "note",
      message: "no vendor root given: member attestations are NOT checked against a vendor root",
    });
  }
  const stopped = () => io.signal?.aborted === true;
  await m.poll();
  while (o.follow && !stopped()) {
    await sleep(o.intervalMs, io.signal);
    if (stopped()) break;
    await m.poll();
  }
  const s = m.summary();
  io.emit(s);
  return s;
}
