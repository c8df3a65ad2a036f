/**
 * c2sp.org/tlog-tiles: paths, the specification's tile counts, entries tiles (the spec's "entry
 * bundles"), and proofs read from tiles served out of an in-memory tree (as the log serves them)
 * verified with the library.
 */
import { describe, expect, it } from "vitest";
import {
  decodeEntriesTile,
  encodeEntriesTile,
  encodeTileIndex,
  entriesPath,
  isTlogError,
  leafHash,
  MerkleTree,
  parseTilePath,
  TILE_WIDTH,
  TiledLog,
  type TileReader,
  TlogErrorCode,
  tilePath,
  tilesForSize,
  verifyConsistency,
  verifyInclusion,
} from "../src/index.js";

async function codeOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
    return "ok";
  } catch (e) {
    if (isTlogError(e)) return e.code;
    throw e;
  }
}

describe("tile paths", () => {
  it("encodes indexes in x-prefixed 3-digit groups", () => {
    expect(encodeTileIndex(0)).toBe("000");
    expect(encodeTileIndex(67)).toBe("067");
    expect(encodeTileIndex(1000)).toBe("x001/000");
    expect(encodeTileIndex(1234067)).toBe("x001/x234/067");
    expect(tilePath({ level: 0, index: 1234067, width: 256 })).toBe("tile/0/x001/x234/067");
    expect(tilePath({ level: 2, index: 5, width: 17 })).toBe("tile/2/005.p/17");
    expect(entriesPath(1234067)).toBe("tile/entries/x001/x234/067");
    expect(entriesPath(3, 112)).toBe("tile/entries/003.p/112");
  });

  it("parses canonical paths and nothing else", () => {
    expect(parseTilePath("tile/0/x001/x234/067")).toEqual({
      kind: "hashes",
      level: 0,
      index: 1234067,
      width: 256,
    });
    expect(parseTilePath("tile/63/000.p/255")).toEqual({ kind: "hashes", level: 63, index: 0, width: 255 });
    expect(parseTilePath("tile/entries/x001/000.p/1")).toEqual({ kind: "entries", index: 1000, width: 1 });
    for (const t of tilesForSize(70_000))
      expect(parseTilePath(tilePath(t))).toEqual({ kind: "hashes", ...t });
    const bad = [
      "tile/0/0",
      "tile/0/1234",
      "tile/0/x000/001",
      "tile/0/001/002",
      "tile/0/x1/002",
      "tile/00/000",
      "tile/64/000",
      "tile/-1/000",
      "tile/0/000.p/0",
      "tile/0/000.p/256",
      "tile/0/000.p/07",
      "tile/0/000.p",
      "tile/0/000.q/5",
      "tile/entries/000.p/",
      "tile/0/",
      "tiles/0/000",
      "/tile/0/000",
    ];
    for (const p of bad) {
      let c = "ok";
      try {
        parseTilePath(p);
      } catch (e) {
        c = isTlogError(e) ? e.code : "other";
      }
      expect(c, p).toBe(TlogErrorCode.BadTile);
    }
  });

  it("a tree of 70,000 has the tiles the specification lists", () => {
    const tiles = tilesForSize(70_000);
    const level0 = tiles.filter((t) => t.level === 0);
    expect(level0.filter((t) => t.width === 256)).toHaveLength(273);
    expect(level0.filter((t) => t.width < 256).map((t) => t.width)).toEqual([112]);
    expect(tiles.filter((t) => t.level === 1).map((t) => t.width)).toEqual([256, 17]);
    expect(tiles.filter((t) => t.level === 2).map((t) => t.width)).toEqual([1]);
    expect(tiles.filter((t) => t.level > 2)).toHaveLength(0);
  });

  it("a tree of 256 is a full level-0 tile and a level-1 tile of width 1", () => {
    expect(tilesForSize(256)).toEqual([
      { level: 0, index: 0, width: 256 },
      { level: 1, index: 0, width: 1 },
    ]);
  });
});

describe("entries tiles", () => {
  it("are uint16 big-endian length-prefixed entries", () => {
    const entries = [new Uint8Array(0), new TextEncoder().encode("a"), new Uint8Array(300).fill(7)];
    const b = encodeEntriesTile(entries);
    expect(Buffer.from(b.subarray(0, 5)).toString("hex")).toBe("0000000161");
    expect(Buffer.from(b.subarray(5, 7)).toString("hex")).toBe("012c");
    expect(decodeEntriesTile(b).map((e) => Buffer.from(e).toString("hex"))).toEqual(
      entries.map((e) => Buffer.from(e).toString("hex")),
    );
    expect(() => decodeEntriesTile(b.subarray(0, b.length - 1))).toThrow();
    expect(() => decodeEntriesTile(new Uint8Array([0]))).toThrow();
    expect(() => encodeEntriesTile([new Uint8Array(65_536)])).toThrow();
  });
});

