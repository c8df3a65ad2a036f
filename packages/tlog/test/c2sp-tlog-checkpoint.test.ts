/** c2sp.org/tlog-checkpoint: the specification's example and strict parsing. */
import { describe, expect, it } from "vitest";
import {
  ed25519NoteSigner,
  formatCheckpoint,
  generateSignerKey,
  isTlogError,
  noteVerifier,
  openCheckpoint,
  parseCheckpoint,
  signNote,
  TlogErrorCode,
} from "../src/index.js";

const EXAMPLE = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const ROOT = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

function code(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    if (isTlogError(e)) return e.code;
    throw e;
  }
}

describe("tlog-checkpoint", () => {
  it("parses and re-formats the specification's example", () => {
    const c = parseCheckpoint(EXAMPLE);
    expect(c.origin).toBe("example.com/behind-the-sofa");
    expect(c.size).toBe(20852163);
    expect(Buffer.from(c.root).toString("base64")).toBe(ROOT);
    expect(c.extensions).toEqual([]);
    expect(formatCheckpoint(c)).toBe(EXAMPLE);
  });

  it("keeps extension lines", () => {
    const text = `${EXAMPLE}ext one\next two\n`;
    const c = parseCheckpoint(text);
    expect(c.extensions).toEqual(["ext one", "ext two"]);
    expect(formatCheckpoint(c)).toBe(text);
  });

  it("accepts size 0", () => {
    expect(parseCheckpoint(`o\n0\n${ROOT}\n`).size).toBe(0);
  });

  it("rejects malformed texts", () => {
    const bad = [
      EXAMPLE.slice(0, -1),
      "example.com/x\n5\n",
      `\n5\n${ROOT}\n`,
      `o\n05\n${ROOT}\n`,
      `o\n+5\n${ROOT}\n`,
      `o\n-0\n${ROOT}\n`,
      `o\n 5\n${ROOT}\n`,
      `o\n5.0\n${ROOT}\n`,
      `o\n99999999999999999999\n${ROOT}\n`,
      `o\n5\n${ROOT.slice(0, -1)}\n`,
      `o\n5\n${ROOT.replace("=", "")}\n`,
      "o\n5\nAAAA\n",
      `o\n5\n${Buffer.alloc(33).toString("base64")}\n`,
      `o\n5\n${ROOT}\n\n`,
      `o\n5\n${ROOT}\next\n\n`,
      `o\n5\n${ROOT}\nex\tt\n`,
    ];
    for (const t of bad)
      expect(
        code(() => parseCheckpoint(t)),
        JSON.stringify(t),
      ).toBe(TlogErrorCode.BadCheckpoint);
  });

  it("openCheckpoint verifies the signature before reading the text, and checks the origin", async () => {
    const { skey, vkey } = generateSignerKey("example.com/log");
    const note = await signNote(`example.com/log\n3\n${ROOT}\n`, [ed25519NoteSigner(skey)]);
    expect(openCheckpoint(note, [noteVerifier(vkey)], "example.com/log").checkpoint.size).toBe(3);
    expect(code(() => openCheckpoint(note, [noteVerifier(vkey)], "example.com/other"))).toBe(
      TlogErrorCode.BadCheckpoint,
    );
    expect(code(() => openCheckpoint(note.replace("\n3\n", "\n4\n"), [noteVerifier(vkey)]))).toBe(
      TlogErrorCode.BadSignature,
    );
  });
});
