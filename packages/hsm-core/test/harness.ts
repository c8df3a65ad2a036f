/**
 * A test host for the HSM core in-process: it stores what the core persists (as the real host does
 * in SQLite), relays client envelopes, and can misbehave on purpose: restore old storage, tamper,
 * lie about persistence, restart the HSM. The core under test is the real one with a memory platform.
 */

import type { VaultTransport } from "@bkv/client";
import { type CoreOptions, HsmCore } from "@bkv/hsm-core";
import { type MemoryHsm, memoryPlatform, newMemoryHsm } from "@bkv/hsm-software";
import {
  BkvError,
  decodeHsmToHost,
  ErrorCode,
  encodeHostToHsm,
  type HostToHsm,
  type HsmToHost,
  type SealedEntry,
} from "@bkv/wire";

export interface Stored {
  snapshot: SealedEntry | null;
  entries: SealedEntry[];
}

export class TestHost {
  hsm: MemoryHsm = newMemoryHsm();
  stored: Stored = { snapshot: null, entries: [] };
  core!: HsmCore;
  booted: HsmToHost | null = null;
  /** When false, persist frames are stored but never acknowledged (a host that stalls). */
  ackPersist = true;
  /** Frames the core emitted, for inspection. */
  frames: HsmToHost[] = [];
  clock: () => number = () => Date.now();
  private nextTag = 1;
  private pending = new Map<number, (m: HsmToHost) => void>();

  constructor(
    private readonly guessLimit = 10,
    private readonly options: CoreOptions = {},
  ) {}

  /** Start (or restart) the HSM from the current storage and NVRAM. */
  async boot(): Promise<HsmToHost> {
    this.booted = null;
    this.pending.clear();
    this.core = await HsmCore.create(
      memoryPlatform(this.hsm, () => this.clock()),
      (b) => this.onFrame(b),
      this.options,
    );
    const done = new Promise<HsmToHost>((resolve) => {
      this.onBoot = resolve;
    });
    await this.send({
      type: "boot",
      snapshot: this.stored.snapshot,
      entries: this.stored.entries,
      guessLimit: this.guessLimit,
    });
    return done;
  }

  private onBoot: ((m: HsmToHost) => void) | null = null;

  send(m: HostToHsm): Promise<void> {
    return this.core.receive(encodeHostToHsm(m));
  }

  private onFrame(bytes: Uint8Array): void {
    const m = decodeHsmToHost(bytes);
    this.frames.push(m);
    switch (m.type) {
      case "booted":
      case "failed":
        this.booted = m;
        this.onBoot?.(m);
        return;
      case "persist": {
        this.stored.entries.push(...m.entries);
        if (m.snapshot !== null) {
          this.stored.snapshot = m.snapshot;
          this.stored.entries = this.stored.entries.filter((e) => e.index > m.snapshot!.index);
        }
        const last = m.entries.at(-1)?.index ?? 0;
        if (this.ackPersist) queueMicrotask(() => void this.send({ type: "persisted", index: last }));
        return;
      }
      case "reply": {
        const p = this.pending.get(m.tag);
        this.pending.delete(m.tag);
        p?.(m);
        return;
      }
      case "status":
        return;
    }
  }

  /** Send an envelope; resolves with the core's reply frame. */
  request(envelope: Uint8Array): Promise<HsmToHost & { type: "reply" }> {
    const tag = this.nextTag++;
    return new Promise((resolve) => {
      this.pending.set(tag, (m) => resolve(m as HsmToHost & { type: "reply" }));
      void this.send({ type: "client", tag, envelope });
    });
  }

  /** A VaultTransport for the SDK's VaultClient, straight into this host. */
  transport(): VaultTransport {
    return {
      send: async (envelope) => {
        const r = await this.request(envelope);
        if (r.ok) return r.envelope;
        throw new BkvError(
          r.code === ErrorCode.Unavailable ? ErrorCode.Unavailable : ErrorCode.Invalid,
          r.message,
        );
      },
    };
  }

  vaultPublicKey(): Uint8Array {
    if (this.booted?.type !== "booted") throw new Error("not booted");
    return this.booted.vaultPublicKey;
  }

  /** A deep copy of host storage, as an operator's backup would be. */
  copyStorage(): Stored {
    return {
      snapshot:
        this.stored.snapshot === null
          ? null
          : { ...this.stored.snapshot, sealed: this.stored.snapshot.sealed.slice() },
      entries: this.stored.entries.map((e) => ({ index: e.index, sealed: e.sealed.slice() })),
    };
  }
}

/** Light key stretching for tests: Argon2id at its minimum, so tests spend time on the protocol. */
export const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
