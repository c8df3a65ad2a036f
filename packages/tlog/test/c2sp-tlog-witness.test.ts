/** c2sp.org/tlog-witness add-checkpoint: the specification's example body, answers, and the witness's checks. */
import { describe, expect, it } from "vitest";
import {
  checkAddCheckpoint,
  cosignatureSigner,
  ed25519NoteSigner,
  emptyRoot,
  formatAddCheckpointRequest,
  formatCheckpoint,
  generateSignerKey,
  isTlogError,
  leafHash,
  MerkleTree,
  noteVerifier,
  openNote,
  parseAddCheckpointRequest,
  parseAddCheckpointResponse,
  parseNote,
  SIG_COSIGNATURE_V1,
  signNote,
  TLOG_SIZE_CONTENT_TYPE,
  TlogErrorCode,
  type WitnessRecord,
} from "../src/index.js";

const EXAMPLE_BODY =
  "old 20852014\n" +
  "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" +
  "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n" +
  "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n" +
  "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n" +
  "\n" +
  "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" +
  "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n" +
  "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";

const EXAMPLE_RESPONSE =
  "— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n" +
  "— witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n" +
  "— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n";

function caught(f: () => unknown): { code: string; size?: number | undefined; status?: number | undefined } {
  try {
    f();
    return { code: "ok" };
  } catch (e) {
    if (isTlogError(e)) return { code: e.code, size: e.size, status: e.status };
    throw e;
  }
}

describe("add-checkpoint messages", () => {
  it("parses the specification's example request and formats it back byte for byte", () => {
    const r = parseAddCheckpointRequest(EXAMPLE_BODY);
    expect(r.oldSize).toBe(20852014);
    expect(r.proof).toHaveLength(4);
    expect(parseNote(r.checkpoint).signatures).toHaveLength(2);
    expect(formatAddCheckpointRequest(r)).toBe(EXAMPLE_BODY);
  });

  it("rejects malformed requests", () => {
    const cp = EXAMPLE_BODY.slice(EXAMPLE_BODY.indexOf("\n\n") + 2);
    const bad = [
      `old 012\n\n${cp}`,
      `old -1\n\n${cp}`,
      `Old 12\n\n${cp}`,
      `old  12\n\n${cp}`,
      `old 12\n${cp}`,
      `old 12\nAAAA\n\n${cp}`,
      `old 12\n${"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64)}\n${cp}`,
    ];
    for (const b of bad)
      expect(caught(() => parseAddCheckpointRequest(b)).code, b).toBe(TlogErrorCode.BadWitnessMessage);
  });

  it("reads the specification's example response and the 409 size answer", () => {
    const sigs = parseAddCheckpointResponse(200, "text/plain", EXAMPLE_RESPONSE);
    expect(sigs.map((s) => s.name)).toEqual([
      "witness.example/w1",
      "witness.example/w1",
      "witness.example/w2",
    ]);
    expect(caught(() => parseAddCheckpointResponse(409, TLOG_SIZE_CONTENT_TYPE, "20852163\n"))).toEqual({
      code: TlogErrorCode.WitnessConflict,
      size: 20852163,
      status: undefined,
    });
    expect(caught(() => parseAddCheckpointResponse(409, "text/plain", "5\n")).code).toBe(
      TlogErrorCode.BadWitnessMessage,
    );
    expect(caught(() => parseAddCheckpointResponse(409, TLOG_SIZE_CONTENT_TYPE, "05\n")).code).toBe(
      TlogErrorCode.BadWitnessMessage,
    );
    for (const status of [400, 403, 404, 422, 500]) {
      expect(caught(() => parseAddCheckpointResponse(status, "text/plain", "no")).status).toBe(status);
    }
    expect(caught(() => parseAddCheckpointResponse(200, "text/plain", "")).code).toBe(
      TlogErrorCode.BadWitnessMessage,
    );
  });
});

