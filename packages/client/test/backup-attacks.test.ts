import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { BkvError, ErrorCode } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BackupHeaderOffset,
  type ChunkCipherFactory,
  createBackupDecryptor,
  decryptBytes,
  encryptBytes,
  generateBackupKey,
  MAX_CHUNK_SIZE,
  webCryptoCipher,
} from "../src/backup/index.js";
import { decryptFile, nodeChunkCipher } from "../src/node/index.js";
import { join, pattern, splitBackup } from "./backup-helpers.js";

const CS = 1024;
const key = generateBackupKey();
const plaintext = pattern(3 * CS + 500); // chunks 0, 1, 2 full; chunk 3 final with 500 bytes
let backup: Uint8Array;
let other: Uint8Array; // another backup of the same data with the same key
let dir: string;

interface Case {
  name: string;
  make: () => Uint8Array;
  code: ErrorCode;
  message: RegExp;
  key?: () => Uint8Array;
}

const edit = (b: Uint8Array, at: number, f: (x: number) => number): Uint8Array => {
  const c = b.slice();
  c[at] = f(c[at]!);
  return c;
};
const setU32 = (b: Uint8Array, at: number, v: number): Uint8Array => {
  const c = b.slice();
  new DataView(c.buffer).setUint32(at, v);
  return c;
};
const parts = () => splitBackup(backup, CS);

