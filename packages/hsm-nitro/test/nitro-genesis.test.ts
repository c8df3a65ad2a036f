/**
 * A fleet of Nitro members forms in-process: three HSM cores on the Nitro platform (on the TEST
 * DOUBLE of the NSM, whose root the platforms are given in code as the enclave's would be), each
 * checking the others' NSM documents at genesis. And the attacks: a member whose document names
 * other keys (ATTESTATION_KEYS), a member of another image (MEASUREMENT), a member attested by a
 * test vendor root's Ed25519 signature instead of a document, a member whose document chains to
 * another root, and a platform without a document check (the in-memory one) meeting a Nitro member.
 */

import { nitroImageMeasurement } from "@bkv/client";
import { HsmCore, type HsmPlatform } from "@bkv/hsm-core";
import { openNitroPlatform, TestDoubleNitroPki, TestDoubleNsm, testDoublePcr } from "@bkv/hsm-nitro";
import { memoryPlatform, newMemoryHsm } from "@bkv/hsm-software";
import {
  decodeAttestation,
  decodeHsmToHost,
  decodeStatement,
  ErrorCode,
  encodeAttestation,
  encodeHostToHsm as encodeHostToHsmFrame,
  type HostToHsm,
  type HsmToHost,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";

const pki = new TestDoubleNitroPki();
const image = (name: string) => new Map([0, 1, 2, 3].map((i) => [i, testDoublePcr(name, i)]));
const V1 = image("bkv image v1");
const IMAGE = nitroImageMeasurement(V1.get(0)!, V1.get(1)!, V1.get(2)!);
const LOG_KEY = ed25519.getPublicKey(new Uint8Array(32).fill(0x42));
const RELEASE_KEY = ed25519.getPublicKey(new Uint8Array(32).fill(0x52));

class Node {
  frames: HsmToHost[] = [];
  core!: HsmCore;
  static async start(platform: HsmPlatform): Promise<Node> {
    const n = new Node();
    n.core = await HsmCore.create(platform, (b) => n.frames.push(decodeHsmToHost(b)));
    await n.send({ type: "boot", snapshot: null, entries: [] });
    return n;
  }
  async send(m: HostToHsm): Promise<HsmToHost> {
    const before = this.frames.length;
    await this.core.receive(encodeHostToHsmFrame(m));
    return this.frames.slice(before).at(-1)!;
  }
  get booted() {
    const b = this.frames.find((f) => f.type === "booted");
    if (b?.type !== "booted") throw new Error("not booted");
    return b;
  }
}

const nitroNode = async (pcrs = V1, p = pki) =>
  Node.start(
    await openNitroPlatform({
      nsm: new TestDoubleNsm({ pki: p, pcrs }),
      nitroRoots: [pki.rootFingerprint],
    }),
  );

function createFrame(nodes: Node[], members = nodes.map((n) => n.booted.identity)): HostToHsm {
  return {
    type: "genesis-create",
    members,
    challenges: nodes.map((n) => n.booted.challenge),
    guessLimit: 10,
    namespace: "bkv-nitro-test",
    epoch: 1,
    logKey: LOG_KEY,
    releaseKey: RELEASE_KEY,
    maxSuccessorGuessLimit: 10,
    witnessPolicy: {
      witnesses: [{ name: "bkv-test/witness", key: ed25519.getPublicKey(new Uint8Array(32).fill(0x57)) }],
      threshold: 1,
    },
  };
}

function refusal(f: HsmToHost): string {
  if (f.type !== "failed") throw new Error(`not refused: ${f.type}`);
  return `${f.code}: ${f.message}`;
}

describe("a fleet of Nitro members", () => {
  it("forms: the creator and the joiners check each other's NSM documents, and the statement freezes the image measurement", async () => {
    const nodes = [await nitroNode(), await nitroNode(), await nitroNode()];
    const created = await nodes[0]!.send(createFrame(nodes));
    if (created.type !== "genesis-packages") throw new Error(refusal(created));
    const st = decodeStatement(created.statement);
    expect(st.measurement).toEqual(IMAGE);
    expect(st.members.map((m) => m.platform)).toEqual(["aws-nitro", "aws-nitro", "aws-nitro"]);
    const sigs: Uint8Array[] = [];
    for (const [i, n] of nodes.entries()) {
      const f = await n.send({
        type: "genesis-join",
        package: created.packages[i]!,
        statement: created.statement,
      });
      if (f.type !== "genesis-signature") throw new Error(refusal(f));
      sigs.push(f.signature);
    }
    for (const n of nodes)
      expect((await n.send({ type: "genesis-finish", signatures: sigs })).type).toBe("persist");
  });

  it("refuses a member whose document names other keys, by name", async () => {
    const nodes = [await nitroNode(), await nitroNode(), await nitroNode()];
    const a = decodeAttestation(nodes[2]!.booted.identity);
    const other = decodeAttestation((await nitroNode()).booted.identity);
    const swapped = encodeAttestation({ ...a, nitroDocument: other.nitroDocument! });
    const f = await nodes[0]!.send(
      createFrame(nodes, [nodes[0]!.booted.identity, nodes[1]!.booted.identity, swapped]),
    );
    expect(refusal(f)).toMatch(
      new RegExp(
        `^${ErrorCode.AttestationKeys}: genesis refused: member 3: .*does not name this member's keys`,
      ),
    );
  });

  it("refuses a member of another image, and one whose document chains to another root", async () => {
    const nodes = [await nitroNode(), await nitroNode(), await nitroNode(image("bkv image v2"))];
    expect(refusal(await nodes[0]!.send(createFrame(nodes)))).toMatch(
      /^MEASUREMENT: genesis refused: member 3 runs other code/,
    );
    const rogue = [await nitroNode(), await nitroNode(), await nitroNode(V1, new TestDoubleNitroPki())];
    expect(refusal(await rogue[0]!.send(createFrame(rogue)))).toMatch(
      /^ATTESTATION: genesis refused: member 3: the chain starts at .*not a pinned root/,
    );
  });

  it("a Nitro HSM trusts no Ed25519 vendor root: a member attested by the test vendor root is refused", async () => {
    const nodes = [
      await nitroNode(),
      await nitroNode(),
      await Node.start(memoryPlatform(newMemoryHsm(), { measurement: IMAGE })),
    ];
    expect(refusal(await nodes[0]!.send(createFrame(nodes)))).toMatch(
      /^ATTESTATION: genesis refused: member 3: attestation is not signed by a trusted vendor root/,
    );
  });

  it("a platform with no document check (the in-memory one) refuses a Nitro member", async () => {
    const nodes = [
      await Node.start(memoryPlatform(newMemoryHsm(), { measurement: IMAGE })),
      await nitroNode(),
      await nitroNode(),
    ];
    expect(refusal(await nodes[0]!.send(createFrame(nodes)))).toMatch(
      /^ATTESTATION: genesis refused: member 2: attested by a aws-nitro document, which this HSM's platform cannot check/,
    );
  });
});
