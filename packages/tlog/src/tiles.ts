/**
 * C2SP tlog-tiles: the static resources of a tiled log and how to read proofs from them.
 *
 * - `tile/<L>/<N>[.p/<W>]`: the 256 (or W < 256, a partial tile) consecutive hashes at tree level
 *   8·L, hashes of full subtrees of 256^L leaves; N in 3-digit groups, `x001/x234/067`.
 * - `tile/entries/<N>[.p/<W>]`: the entries hashed into level-0 tile N, each a big-endian uint16
 *   length followed by the entry.
 *
 * TiledLog reads these through a TileReader (any async fetch) for one tree size taken from a
 * verified checkpoint, and builds roots, inclusion and consistency proofs, and authenticated
 * entries. Tiles come from an untrusted server: every result is checked against the checkpoint
 * root, or is a proof the caller verifies.
 */
import { bytesEqual, concatBytes, MAX_ENTRY_SIZE } from "@bkv/wire";
import { isSize } from "./encoding.js";
import { ensure, TlogError, TlogErrorCode } from "./errors.js";
import {
  consistencyProofNodes,
  emptyRoot,
  fold,
  HASH_SIZE,
  inclusionProofNodes,
  leafHash,
  type NodeId,
  type NodeRange,
  nodeHash,
  rangeNodes,
  rootNodes,
  verifyInclusion,
} from "./merkle.js";

export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
/** An entry in an entries tile is at most this long (uint16 length prefix). */
export { MAX_ENTRY_SIZE };

export interface TileId {
  /** Tile level: the tile holds hashes at tree level 8·level. */
  readonly level: number;
  readonly index: number;
  /** 1..256; 256 is a full tile, anything less a partial one. */
  readonly width: number;
}

export type TilePath =
  | { readonly kind: "hashes"; readonly level: number; readonly index: number; readonly width: number }
  | { readonly kind: "entries"; readonly index: number; readonly width: number };

function badTile(message: string): TlogError {
  return new TlogError(TlogErrorCode.BadTile, message);
}

/** N as zero-padded 3-digit path elements, all but the last prefixed with x: 1234067 → x001/x234/067. */
export function encodeTileIndex(n: number): string {
  ensure(isSize(n), TlogErrorCode.Range, `bad tile index ${n}`);
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, "0"));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join("/");
}

function checkWidth(width: number): void {
  ensure(
    Number.isInteger(width) && width >= 1 && width <= TILE_WIDTH,
    TlogErrorCode.Range,
    `bad tile width ${width}`,
  );
}

function widthSuffix(width: number): string {
  checkWidth(width);
  return width === TILE_WIDTH ? "" : `.p/${width}`;
}

export function tilePath(t: TileId): string {
  ensure(
    Number.isInteger(t.level) && t.level >= 0 && t.level <= 63,
    TlogErrorCode.Range,
    `bad tile level ${t.level}`,
  );
  return `tile/${t.level}/${encodeTileIndex(t.index)}${widthSuffix(t.width)}`;
}

export function entriesPath(index: number, width: number = TILE_WIDTH): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

const SMALL_DECIMAL = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parse a tile or entries-tile path (relative to the log prefix, no leading slash). Only the
 * canonical encoding is accepted, so each resource has exactly one name.
 */
export function parseTilePath(path: string): TilePath {
  const parts = path.split("/");
  if (parts[0] !== "tile" || parts.length < 3) throw badTile(`not a tile path: ${path}`);
  const kindPart = parts[1]!;
  let rest = parts.slice(2);
  let width = TILE_WIDTH;
  const last = rest[rest.length - 1]!;
  if (rest.length >= 2 && rest[rest.length - 2]!.endsWith(".p")) {
    if (!SMALL_DECIMAL.test(last)) throw badTile(`bad partial width in ${path}`);
    width = Number(last);
    if (width < 1 || width >= TILE_WIDTH) throw badTile(`partial width must be 1..255 in ${path}`);
    rest = rest.slice(0, -1);
    rest[rest.length - 1] = rest[rest.length - 1]!.slice(0, -2);
  }
  let index = 0;
  for (let i = 0; i < rest.length; i++) {
    const g = rest[i]!;
    const digits = i < rest.length - 1 ? (g.startsWith("x") ? g.slice(1) : "") : g;
    if (!/^[0-9]{3}$/.test(digits)) throw badTile(`bad tile index element ${JSON.stringify(g)} in ${path}`);
    index = index * 1000 + Number(digits);
  }
  if (!Number.isSafeInteger(index)) throw badTile(`tile index too large in ${path}`);
  // Canonical: no leading x000 groups.
  if (encodeTileIndex(index) !== rest.join("/")) throw badTile(`non-canonical tile index in ${path}`);
  if (kindPart === "entries") return { kind: "entries", index, width };
  if (!/^(0|[1-9][0-9]?)$/.test(kindPart) || Number(kindPart) > 63)
    throw badTile(`bad tile level in ${path}`);
  return { kind: "hashes", level: Number(kindPart), index, width };
}