const cases: Case[] = [
  {
    name: "truncation at a chunk boundary",
    make: () => join(parts().header, parts().records.slice(0, 2)),
    code: ErrorCode.Truncated,
    message: /ends after chunk 1 .*without its final chunk.*cut short/,
  },
  {
    name: "truncation in the middle of a chunk",
    make: () => backup.slice(0, 49 + (1 + CS + 16) + 300),
    code: ErrorCode.Truncated,
    message: /ends in the middle of chunk 1/,
  },
  {
    name: "truncation in the middle of the final chunk",
    make: () => backup.slice(0, backup.length - 1),
    code: ErrorCode.Truncated,
    message: /ends in the middle of chunk 3/,
  },
  {
    name: "truncation inside the final chunk's length",
    make: () => join(parts().header, [...parts().records.slice(0, 3), parts().records[3]!.slice(0, 3)]),
    code: ErrorCode.Truncated,
    message: /middle of chunk 3/,
  },
  {
    name: "every chunk dropped: the header alone",
    make: () => join(parts().header, []),
    code: ErrorCode.Truncated,
    message: /^the backup ends right after its header \(byte \d+\), before its first chunk: it was cut short/,
  },
  {
    name: "dropping the final chunk",
    make: () => join(parts().header, parts().records.slice(0, 3)),
    code: ErrorCode.Truncated,
    message: /without its final chunk/,
  },
  {
    name: "truncation inside the header",
    make: () => backup.slice(0, 20),
    code: ErrorCode.Truncated,
    message: /inside its header/,
  },
  { name: "an empty file", make: () => new Uint8Array(0), code: ErrorCode.Truncated, message: /empty/ },
  {
    name: "reordering two chunks",
    make: () => {
      const { header, records } = parts();
      return join(header, [records[0]!, records[2]!, records[1]!, records[3]!]);
    },
    code: ErrorCode.Authentication,
    message: /chunk 1 .*failed authentication.*altered.*reordered.*spliced/,
  },
  {
    name: "splicing in a chunk from another backup with the same key",
    make: () => {
      const { header, records } = parts();
      const theirs = splitBackup(other, CS).records;
      return join(header, [records[0]!, records[1]!, theirs[2]!, records[3]!]);
    },
    code: ErrorCode.Authentication,
    message: /chunk 2 .*failed authentication/,
  },
  {
    name: "splicing in the final chunk from another backup",
    make: () => {
      const { header, records } = parts();
      return join(header, [...records.slice(0, 3), splitBackup(other, CS).records[3]!]);
    },
    code: ErrorCode.Authentication,
    message: /chunk 3 .*failed authentication/,
  },
  {
    name: "a flipped ciphertext bit",
    make: () => edit(backup, 49 + 2 * (1 + CS + 16) + 1 + 100, (x) => x ^ 1),
    code: ErrorCode.Authentication,
    message: /chunk 2 \(at byte 2131\) failed authentication/,
  },
  {
    name: "a flipped tag bit",
    make: () => edit(backup, backup.length - 1, (x) => x ^ 0x80),
    code: ErrorCode.Authentication,
    message: /chunk 3 .*failed authentication/,
  },
  {
    name: "marking the final chunk as not final",
    make: () => {
      const { header, records } = parts();
      const last = records[3]!.slice();
      last[0] = 0;
      return join(header, [...records.slice(0, 3), last]);
    },
    code: ErrorCode.Truncated,
    message: /middle of chunk 3/,
  },
  {
    name: "marking a middle chunk as final",
    make: () => {
      const { header, records } = parts();
      // Type 1 with a length that fits: the chunk then fails its tag (the flag is in the AAD).
      const r = new Uint8Array(5 + CS - 4 + 16);
      r[0] = 1;
      new DataView(r.buffer).setUint32(1, CS - 4);
      r.set(records[1]!.subarray(1 + 4), 5);
      return join(header, [records[0]!, r]);
    },
    code: ErrorCode.Authentication,
    message: /chunk 1 .*failed authentication/,
  },
  {
    name: "an unknown chunk type",
    make: () => edit(backup, 49 + (1 + CS + 16), () => 7),
    code: ErrorCode.Malformed,
    message: /chunk 1 .*unknown type byte 7/,
  },
  {
    name: "a final length larger than the chunk size",
    make: () => setU32(backup, backup.length - (500 + 16 + 4), CS + 1),
    code: ErrorCode.Malformed,
    message: /final chunk .*claims 1025 bytes/,
  },
  {
    name: "a final length made shorter",
    make: () => setU32(backup, backup.length - (500 + 16 + 4), 499),
    code: ErrorCode.Authentication,
    message: /chunk 3 .*failed authentication/,
  },
  {
    name: "a final length made longer",
    make: () => setU32(backup, backup.length - (500 + 16 + 4), 501),
    code: ErrorCode.Truncated,
    message: /middle of chunk 3/,
  },
  {
    name: "trailing garbage",
    make: () => join(backup, [Uint8Array.of(0)]),
    code: ErrorCode.Malformed,
    message: /data after its final chunk/,
  },
  {
    name: "a second backup appended",
    make: () => join(backup, [other]),
    code: ErrorCode.Malformed,
    message: /data after its final chunk/,
  },
  {
    name: "an edited magic",
    make: () => edit(backup, BackupHeaderOffset.magic + 3, (x) => x ^ 1),
    code: ErrorCode.Malformed,
    message: /not a bkv backup file/,
  },
  {
    name: "a short file with the wrong magic",
    make: () => Uint8Array.of(0x50, 0x4b),
    code: ErrorCode.Malformed,
    message: /not a bkv backup file/,
  },
  {
    name: "an edited version",
    make: () => edit(backup, BackupHeaderOffset.version, () => 2),
    code: ErrorCode.Malformed,
    message: /unsupported backup format version 2/,
  },
  {
    name: "an edited key id",
    make: () => edit(backup, BackupHeaderOffset.keyId + 7, (x) => x ^ 1),
    code: ErrorCode.WrongKey,
    message: /different backup key/,
  },
  {
    name: "an edited salt",
    make: () => edit(backup, BackupHeaderOffset.salt + 31, (x) => x ^ 1),
    code: ErrorCode.Authentication,
    message: /chunk 0 .*failed authentication/,
  },
  {
    name: "an edited chunk size (still in range)",
    make: () => setU32(backup, BackupHeaderOffset.chunkSize, 2 * CS),
    code: ErrorCode.Authentication,
    message: /chunk 0 .*failed authentication/,
  },
  {
    name: "an edited chunk size (below the minimum)",
    make: () => setU32(backup, BackupHeaderOffset.chunkSize, 512),
    code: ErrorCode.Malformed,
    message: /chunk size of 512 bytes/,
  },
  {
    name: "an edited chunk size (above the maximum)",
    make: () => setU32(backup, BackupHeaderOffset.chunkSize, MAX_CHUNK_SIZE + 1),
    code: ErrorCode.Malformed,
    message: /chunk size/,
  },
  {
    name: "the wrong key",
    make: () => backup,
    key: generateBackupKey,
    code: ErrorCode.WrongKey,
    message: /different backup key/,
  },
];

