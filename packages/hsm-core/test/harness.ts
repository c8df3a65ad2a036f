/**
 * A test host for one HSM core in-process: node 1 of a fleet of one (packages/sim), with the host's
 * misbehaviour at hand: restore old storage, tamper, stall persistence, move the clock, restart.
 */
import type { VaultTransport } from "@bkv/client";
import type { CoreOptions } from "@bkv/hsm-core";
import { type Booted, type ReplyFrame, SimFleet, type SimNode, type Stored } from "@bkv/sim";
import type { HostToHsm, HsmToHost } from "@bkv/wire";

export class TestHost {
  private constructor(readonly fleet: SimFleet) {}

  static async create(guessLimit = 10, options: CoreOptions = {}): Promise<TestHost> {
    return new TestHost(await SimFleet.create({ nodes: 1, guessLimit, core: options }));
  }

  get node(): SimNode {
    return this.fleet.node(1);
  }

  get stored(): Stored {
    return this.node.stored;
  }

  set stored(s: Stored) {
    this.node.stored = s;
  }

  get hsm() {
    return this.node.hsm;
  }

  set ackPersist(v: boolean) {
    this.node.ackPersist = v;
  }

  get core() {
    return this.node.core!;
  }

  get booted(): HsmToHost | null {
    return this.node.booted;
  }

  /** Restart the HSM from host storage and NVRAM; waits for it to lead again unless it cannot. */
  async boot(): Promise<HsmToHost> {
    this.fleet.crash(1);
    const b = await this.fleet.start(1);
    if (b.type === "booted" && !b.recovering) await this.fleet.waitForLeader();
    return b;
  }

  send(m: HostToHsm): Promise<void> {
    return this.fleet.deliverFrame(this.node, m);
  }

  request(envelope: Uint8Array): Promise<ReplyFrame> {
    return this.fleet.request(1, envelope).then((r) => {
      if (r === null) throw new Error("HSM crashed");
      return r;
    });
  }

  transport(): VaultTransport {
    return this.fleet.transport(1);
  }

  vaultPublicKey(): Uint8Array {
    return this.fleet.vaultPublicKey();
  }

  copyStorage(): Stored {
    return this.node.copyStorage();
  }

  /** Virtual time the clients should use. */
  now(): number {
    return this.fleet.time + this.node.clockSkew;
  }
}

export type { Booted };

/** Light key stretching for tests: Argon2id at its minimum, so tests spend time on the protocol. */
export const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