/** How many hashes a tree of `size` leaves has at tile level `level` (tree level 8·level). */
export function hashesAtTileLevel(level: number, size: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/** Width of tile (level, index) in a tree of `size` leaves: 0 if it does not exist yet. */
export function tileWidth(level: number, index: number, size: number): number {
  const n = hashesAtTileLevel(level, size) - index * TILE_WIDTH;
  return Math.max(0, Math.min(TILE_WIDTH, n));
}

/** Every tile (full and partial) of a tree of `size` leaves, level by level. */
export function tilesForSize(size: number): TileId[] {
  ensure(isSize(size), TlogErrorCode.Range, `bad tree size ${size}`);
  const out: TileId[] = [];
  for (let level = 0; hashesAtTileLevel(level, size) > 0; level++) {
    const count = hashesAtTileLevel(level, size);
    for (let index = 0; index * TILE_WIDTH < count; index++) {
      out.push({ level, index, width: tileWidth(level, index, size) });
    }
  }
  return out;
}

/** Where a perfect subtree's hash comes from: `count` consecutive hashes of one tile. */
export function tileForNode(node: NodeId, size: number): { tile: TileId; offset: number; count: number } {
  const level = Math.floor(node.level / TILE_HEIGHT);
  const count = 2 ** (node.level - level * TILE_HEIGHT);
  const first = node.index * count;
  const index = Math.floor(first / TILE_WIDTH);
  const width = tileWidth(level, index, size);
  const offset = first % TILE_WIDTH;
  ensure(
    offset + count <= width,
    TlogErrorCode.Range,
    `subtree (${node.level}, ${node.index}) is not complete in a tree of size ${size}`,
  );
  return { tile: { level, index, width }, offset, count };
}

/** Split tile contents into hashes; the length must be exactly width × 32. */
export function parseTileHashes(bytes: Uint8Array, width: number): Uint8Array[] {
  checkWidth(width);
  if (bytes.length !== width * HASH_SIZE) {
    throw badTile(`a tile of width ${width} is ${width * HASH_SIZE} bytes, got ${bytes.length}`);
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < width; i++) out.push(bytes.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  return out;
}

/**
 * The entries tile (tile/entries/N, what C2SP tlog-tiles calls an "entry bundle"; here "bundle"
 * means only the validation bundle): up to 256 entries, each with a big-endian u16 length.
 */
export function encodeEntriesTile(entries: readonly Uint8Array[]): Uint8Array {
  ensure(entries.length <= TILE_WIDTH, TlogErrorCode.Range, "an entries tile holds at most 256 entries");
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    ensure(e.length <= MAX_ENTRY_SIZE, TlogErrorCode.Range, `an entry is at most ${MAX_ENTRY_SIZE} bytes`);
    parts.push(new Uint8Array([e.length >> 8, e.length & 0xff]), e);
  }
  return concatBytes(...parts);
}

export function decodeEntriesTile(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + 2 > bytes.length) throw badTile("entries tile: truncated length");
    const n = (bytes[o]! << 8) | bytes[o + 1]!;
    o += 2;
    if (o + n > bytes.length) throw badTile("entries tile: truncated entry");
    out.push(bytes.slice(o, o + n));
    o += n;
    if (out.length > TILE_WIDTH) throw badTile("entries tile: more than 256 entries");
  }
  return out;
}

/** Fetches a resource by path relative to the log prefix (e.g. "tile/0/000"); throws if absent. */
export interface TileReader {
  fetch(path: string): Promise<Uint8Array>;
}

/** Hash of the perfect subtree whose 2^k leaves are these (k >= 0). */
function perfectHash(hashes: readonly Uint8Array[]): Uint8Array {
  let level = [...hashes];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    level = next;
  }
  return level[0]!;
}

/**
 * A tiled log as of one checkpoint (size and root, from a verified checkpoint). Tiles are fetched
 * at most once each, in parallel.
 */
export class TiledLog {
  private readonly tiles = new Map<string, Promise<Uint8Array[]>>();

  constructor(
    private readonly reader: TileReader,
    readonly size: number,
    readonly rootHash: Uint8Array,
  ) {
    ensure(isSize(size), TlogErrorCode.Range, `bad tree size ${size}`);
  }

  /** The hashes of a tile; a partial tile falls back to the full one if it is gone. */
  tile(t: TileId): Promise<Uint8Array[]> {
    const key = tilePath(t);
    let p = this.tiles.get(key);
    if (p === undefined) {
      p = this.fetchTile(t);
      this.tiles.set(key, p);
      p.catch(() => this.tiles.delete(key));
    }
    return p;
  }