beforeAll(async () => {
  backup = await encryptBytes(key, plaintext, { chunkSize: CS });
  other = await encryptBytes(key, plaintext, { chunkSize: CS });
  dir = await mkdtemp(pathJoin(tmpdir(), "bkv-attacks-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function caught(p: Promise<unknown>): Promise<BkvError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    return e as BkvError;
  }
  throw new Error("expected decryption to fail");
}

const CIPHERS: [string, ChunkCipherFactory][] = [
  ["webcrypto", webCryptoCipher],
  ["node", nodeChunkCipher],
];

describe("backup attacks are detected", () => {
  it("the untouched backup decrypts (control)", async () => {
    expect(await decryptBytes(key, backup)).toEqual(plaintext);
    expect(await decryptBytes(key, other)).toEqual(plaintext);
  });

  for (const c of cases) {
    it(`${c.name}: ${c.code}`, async () => {
      const bad = c.make();
      const k = c.key?.() ?? key;
      for (const [name, cipher] of CIPHERS) {
        const e = await caught(decryptBytes(k, bad, { cipher }));
        expect(e.code, name).toBe(c.code);
        expect(e.message, name).toMatch(c.message);
      }
      // Fed one byte at a time, the verdict is the same.
      const dec = await createBackupDecryptor(k, { cipher: nodeChunkCipher });
      const e = await caught(
        (async () => {
          for (let i = 0; i < bad.length; i++) await dec.push(bad.subarray(i, i + 1));
          await dec.finish();
        })(),
      );
      expect(e.code).toBe(c.code);
      // decryptFile leaves nothing behind: neither the output nor a temporary file.
      const sub = await mkdtemp(pathJoin(dir, "case-"));
      await writeFile(pathJoin(sub, "in.bkv"), bad);
      const fe = await caught(decryptFile(k, pathJoin(sub, "in.bkv"), pathJoin(sub, "out")));
      expect(fe.code).toBe(c.code);
      expect(await readdir(sub)).toEqual(["in.bkv"]);
    });
  }

  it("never mentions the key in error messages", async () => {
    const hex = Buffer.from(key).toString("hex");
    for (const c of cases) {
      const e = await caught(decryptBytes(c.key?.() ?? key, c.make()));
      expect(e.message.replace(/-/g, "")).not.toContain(hex.slice(0, 8));
    }
  });

  it("refuses further use after a failure", async () => {
    const dec = await createBackupDecryptor(key);
    await expect(dec.push(edit(backup, 0, () => 0))).rejects.toMatchObject({ code: ErrorCode.Malformed });
    await expect(dec.push(backup)).rejects.toMatchObject({ code: ErrorCode.Invalid });
    await expect(dec.finish()).rejects.toMatchObject({ code: ErrorCode.Invalid });
  });

  it("reports data after the final chunk even when it arrives in a later push", async () => {
    const dec = await createBackupDecryptor(key);
    expect(Buffer.concat(await dec.push(backup))).toEqual(Buffer.from(plaintext));
    await expect(dec.push(Uint8Array.of(1))).rejects.toMatchObject({ code: ErrorCode.Malformed });
  });
});
