/**
 * c2sp.org/signed-note and c2sp.org/tlog-cosignature: the specification's worked examples and the
 * keys, notes and signatures of the Go reference implementation (golang.org/x/mod/sumdb/note),
 * byte for byte, and the rejections they require.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  cosignatureMessage,
  cosignatureSigner,
  ed25519NoteSigner,
  formatSignerKey,
  formatVerifierKey,
  generateSignerKey,
  isTlogError,
  keyId,
  noteVerifier,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  signNote,
  TlogErrorCode,
  verifierKeyOf,
} from "../src/index.js";

// c2sp.org/signed-note, "Example".
const SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE =
  "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

// golang.org/x/mod/sumdb/note tests and documentation.
const PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG =
  "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG =
  "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// c2sp.org/tlog-cosignature, the example checkpoint with a log signature and a cosignature.
const COSIGNED_EXAMPLE =
  "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" +
  "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n" +
  "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

function code(f: () => unknown): string {
  try {
    f();
    return "ok";
  } catch (e) {
    if (isTlogError(e)) return e.code;
    throw e;
  }
}

describe("signed-note: the specification's example", () => {
  it("the verifier key verifies the example note", () => {
    const v = noteVerifier(SPEC_VKEY);
    expect(v.name).toBe("example.com/foo");
    expect(v.keyId).toBe(0x530d903a);
    const n = openNote(SPEC_NOTE, [v]);
    expect(n.text).toBe("This is an example message.\n");
    expect(n.verified.map((s) => s.name)).toEqual(["example.com/foo"]);
  });

  it("the verifier key re-encodes to itself", () => {
    expect(formatVerifierKey(parseVerifierKey(SPEC_VKEY))).toBe(SPEC_VKEY);
  });

  it("a changed text is rejected", () => {
    expect(code(() => openNote(SPEC_NOTE.replace("example", "exemple"), [noteVerifier(SPEC_VKEY)]))).toBe(
      TlogErrorCode.BadSignature,
    );
  });

  it("the opening example parses: the text keeps its inner blank line", () => {
    const note =
      "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n" +
      "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
    const n = parseNote(note);
    expect(n.text).toBe(
      "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n",
    );
    expect(n.signatures).toHaveLength(1);
    expect(n.signatures[0]!.signature).toHaveLength(64);
    // Nobody knows this key: the note is not trusted.
    expect(code(() => openNote(note, [noteVerifier(SPEC_VKEY)]))).toBe(TlogErrorCode.Unverified);
  });
});

describe("signed-note: Go reference vectors", () => {
  it("key ID = SHA-256(name || 0x0A || type || key)[:4]", () => {
    const k = parseVerifierKey(PETER_VKEY);
    expect(k.keyId).toBe(0xc74f20a3);
    expect(keyId(k.name, SIG_ED25519, k.publicKey)).toBe(0xc74f20a3);
    expect(parseVerifierKey(ENOCH_VKEY).keyId).toBe(0xaf0cfe78);
  });

  it("the signer key gives the verifier key and signs the reference note byte for byte", async () => {
    const sk = parseSignerKey(PETER_SKEY);
    expect(formatSignerKey(sk)).toBe(PETER_SKEY);
    expect(formatVerifierKey(verifierKeyOf(sk))).toBe(PETER_VKEY);
    const note = await signNote(TEXT, [ed25519NoteSigner(PETER_SKEY)]);
    expect(note).toBe(`${TEXT}\n${PETER_SIG}`);
    // A stale signature by the same key is replaced.
    const stale = parseNote(`${TEXT}\n— PeterNeumann x08gowAAAAA=\n`).signatures;
    expect(await signNote(TEXT, [ed25519NoteSigner(PETER_SKEY)], stale)).toBe(`${TEXT}\n${PETER_SIG}`);
  });

  it("verifies one signature and ignores the unknown one", () => {
    const peter = noteVerifier(PETER_VKEY);
    const n = openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [peter]);
    expect(n.text).toBe(TEXT);
    expect(n.verified.map((s) => s.name)).toEqual(["PeterNeumann"]);
    expect(n.unverified.map((s) => [s.name, s.keyId])).toEqual([["EnochRoot", 0xaf0cfe78]]);
  });

  it("verifies both when both keys are known", () => {
    const n = openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [
      noteVerifier(PETER_VKEY),
      noteVerifier(ENOCH_VKEY),
    ]);
    expect(n.verified.map((s) => s.name)).toEqual(["PeterNeumann", "EnochRoot"]);
    expect(n.unverified).toHaveLength(0);
  });

  it("rejects a note no known key signed", () => {
    expect(code(() => openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, []))).toBe(TlogErrorCode.Unverified);
  });

  it("rejects an ambiguous key only when it is used", () => {
    const enoch = noteVerifier(ENOCH_VKEY);
    const peter = noteVerifier(PETER_VKEY);
    expect(code(() => openNote(`${TEXT}\n${ENOCH_SIG}`, [enoch, peter, noteVerifier(ENOCH_VKEY)]))).toBe(
      TlogErrorCode.AmbiguousKey,
    );
    expect(code(() => openNote(`${TEXT}\n${PETER_SIG}`, [enoch, peter, noteVerifier(ENOCH_VKEY)]))).toBe(
      "ok",
    );
  });

  it("rejects more than 100 signatures", () => {
    expect(code(() => openNote(`${TEXT}\n${PETER_SIG.repeat(101)}`, [noteVerifier(PETER_VKEY)]))).toBe(
      TlogErrorCode.BadNote,
    );
  });

  it("rejects the whole note when a known key's signature fails", () => {
    const bad = `${TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    expect(code(() => openNote(bad, [noteVerifier(PETER_VKEY)]))).toBe(TlogErrorCode.BadSignature);
  });

  it("drops duplicates: one verified signature per key, identical unknown lines once", () => {
    const enochBad = `${ENOCH_SIG.slice(0, 60)}ABCD${ENOCH_SIG.slice(60)}`;
    const n = openNote(`${TEXT}\n${PETER_SIG}${PETER_SIG}${ENOCH_SIG}${ENOCH_SIG}${enochBad}`, [
      noteVerifier(PETER_VKEY),
    ]);
    expect(n.verified).toHaveLength(1);
    expect(n.unverified).toHaveLength(2);
  });

  it("rejects malformed notes", () => {
    const bad = [
      TEXT,
      `${TEXT}\n`,
      `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\x01${TEXT}\n${PETER_SIG}`,
      `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
      `${TEXT}\n- PeterNeumann ${PETER_SIG.slice(15)}`,
      `${TEXT}\n— PeterNeumann AAAA\n`,
      `${TEXT}\n${PETER_SIG.replace("=\n", "\n")}`,
      `${TEXT.replace("\n", "\r\n")}\n${PETER_SIG}`,
      `${TEXT}\n— Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
    ];
    for (const msg of bad) {
      expect(
        code(() => openNote(msg, [noteVerifier(PETER_VKEY)])),
        JSON.stringify(msg),
      ).toBe(TlogErrorCode.BadNote);
    }
    const bytes = new TextEncoder().encode(`${TEXT}\n${PETER_SIG}`);
    const invalidUtf8 = new Uint8Array([0xff, ...bytes]);
    expect(code(() => openNote(invalidUtf8, [noteVerifier(PETER_VKEY)]))).toBe(TlogErrorCode.BadNote);
    expect(code(() => openNote(bytes, [noteVerifier(PETER_VKEY)]))).toBe("ok");
  });

  it("rejects every substring and every one-byte change of the verifier key", () => {
    const b = Buffer.from(PETER_VKEY);
    for (let i = 0; i <= b.length; i++) {
      for (let j = i + 1; j <= b.length; j++) {
        if (i === 0 && j === b.length) continue;
        const k = b.subarray(i, j).toString();
        expect(
          code(() => parseVerifierKey(k)),
          k,
        ).toBe(TlogErrorCode.BadKey);
      }
    }
    for (let i = 0; i < b.length; i++) {
      const m = Buffer.from(b);
      m[i]! += 1;
      expect(
        code(() => parseVerifierKey(m.toString())),
        m.toString(),
      ).toBe(TlogErrorCode.BadKey);
    }
    // Wrong key length and unknown algorithm, each with an adjusted key ID.
    expect(
      code(() =>
        parseVerifierKey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
      ),
    ).toBe(TlogErrorCode.BadKey);
    expect(
      code(() => parseVerifierKey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")),
    ).toBe(TlogErrorCode.BadKey);
  });

  it("rejects every substring and every one-byte change of the signer key", () => {
    const b = Buffer.from(PETER_SKEY);
    for (let i = 0; i <= b.length; i++) {
      for (let j = i + 1; j <= b.length; j++) {
        if (i === 0 && j === b.length) continue;
        const k = b.subarray(i, j).toString();
        expect(
          code(() => parseSignerKey(k)),
          k,
        ).toBe(TlogErrorCode.BadKey);
      }
    }
    for (let i = 0; i < b.length; i++) {
      const m = Buffer.from(b);
      m[i]! += 1;
      expect(
        code(() => parseSignerKey(m.toString())),
        m.toString(),
      ).toBe(TlogErrorCode.BadKey);
    }
  });
});

describe("tlog-cosignature: cosignature/v1", () => {
  it("the example's cosignature is key ID || timestamp 1679315147 || 64-byte signature", () => {
    const n = parseNote(COSIGNED_EXAMPLE);
    expect(n.text).toBe(
      "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    );
    const w = n.signatures[1]!;
    expect(w.name).toBe("witness.example.com/w1");
    expect(w.keyId).toBe(0x8d66cf3f);
    expect(w.signature).toHaveLength(72);
    expect(Buffer.from(w.signature.subarray(0, 8)).readBigUInt64BE()).toBe(1679315147n);
  });

  it("the signed message is the spec's, byte for byte", () => {
    const body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    expect(new TextDecoder().decode(cosignatureMessage(1679315147, body))).toBe(
      "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    );
  });

  it("cosigns and verifies; the key ID uses type 0x04; a changed timestamp fails", async () => {
    const { skey, vkey } = generateSignerKey("witness.example/w1", SIG_COSIGNATURE_V1);
    const k = parseVerifierKey(vkey);
    expect(k.type).toBe(SIG_COSIGNATURE_V1);
    expect(k.keyId).toBe(keyId("witness.example/w1", 0x04, k.publicKey));
    expect(k.keyId).not.toBe(keyId("witness.example/w1", 0x01, k.publicKey));
    const log = generateSignerKey("example.com/log");
    const body = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    const signed = await signNote(body, [
      ed25519NoteSigner(log.skey),
      cosignatureSigner(skey, () => 1700000000),
    ]);
    const opened = openNote(signed, [noteVerifier(log.vkey), noteVerifier(vkey)]);
    expect(opened.verified.map((s) => [s.name, s.timestamp])).toEqual([
      ["example.com/log", undefined],
      ["witness.example/w1", 1700000000],
    ]);
    const sig = parseNote(signed).signatures[1]!;
    const moved = sig.signature.slice();
    moved[7]! ^= 1;
    expect(noteVerifier(vkey).verify(new TextEncoder().encode(body), moved)).toBe(false);
    expect(noteVerifier(vkey).verify(new TextEncoder().encode(body), sig.signature)).toBe(true);
    // An Ed25519 key with the same bytes is a different key: it does not accept cosignatures.
    const plain = noteVerifier(
      formatVerifierKey({ name: k.name, type: SIG_ED25519, publicKey: k.publicKey }),
    );
    expect(plain.keyId).not.toBe(k.keyId);
    expect(code(() => openNote(signed.replace(/— example.com\/log .*\n/, ""), [plain]))).toBe(
      TlogErrorCode.Unverified,
    );
  });

  it("signer keys of the wrong type are refused", () => {
    const { skey } = generateSignerKey("w", SIG_COSIGNATURE_V1);
    expect(code(() => ed25519NoteSigner(skey))).toBe(TlogErrorCode.BadKey);
    expect(code(() => cosignatureSigner(PETER_SKEY, () => 0))).toBe(TlogErrorCode.BadKey);
  });
});

describe("browser safety", () => {
  it("no source file imports a Node module", () => {
    const dir = fileURLToPath(new URL("../src/", import.meta.url));
    for (const f of readdirSync(dir)) {
      const src = readFileSync(dir + f, "utf8");
      expect(src, f).not.toMatch(/from "node:|require\(|from "(fs|path|crypto|buffer)"/);
      expect(src, f).not.toMatch(/\bBuffer\b|\bprocess\./);
    }
  });
});