  private async fetchTile(t: TileId): Promise<Uint8Array[]> {
    let raw: Uint8Array;
    try {
      raw = await this.reader.fetch(tilePath(t));
    } catch (e) {
      if (t.width === TILE_WIDTH) throw e;
      // MAY fall back to the full tile once the partial one is gone.
      const full = await this.reader.fetch(tilePath({ ...t, width: TILE_WIDTH }));
      return parseTileHashes(full, TILE_WIDTH).slice(0, t.width);
    }
    return parseTileHashes(raw, t.width);
  }

  /** Hashes of perfect subtrees, read from the tiles. */
  async nodes(ids: readonly NodeId[]): Promise<Uint8Array[]> {
    return Promise.all(
      ids.map(async (id) => {
        const { tile, offset, count } = tileForNode(id, this.size);
        const hashes = await this.tile(tile);
        return perfectHash(hashes.slice(offset, offset + count));
      }),
    );
  }

  private async ranges(ranges: readonly NodeRange[]): Promise<Uint8Array[]> {
    return Promise.all(ranges.map(async (r) => fold(await this.nodes(r))));
  }

  /** The root computed from the tiles, checked against the checkpoint's root. */
  async verifiedRoot(): Promise<Uint8Array> {
    const root = this.size === 0 ? emptyRoot() : fold(await this.nodes(rootNodes(this.size)));
    if (!bytesEqual(root, this.rootHash)) {
      throw new TlogError(TlogErrorCode.Inconsistent, "the tiles do not hash to the checkpoint's root");
    }
    return root;
  }

  /** RFC 9162 inclusion proof for leaf `index` in this tree (the caller verifies it). */
  inclusionProof(index: number): Promise<Uint8Array[]> {
    return this.ranges(inclusionProofNodes(index, this.size));
  }

  /** RFC 9162 consistency proof from `size1` to this tree (the caller verifies it). */
  consistencyProof(size1: number): Promise<Uint8Array[]> {
    if (size1 === this.size) return Promise.resolve([]);
    return this.ranges(consistencyProofNodes(size1, this.size));
  }

  /**
   * The leaf hashes of level-0 tile `index`, authenticated against the checkpoint root: the
   * tile's subtree hash is proven included in the tree (as a 256-leaf unit).
   */
  async leafHashes(index: number): Promise<Uint8Array[]> {
    const width = tileWidth(0, index, this.size);
    ensure(width > 0, TlogErrorCode.Range, `no level-0 tile ${index} in a tree of size ${this.size}`);
    const hashes = await this.tile({ level: 0, index, width });
    const start = index * TILE_WIDTH;
    // The tile's subtree: perfect subtrees of its hashes, folded like any RFC 9162 range.
    const unitHash = fold(
      rangeNodes(start, start + width).map((n) => {
        const span = 2 ** n.level;
        return perfectHash(hashes.slice(n.index * span - start, (n.index + 1) * span - start));
      }),
    );
    // The path from the unit to the root: the leaf's path without the elements inside the unit.
    const path = inclusionProofNodes(start, this.size).filter((r) => {
      const first = r[0]!;
      const firstLeaf = first.index * 2 ** first.level;
      return firstLeaf < start || firstLeaf >= start + TILE_WIDTH;
    });
    const proof = await this.ranges(path);
    const units = Math.ceil(this.size / TILE_WIDTH);
    try {
      verifyInclusion(index, units, unitHash, proof, this.rootHash);
    } catch (e) {
      throw new TlogError(TlogErrorCode.Inconsistent, `level-0 tile ${index} does not match the checkpoint`, {
        cause: e,
      });
    }
    return hashes;
  }

  /** The entries of entries tile `index`, each checked against its authenticated leaf hash. */
  async entries(index: number): Promise<Uint8Array[]> {
    const width = tileWidth(0, index, this.size);
    ensure(width > 0, TlogErrorCode.Range, `no entries tile ${index} in a tree of size ${this.size}`);
    const [raw, hashes] = await Promise.all([this.fetchEntriesTile(index, width), this.leafHashes(index)]);
    for (let i = 0; i < width; i++) {
      if (!bytesEqual(leafHash(raw[i]!), hashes[i]!)) {
        throw new TlogError(
          TlogErrorCode.Inconsistent,
          `entry ${index * TILE_WIDTH + i} does not match its leaf hash`,
        );
      }
    }
    return raw;
  }

  private async fetchEntriesTile(index: number, width: number): Promise<Uint8Array[]> {
    let raw: Uint8Array;
    let fallback = false;
    try {
      raw = await this.reader.fetch(entriesPath(index, width));
    } catch (e) {
      if (width === TILE_WIDTH) throw e;
      // MAY fall back to the full tile once the partial one is gone.
      raw = await this.reader.fetch(entriesPath(index));
      fallback = true;
    }
    let entries = decodeEntriesTile(raw);
    if (fallback) entries = entries.slice(0, width);
    if (entries.length !== width) {
      throw badTile(`entries tile ${index}: expected ${width} entries, got ${entries.length}`);
    }
    return entries;
  }
}
