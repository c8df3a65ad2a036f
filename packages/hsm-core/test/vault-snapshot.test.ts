/**
 * The vault snapshot decodes only its one canonical encoding (records in ascending user order, no
 * key twice, flags 0 or 1), so a snapshot read back is byte for byte the one that was sealed. The
 * byte layout itself is pinned by testdata/formats/vault-snapshot.json.
 */
import { BkvError, ErrorCode, Writer } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { VaultState } from "../src/state.js";

const id = (n: number) => new Uint8Array(16).fill(n);

interface Layout {
  genesisFlag?: number;
  users?: string[];
  pending?: number[];
  tickets?: string[];
  seen?: number[];
}

/** A snapshot written field by field, as state.ts lays it out, with no genesis. */
function snapshot(l: Layout): Uint8Array {
  const w = new Writer().u64(5).u64(2).fixed(new Uint8Array(32).fill(7)).u64(1000);
  w.u8(l.genesisFlag ?? 0);
  w.list(l.users ?? [], (w, user) => {
    const pending = l.pending ?? [];
    w.string(user).fixed(id(1)).bytes(new Uint8Array(3)).bytes(new Uint8Array(4)).u32(0).u32(pending.length);
    // Guess numbers 1, 2, ...: the order logins are counted in.
    w.list(
      pending.map((n, i) => [n, i + 1] as const),
      (w, [n, seq]) => {
        w.fixed(id(n)).string("state").u64(2000).u32(seq);
      },
    );
  });
  w.list(l.tickets ?? [], (w, user) => {
    w.string(user).fixed(id(2)).u64(3000);
  });
  w.list(l.seen ?? [], (w, n) => {
    w.fixed(id(n)).u64(4000).u64(3).u8(0);
  });
  return w.finish();
}

function refusal(bytes: Uint8Array): string {
  try {
    VaultState.decode(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe(ErrorCode.Malformed);
    return (e as Error).message;
  }
  throw new Error("accepted");
}

describe("vault snapshot decoding", () => {
  it("decodes the canonical layout and encodes it back byte for byte", () => {
    const bytes = snapshot({
      users: ["alice", "bob"],
      pending: [8, 9],
      tickets: ["carol", "dave"],
      seen: [4, 3],
    });
    const s = VaultState.decode(bytes);
    expect([...s.records.keys()]).toEqual(["alice", "bob"]);
    expect(s.records.get("bob")!.pending.size).toBe(2);
    expect([...s.tickets.keys()]).toEqual(["carol", "dave"]);
    expect(s.seen.size).toBe(2);
    expect(Buffer.from(s.encode()).equals(Buffer.from(bytes))).toBe(true);
  });

  it("refuses a genesis flag other than 0 or 1", () => {
    expect(refusal(snapshot({ genesisFlag: 2 }))).toMatch(/genesis flag/);
  });

  it("refuses records out of user order, and a user twice", () => {
    expect(refusal(snapshot({ users: ["bob", "alice"] }))).toMatch(/ascending user order/);
    expect(refusal(snapshot({ users: ["alice", "alice"] }))).toMatch(/ascending user order/);
  });

  it("refuses a pending login, a ticket or a request id twice", () => {
    expect(refusal(snapshot({ users: ["alice"], pending: [8, 8] }))).toMatch(/pending login twice/);
    expect(refusal(snapshot({ tickets: ["carol", "carol"] }))).toMatch(/ticket twice/);
    expect(refusal(snapshot({ seen: [4, 4] }))).toMatch(/request id twice/);
  });
});