describe("the witness's checks", () => {
  const origin = "example.com/log";
  const logKey = generateSignerKey(origin);
  const otherKey = generateSignerKey(origin);
  const tree = MerkleTree.fromLeafHashes(Array.from({ length: 20 }, (_, i) => leafHash(new Uint8Array([i]))));
  const fork = MerkleTree.fromLeafHashes(
    Array.from({ length: 20 }, (_, i) => leafHash(new Uint8Array([i === 15 ? 99 : i]))),
  );

  async function checkpointNote(t: MerkleTree, size: number, key = logKey.skey): Promise<string> {
    return signNote(
      formatCheckpoint({ origin, size, root: size === 0 ? emptyRoot() : t.root(size), extensions: [] }),
      [ed25519NoteSigner(key)],
    );
  }

  function check(body: string, record?: WitnessRecord) {
    return checkAddCheckpoint(
      body,
      (o) => (o === origin ? [noteVerifier(logKey.vkey)] : undefined),
      () => record,
    );
  }

  it("accepts a first checkpoint from old size 0 and a consistent next one", async () => {
    expect(check(`old 0\n\n${await checkpointNote(tree, 10)}`).status).toBe(200);
    const body = formatAddCheckpointRequest({
      oldSize: 10,
      proof: tree.consistencyProof(10, 20),
      checkpoint: await checkpointNote(tree, 20),
    });
    expect(check(body, { size: 10, root: tree.root(10) }).status).toBe(200);
    expect(
      check(`old 20\n\n${await checkpointNote(tree, 20)}`, { size: 20, root: tree.root(20) }).status,
    ).toBe(200);
  });

  it("answers 404, 403, 400 and 409 as the specification says", async () => {
    const foreign = generateSignerKey("example.com/other");
    const foreignNote = await signNote(
      formatCheckpoint({ origin: "example.com/other", size: 1, root: tree.root(1), extensions: [] }),
      [ed25519NoteSigner(foreign.skey)],
    );
    expect(check(`old 0\n\n${foreignNote}`).status).toBe(404);
    expect(check(`old 0\n\n${await checkpointNote(tree, 10, otherKey.skey)}`).status).toBe(403);
    const tampered = (await checkpointNote(tree, 10)).replace("\n10\n", "\n11\n");
    expect(check(`old 0\n\n${tampered}`).status).toBe(403);
    expect(check(`old 11\n\n${await checkpointNote(tree, 10)}`).status).toBe(400);
    expect(check("garbage").status).toBe(400);
    const conflict = check(`old 0\n\n${await checkpointNote(tree, 20)}`, { size: 10, root: tree.root(10) });
    expect(conflict).toMatchObject({ status: 409, size: 10 });
  });

  it("answers 422 to a split view, a bad proof, a proof from 0, or a size-0 checkpoint without the empty root", async () => {
    // Same size, different root: split view.
    expect(
      check(`old 20\n\n${await checkpointNote(fork, 20)}`, { size: 20, root: tree.root(20) }).status,
    ).toBe(422);
    // A fork that tries to extend from the witness's view with its own proof.
    const forkBody = formatAddCheckpointRequest({
      oldSize: 10,
      proof: fork.consistencyProof(10, 20),
      checkpoint: await checkpointNote(fork, 20),
    });
    expect(check(forkBody, { size: 10, root: tree.root(10) }).status).toBe(200);
    expect(check(forkBody, { size: 10, root: fork.root(10) }).status).toBe(200);
    const forkFrom16 = formatAddCheckpointRequest({
      oldSize: 16,
      proof: fork.consistencyProof(16, 20),
      checkpoint: await checkpointNote(fork, 20),
    });
    expect(check(forkFrom16, { size: 16, root: tree.root(16) }).status).toBe(422);
    const noProof = `old 10\n\n${await checkpointNote(tree, 20)}`;
    expect(check(noProof, { size: 10, root: tree.root(10) }).status).toBe(422);
    const fromZeroWithProof = formatAddCheckpointRequest({
      oldSize: 0,
      proof: [tree.root(1)],
      checkpoint: await checkpointNote(tree, 20),
    });
    expect(check(fromZeroWithProof).status).toBe(422);
    const zeroBad = await signNote(
      formatCheckpoint({ origin, size: 0, root: tree.root(1), extensions: [] }),
      [ed25519NoteSigner(logKey.skey)],
    );
    expect(check(`old 0\n\n${zeroBad}`).status).toBe(422);
    expect(check(`old 0\n\n${await checkpointNote(tree, 0)}`).status).toBe(200);
  });

  it("a cosignature returned as signature lines verifies when appended to the checkpoint", async () => {
    const w = generateSignerKey("witness.example/w1", SIG_COSIGNATURE_V1);
    const note = await checkpointNote(tree, 20);
    const d = check(`old 0\n\n${note}`);
    if (d.status !== 200) throw new Error("expected 200");
    const cosigned = await signNote(d.note.text, [cosignatureSigner(w.skey, () => 1_700_000_000)]);
    const lines = cosigned.slice(cosigned.indexOf("\n\n") + 2);
    const sigs = parseAddCheckpointResponse(200, "text/plain", lines);
    const merged = await signNote(d.note.text, [], [...parseNote(note).signatures, ...sigs]);
    const opened = openNote(merged, [noteVerifier(logKey.vkey), noteVerifier(w.vkey)]);
    expect(opened.verified).toHaveLength(2);
  });
});
