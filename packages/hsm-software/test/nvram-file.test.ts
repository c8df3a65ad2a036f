import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NvramConflictError, NvramFile } from "../src/nvram-file.js";

describe("NVRAM file", () => {
  it("starts empty, keeps the newest write across reopening", () => {
    const path = join(mkdtempSync(join(tmpdir(), "nv-")), "nvram.bin");
    const a = new NvramFile(path);
    expect(a.read()).toBeNull();
    for (let i = 1; i <= 5; i++) a.write(Uint8Array.of(i, i, i));
    a.close();
    const b = new NvramFile(path);
    expect(b.read()).toEqual(Uint8Array.of(5, 5, 5));
    b.write(Uint8Array.of(6));
    expect(new NvramFile(path).read()).toEqual(Uint8Array.of(6));
  });

  it("a torn write of the newest slot falls back to the other slot", () => {
    const path = join(mkdtempSync(join(tmpdir(), "nv-")), "nvram.bin");
    const a = new NvramFile(path);
    a.write(Uint8Array.of(1));
    a.write(Uint8Array.of(2)); // slot 0 (seq 2)
    a.close();
    const bytes = readFileSync(path);
    bytes[20]! ^= 0xff; // corrupt slot 0's payload/checksum
    writeFileSync(path, bytes);
    expect(new NvramFile(path).read()).toEqual(Uint8Array.of(1));
  });

  it("holds the platform's life record, which the core never reads and its first write replaces", () => {
    const path = join(mkdtempSync(join(tmpdir(), "nv-")), "nvram.bin");
    const a = new NvramFile(path);
    a.writeLife(Uint8Array.of(9, 9));
    a.close();
    const b = new NvramFile(path);
    expect(b.readRecord()).toEqual({ kind: "life", data: Uint8Array.of(9, 9) });
    expect(b.read()).toBeNull();
    b.write(Uint8Array.of(1));
    expect(new NvramFile(path).readRecord()).toEqual({ kind: "core", data: Uint8Array.of(1) });
    expect(new NvramFile(path).read()).toEqual(Uint8Array.of(1));
  });

  it("refuses data larger than a slot", () => {
    const a = new NvramFile(join(mkdtempSync(join(tmpdir(), "nv-")), "nvram.bin"));
    expect(() => a.write(new Uint8Array(1000))).toThrow(/at most/);
  });

  it("one writer: a handle whose NVRAM another handle wrote since refuses to write, and changes nothing", () => {
    const path = join(mkdtempSync(join(tmpdir(), "bkv-nvram-")), "nvram.bin");
    const a = new NvramFile(path);
    const b = new NvramFile(path);
    a.write(new Uint8Array([1]));
    expect(() => b.write(new Uint8Array([2]))).toThrow(NvramConflictError);
    expect(new NvramFile(path).read()).toEqual(new Uint8Array([1]));
    // The first handle still writes (it knows what NVRAM holds); a handle opened now does too.
    a.write(new Uint8Array([3]));
    const c = new NvramFile(path);
    c.write(new Uint8Array([4]));
    expect(() => a.write(new Uint8Array([5]))).toThrow(NvramConflictError);
    expect(c.read()).toEqual(new Uint8Array([4]));
  });
});