/**
 * Serves a MerkleTree's tiles and entries tiles like the log does: partial tiles of any width up to
 * its size.
 */
function memoryReader(tree: MerkleTree, entries: Uint8Array[], log: string[] = []): TileReader {
  return {
    async fetch(path) {
      log.push(path);
      const p = parseTilePath(path);
      if (p.kind === "entries") {
        const start = p.index * TILE_WIDTH;
        if (start + p.width > entries.length) throw new Error(`404 ${path}`);
        return encodeEntriesTile(entries.slice(start, start + p.width));
      }
      const level = p.level * 8;
      const start = p.index * TILE_WIDTH;
      if (start + p.width > tree.countAt(level)) throw new Error(`404 ${path}`);
      return tree.hashesAt(level, start, start + p.width);
    },
  };
}

describe("TiledLog", () => {
  const N = 70_000;
  const entries = Array.from({ length: N }, (_, i) => new TextEncoder().encode(`entry ${i}`));
  const tree = MerkleTree.fromLeafHashes(entries.map(leafHash));

  it("computes the checkpoint root from the tiles, and inclusion and consistency proofs that verify", async () => {
    for (const size of [1, 255, 256, 257, 65_536, 70_000]) {
      const root = tree.root(size);
      const fetched: string[] = [];
      const log = new TiledLog(memoryReader(tree, entries, fetched), size, root);
      expect(Buffer.from(await log.verifiedRoot()).toString("hex")).toBe(Buffer.from(root).toString("hex"));
      for (const i of [0, size - 1, Math.floor(size / 2)]) {
        const proof = await log.inclusionProof(i);
        expect(proof).toEqual(tree.inclusionProof(i, size));
        verifyInclusion(i, size, leafHash(entries[i]!), proof, root);
      }
      for (const m of [1, Math.ceil(size / 3), size]) {
        const proof = await log.consistencyProof(m);
        verifyConsistency(m, size, tree.root(m), root, proof);
      }
      // Only tiles of this tree size are asked for.
      for (const p of fetched) {
        const t = parseTilePath(p);
        if (t.kind === "hashes") {
          const have = Math.floor(size / 256 ** t.level) - t.index * 256;
          expect(Math.min(have, 256), p).toBe(t.width);
        }
      }
    }
  });

  it("returns authenticated entries, full and partial bundles", async () => {
    const log = new TiledLog(memoryReader(tree, entries), N, tree.root());
    const first = await log.entries(0);
    expect(new TextDecoder().decode(first[255])).toBe("entry 255");
    const last = await log.entries(273);
    expect(last).toHaveLength(112);
    expect(new TextDecoder().decode(last[111])).toBe(`entry ${N - 1}`);
    const small = new TiledLog(memoryReader(tree, entries), 300, tree.root(300));
    expect(await small.entries(1)).toHaveLength(44);
  });

  it("falls back to the full tile when a partial tile is gone", async () => {
    const inner = memoryReader(tree, entries);
    const reader: TileReader = {
      fetch: (p) => (p.includes(".p/") ? Promise.reject(new Error("404")) : inner.fetch(p)),
    };
    const size = 1000;
    const log = new TiledLog(reader, size, tree.root(size));
    await log.verifiedRoot();
    expect(await log.entries(3)).toHaveLength(1000 - 768);
  });

  it("detects tiles that do not match the checkpoint", async () => {
    const inner = memoryReader(tree, entries);
    const tampered: TileReader = {
      async fetch(p) {
        const b = (await inner.fetch(p)).slice();
        if (p === "tile/0/001") b[40]! ^= 1;
        if (p === "tile/entries/002") b[5]! ^= 1;
        return b;
      },
    };
    const log = new TiledLog(tampered, 2000, tree.root(2000));
    expect(await codeOf(() => log.entries(1))).toBe(TlogErrorCode.Inconsistent);
    expect(await codeOf(() => log.entries(2))).toBe(TlogErrorCode.Inconsistent);
    expect(await codeOf(() => log.entries(0))).toBe("ok");
    const short: TileReader = { fetch: async (p) => (await inner.fetch(p)).slice(1) };
    expect(await codeOf(() => new TiledLog(short, 2000, tree.root(2000)).verifiedRoot())).toBe(
      TlogErrorCode.BadTile,
    );
    const wrongRoot = new TiledLog(inner, 2000, tree.root(1999));
    expect(await codeOf(() => wrongRoot.verifiedRoot())).toBe(TlogErrorCode.Inconsistent);
    expect(await codeOf(() => wrongRoot.entries(0))).toBe(TlogErrorCode.Inconsistent);
  });
});
