/**
 * The fleet as real processes: `bkv dev --nodes N` runs N host agents with their HSM processes on
 * 127.0.0.1, and the fault commands kill, start, partition and heal nodes while clients use the
 * vault through the CLI. Nothing acknowledged is lost, no extra guess is given, a fleet without a
 * majority answers "unavailable" (exit 5), and restored old host storage is caught.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HostConfig, hostPublicKey, Initiator, readHostKey } from "@bkv/host";
import { frame } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bkv, type DevVault, type Platform, startDev } from "./cli.js";

/** The suite, for a fleet on the given HSM platform (a test file per platform runs it). */
export function fleetSuite(platform: Platform): void {
  const platformFlag = ["--platform", platform];
  // The full set runs on the software platform. On PKCS#11 only the cases where the platform is
  // what is under test run: a fleet whose keys are made and whose NVRAM lives in SoftHSM2 tokens
  // (the genesis), recoveries, a node killed and restarted (its HSM reopens its token), and one
  // node's restored old disk (the log tip it acknowledged, kept in the token's NVRAM, outlives it).
  // The others (metrics, partitions, forged and oversized peer frames, whole-fleet rollbacks) are
  // host, Raft and core code that runs the same on either platform.
  const full = platform === "software";
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "bkv-fleet-"));
  });

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  interface NodeStatus {
    node: number;
    role: string;
    status: string;
    term?: number;
    commitIndex?: number;
    durableIndex?: number;
    leader?: number;
    hostPid?: number | null;
    hsmPid?: number | null;
    peerForged?: number;
  }

  async function status(dir: string): Promise<NodeStatus[]> {
    const r = await bkv(["dev", "status", "--dir", dir, "--json"]);
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as { nodes: NodeStatus[] }).nodes;
  }

  async function until(
    what: string,
    dir: string,
    ok: (s: NodeStatus[]) => boolean,
    tries = 100,
  ): Promise<NodeStatus[]> {
    let s: NodeStatus[] = [];
    for (let i = 0; i < tries; i++) {
      s = await status(dir);
      if (ok(s)) return s;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${what}: ${JSON.stringify(s)}`);
  }

  const leaderOf = (s: NodeStatus[]) => s.find((n) => n.role === "leader" && n.status === "ok")?.node ?? 0;

  async function recover(
    dir: string,
    user: string,
    pin: string,
  ): Promise<{ code: number; out: Record<string, unknown> }> {
    const r = await bkv(
      [
        "vault",
        "recover",
        "--dev",
        dir,
        "--user",
        user,
        "--out",
        join(work, `${user}.out`),
        "--force",
        "--json",
      ],
      `${pin}\n`,
    );
    return { code: r.code, out: JSON.parse(r.stdout || "{}") as Record<string, unknown> };
  }

  async function register(dir: string, user: string, pin: string): Promise<void> {
    const key = join(work, `${user}.key`);
    if (!existsSync(key)) expect((await bkv(["key", "new", "--out", key])).code).toBe(0);
    const r = await bkv(["vault", "register", "--dev", dir, "--user", user, "--key", key], `${pin}\n`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  }

  describe("a 5-node fleet of real processes", () => {
    let dev: DevVault;
    let dir: string;

    beforeAll(async () => {
      dir = join(work, "five");
      dev = await startDev(dir, ["--nodes", "5", "--guess-limit", "5", ...platformFlag]);
    });

    afterAll(async () => {
      await dev?.stop();
    });

    it("reports every node's role, term, commit index and process ids", async () => {
      const s = await until(
        "a leader and four followers",
        dir,
        (s) => s.filter((n) => n.role === "follower").length === 4 && leaderOf(s) > 0,
      );
      expect(s).toHaveLength(5);
      for (const n of s) {
        expect(n.status).toBe("ok");
        expect(n.term).toBeGreaterThan(0);
        expect(typeof n.hostPid).toBe("number");
        expect(typeof n.hsmPid).toBe("number");
        expect(n.leader).toBe(leaderOf(s));
      }
    });

    if (full) {
      it("serves /metrics on every node: Raft role and lag per peer, and guess counts that move with a wrong and a right PIN", async () => {
        const nodes = (
          JSON.parse(readFileSync(join(dir, "dev.json"), "utf8")) as {
            nodes: { node: number; metrics?: string }[];
          }
        ).nodes;
        const scrape = async (node: number) => {
          const url = nodes.find((n) => n.node === node)?.metrics;
          if (url === undefined) throw new Error(`node ${node} has no metrics listener in dev.json`);
          const text = await (await fetch(`${url}/metrics`)).text();
          return (sample: string) => {
            const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
            return line === undefined ? null : Number(line.slice(sample.length + 1));
          };
        };
        const leader = leaderOf(await until("a leader", dir, (s) => leaderOf(s) > 0));
        const lm = await scrape(leader);
        expect(lm('bkv_raft_role{role="leader"}')).toBe(1);
        for (const n of [1, 2, 3, 4, 5].filter((x) => x !== leader))
          expect(lm(`bkv_raft_peer_lag_entries{peer="${n}"}`)).not.toBeNull();
        const before = await Promise.all([1, 2, 3, 4, 5].map(scrape));
        await register(dir, "metrics-m", "8642");
        expect((await recover(dir, "metrics-m", "0000")).code).toBe(3);
        expect((await recover(dir, "metrics-m", "8642")).code).toBe(0);
        // Every member applies the fleet's decisions: each node's counts move by one each (bounded wait).
        for (let n = 1; n <= 5; n++) {
          const was = before[n - 1]!;
          let now = await scrape(n);
          for (
            let i = 0;
            i < 50 &&
            now('bkv_guesses_total{result="right"}') !== (was('bkv_guesses_total{result="right"}') ?? 0) + 1;
            i++
          ) {
            await new Promise((r) => setTimeout(r, 100));
            now = await scrape(n);
          }
          expect(now('bkv_guesses_total{result="wrong"}')).toBe(
            (was('bkv_guesses_total{result="wrong"}') ?? 0) + 1,
          );
          expect(now('bkv_guesses_total{result="right"}')).toBe(
            (was('bkv_guesses_total{result="right"}') ?? 0) + 1,
          );
          expect(now(n === leader ? 'bkv_raft_role{role="leader"}' : 'bkv_raft_role{role="follower"}')).toBe(
            1,
          );
        }
      });
    }

    it("kills the leader in the middle of recoveries: nothing acknowledged is lost, no extra guess is given", async () => {
      await register(dir, "alice", "1357");
      const s = await status(dir);
      const leader = leaderOf(s);
      const attempts = [recover(dir, "alice", "0000"), recover(dir, "alice", "0000")];
      await new Promise((r) => setTimeout(r, 150));
      expect((await bkv(["dev", "kill", "--dir", dir, "--node", String(leader)])).code).toBe(0);
      attempts.push(recover(dir, "alice", "0000"));
      const results = await Promise.all(attempts);
      for (const r of results) expect([3, 5]).toContain(r.code);
      const answered = results.filter((r) => r.code === 3).length;
      // A new leader serves; the guesses the clients were told about are all counted.
      await until("a new leader", dir, (x) => leaderOf(x) !== 0 && leaderOf(x) !== leader);
      const next = await recover(dir, "alice", "0000");
      expect(next.code).toBe(3);
      const remaining = next.out.guessesRemaining as number;
      expect(remaining).toBeLessThanOrEqual(5 - answered - 1);
      expect(remaining).toBeGreaterThanOrEqual(5 - results.length - 1);
      // The old leader comes back and catches up.
      expect((await bkv(["dev", "start", "--dir", dir, "--node", String(leader)])).code).toBe(0);
      await until("the old leader caught up", dir, (x) => {
        const l = x.find((n) => n.role === "leader");
        const old = x.find((n) => n.node === leader);
        return l !== undefined && old?.role === "follower" && old.commitIndex === l.commitIndex;
      });
      const ok = await recover(dir, "alice", "1357");
      expect(ok.code).toBe(0);
    }, 120_000); // a kill, an election, a restart and a catch-up: slow on a loaded 2-core machine

    if (full) {
      it("a partitioned minority cannot serve and uses no guess; the majority serves; heal", async () => {
        await register(dir, "bob", "2468");
        const s = await status(dir);
        const leader = leaderOf(s);
        expect((await bkv(["dev", "partition", "--dir", dir, "--node", String(leader)])).code).toBe(0);
        await until("a leader on the majority side", dir, (x) => {
          const l = leaderOf(x);
          return l !== 0 && l !== leader;
        });
        // Through the cut-off node alone: unavailable, exit 5.
        const url = s.find((n) => n.node === leader)!;
        const token = (await bkv(["dev", "token", "--dir", dir, "--user", "bob"])).stdout.trim();
        const devInfo = JSON.parse((await import("node:fs")).readFileSync(join(dir, "dev.json"), "utf8")) as {
          nodes: { node: number; url: string }[];
        };
        const isolatedUrl = devInfo.nodes.find((n) => n.node === url.node)!.url;
        const cut = await bkv(
          [
            "vault",
            "recover",
            "--vault",
            isolatedUrl,
            "--token",
            token,
            "--trust",
            join(dir, "trust.json"),
            "--user",
            "bob",
            "--out",
            join(work, "b.key"),
            "--json",
          ],
          "0000\n",
        );
        expect(cut.code).toBe(5);
        // Through the CLI's usual path (all nodes): the majority answers, and no guess was used before.
        const w = await recover(dir, "bob", "0000");
        expect(w.code).toBe(3);
        expect(w.out.guessesRemaining).toBe(4);
        expect((await bkv(["dev", "heal", "--dir", dir])).code).toBe(0);
        await until("everyone follows one leader again", dir, (x) => {
          const l = leaderOf(x);
          return l !== 0 && x.every((n) => n.leader === l);
        });
        expect((await recover(dir, "bob", "2468")).code).toBe(0);
      });
    }

    /** A peer stream to node `to`'s peer port as host `as` (with that host's key from the folder). */
    /**
     * Open a peer stream to host `to` as host `as` (the operator holds the host keys). `first` goes
     * out in the same write as the handshake's finish: the genuine host `as` reconnects as soon as
     * this stream replaces its own, and then this one is closed, so anything sent later can be lost.
     */
    async function peerStream(to: number, as: number, first?: Uint8Array) {
      const cfg = (n: number) =>
        JSON.parse(readFileSync(join(dir, `node-${n}`, "host", "config.json"), "utf8")) as HostConfig;
      const target = cfg(to);
      const toKey = cfg(as).peers.find((p) => p.node === to)!.hostKey;
      const hs = new Initiator(as, to, readHostKey(cfg(as).hostKeyFile!), hostPublicKey(toKey));
      const s = connect(target.peerListen!.port, target.peerListen!.host);
      s.on("error", () => {});
      const closed = new Promise<void>((r) => s.once("close", () => r()));
      const got: Buffer[] = [];
      s.on("data", (c: Buffer) => got.push(c));
      s.write(hs.hello());
      for (let i = 0; i < 500 && Buffer.concat(got).length < 136; i++)
        await new Promise((r) => setTimeout(r, 10));
      const { finish, mac } = hs.reply(new Uint8Array(Buffer.concat(got)));
      s.write(first === undefined ? finish : Buffer.concat([finish, frame(mac.seal(first))]));
      return {
        s,
        mac,
        closed,
        peerAddress: target.peerListen!,
        clientUrl: `http://${target.listen.host}:${target.listen.port}`,
      };
    }

    /** Write up to `total` bytes in 1 MiB chunks until the host closes the connection (bounded). */
    async function flood(s: Socket, total: number): Promise<void> {
      const chunk = Buffer.alloc(1 << 20, 0x41);
      for (let sent = 0; sent < total && !s.destroyed && s.writable; sent += chunk.length) {
        if (!s.write(chunk))
          await new Promise<void>((r) => {
            // One wait per full buffer: whichever comes first removes the other listener, so 256
            // waits on one socket do not pile up listeners.
            const done = () => {
              s.off("drain", done);
              s.off("close", done);
              r();
            };
            s.on("drain", done);
            s.on("close", done);
          });
      }
    }

    if (full) {
      it("forged peer messages from a fleet host are refused by the HSM and counted", async () => {
        const s = await status(dir);
        const target = s[0]!.node;
        const before = s.find((n) => n.node === target)!.peerForged ?? 0;
        // The operator holds the host keys, so it can put junk on a stream: the HSM refuses it.
        const p = await peerStream(target, 2, new Uint8Array(60).fill(7));
        const after = await until(
          "the forgery counted",
          dir,
          (x) => (x.find((n) => n.node === target)!.peerForged ?? 0) > before,
        );
        expect(after.every((n) => n.status === "ok")).toBe(true);
        p.s.destroy();
      });

      it("256 MiB frames to the peer port and the client port do not touch the HSM; the fleet still serves", async () => {
        const before = await until(
          "all serving",
          dir,
          (x) => x.every((n) => n.status === "ok") && leaderOf(x) > 0,
        );
        const target = before.find((n) => n.node === leaderOf(before))!;
        // From a fleet host: refused at the frame's header, the stream ends.
        const p = await peerStream(target.node, target.node === 1 ? 2 : 1);
        const head = Buffer.alloc(4);
        head.writeUInt32BE(256 << 20);
        p.s.write(head);
        await flood(p.s, 256 << 20);
        await p.closed;
        // From a stranger, to the peer port and to the client API.
        for (const port of [p.peerAddress.port, Number(new URL(p.clientUrl).port)]) {
          const s = connect(port, "127.0.0.1");
          s.on("error", () => {});
          const closed = new Promise<void>((r) => s.once("close", () => r()));
          s.write(
            port === p.peerAddress.port
              ? head
              : `POST /v1/vault HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${256 << 20}\r\n\r\n`,
          );
          await flood(s, 256 << 20);
          s.end();
          await closed;
        }
        // The host counts a refusal as it closes the stream; read its health until both counts are
        // in (bounded: 50 reads, 100 ms apart), then judge.
        type Health = { hsmPid: number; peerRefused: number; peerFramesRefused: number };
        let h = (await (await fetch(`${p.clientUrl}/v1/health`)).json()) as Health;
        for (let i = 0; i < 50 && (h.peerFramesRefused < 1 || h.peerRefused < 1); i++) {
          await new Promise((r) => setTimeout(r, 100));
          h = (await (await fetch(`${p.clientUrl}/v1/health`)).json()) as Health;
        }
        expect(h.hsmPid).toBe(target.hsmPid);
        expect(h.peerFramesRefused).toBeGreaterThanOrEqual(1);
        expect(h.peerRefused).toBeGreaterThanOrEqual(1);
        await register(dir, "carol", "2580");
        expect((await recover(dir, "carol", "2580")).code).toBe(0);
        const after = await status(dir);
        for (const n of before) expect(after.find((m) => m.node === n.node)!.hsmPid).toBe(n.hsmPid);
      });
    }
  });

  describe("restored old host storage", () => {
    const files = ["vault.sqlite", "vault.sqlite-wal", "vault.sqlite-shm"];
    const copy = (dir: string, node: number, to: string) => {
      for (const f of files) {
        const src = join(dir, `node-${node}`, "host", f);
        if (existsSync(src)) copyFileSync(src, join(to, `${node}-${f}`));
        else rmSync(join(to, `${node}-${f}`), { force: true });
      }
    };
    const restore = (dir: string, node: number, from: string) => {
      for (const f of files) {
        const src = join(from, `${node}-${f}`);
        const dst = join(dir, `node-${node}`, "host", f);
        if (existsSync(src)) copyFileSync(src, dst);
        else rmSync(dst, { force: true });
      }
    };

    it("one node's old disk: it recovers from the fleet and never brings back a used guess", async () => {
      const dir = join(work, "roll1");
      const saved = mkdtempSync(join(tmpdir(), "bkv-saved-"));
      const dev = await startDev(dir, ["--nodes", "3", "--guess-limit", "5", ...platformFlag]);
      try {
        await register(dir, "carol", "1111");
        expect((await bkv(["dev", "kill", "--dir", dir, "--node", "2"])).code).toBe(0);
        copy(dir, 2, saved);
        expect((await bkv(["dev", "start", "--dir", dir, "--node", "2"])).code).toBe(0);
        for (const left of [4, 3]) {
          const r = await recover(dir, "carol", "0000");
          expect(r.out.guessesRemaining).toBe(left);
        }
        await until(
          "node 2 caught up",
          dir,
          (x) => x[1]!.commitIndex === x[0]!.commitIndex && x[1]!.commitIndex! > 0,
        );
        expect((await bkv(["dev", "kill", "--dir", dir, "--node", "2"])).code).toBe(0);
        restore(dir, 2, saved);
        expect((await bkv(["dev", "start", "--dir", dir, "--node", "2"])).code).toBe(0);
        // It notices the rollback and is brought up to date by the others; the count goes on.
        await until(
          "node 2 up to date again",
          dir,
          (x) => x[1]!.status === "ok" && x[1]!.role === "follower",
        );
        const r = await recover(dir, "carol", "0000");
        expect(r.out.guessesRemaining).toBe(2);
      } finally {
        await dev.stop();
        rmSync(saved, { recursive: true, force: true });
      }
    }, 150_000);

    if (full) {
      it("every node's old disk at once: the fleet stays unavailable rather than serve a stale count", async () => {
        const dir = join(work, "rollall");
        const saved = mkdtempSync(join(tmpdir(), "bkv-saved-"));
        const dev = await startDev(dir, ["--nodes", "3", "--guess-limit", "5", ...platformFlag]);
        try {
          await register(dir, "dave", "2222");
          for (const n of [1, 2, 3])
            expect((await bkv(["dev", "kill", "--dir", dir, "--node", String(n)])).code).toBe(0);
          for (const n of [1, 2, 3]) copy(dir, n, saved);
          for (const n of [1, 2, 3])
            expect((await bkv(["dev", "start", "--dir", dir, "--node", String(n)])).code).toBe(0);
          await until("a leader", dir, (x) => leaderOf(x) !== 0);
          expect((await recover(dir, "dave", "0000")).out.guessesRemaining).toBe(4);
          expect((await recover(dir, "dave", "0000")).out.guessesRemaining).toBe(3);
          for (const n of [1, 2, 3])
            expect((await bkv(["dev", "kill", "--dir", dir, "--node", String(n)])).code).toBe(0);
          for (const n of [1, 2, 3]) restore(dir, n, saved);
          for (const n of [1, 2, 3])
            expect((await bkv(["dev", "start", "--dir", dir, "--node", String(n)])).code).toBe(0);
          const s = await until("every node recovering", dir, (x) =>
            x.every((n) => n.status === "recovering"),
          );
          expect(leaderOf(s)).toBe(0);
          const r = await recover(dir, "dave", "0000");
          expect(r.code).toBe(5);
          // Still no leader a while later: no stale count is ever served.
          await new Promise((res) => setTimeout(res, 1500));
          expect(leaderOf(await status(dir))).toBe(0);
          // And the status says why, and up to which index each node must be brought.
          const text = await bkv(["dev", "status", "--dir", dir]);
          expect(text.stdout).toMatch(/node 1 .*recovering until index \d+/);
          expect(text.stdout).toMatch(/no leader: 0 of 3 nodes can campaign/);
        } finally {
          await dev.stop();
          rmSync(saved, { recursive: true, force: true });
        }
      }, 150_000);

      it("two of three old disks while the third holds the whole log: the fleet comes back by itself, every guess counted", async () => {
        const dir = join(work, "rollmajority");
        const saved = mkdtempSync(join(tmpdir(), "bkv-saved-"));
        const dev = await startDev(dir, ["--nodes", "3", "--guess-limit", "5", ...platformFlag]);
        try {
          await register(dir, "erin", "3333");
          for (const n of [2, 3]) {
            expect((await bkv(["dev", "kill", "--dir", dir, "--node", String(n)])).code).toBe(0);
            copy(dir, n, saved);
            expect((await bkv(["dev", "start", "--dir", dir, "--node", String(n)])).code).toBe(0);
          }
          expect((await recover(dir, "erin", "0000")).out.guessesRemaining).toBe(4);
          expect((await recover(dir, "erin", "0000")).out.guessesRemaining).toBe(3);
          // Node 1 must hold the whole log durably (not only have it committed by the other two).
          await until("all caught up and durable", dir, (x) =>
            x.every(
              (n) => n.commitIndex === x[0]!.commitIndex && (n.durableIndex ?? 0) >= x[0]!.commitIndex!,
            ),
          );
          // Nodes 2 and 3 get their old disks back; node 1, with the whole log, is down meanwhile.
          // Node 1 goes last: once one node is down, nothing commits without node 1 (a leader elected
          // between the kills commits a no-op, which node 1 then holds too).
          for (const n of [2, 3, 1])
            expect((await bkv(["dev", "kill", "--dir", dir, "--node", String(n)])).code).toBe(0);
          for (const n of [2, 3]) restore(dir, n, saved);
          for (const n of [2, 3])
            expect((await bkv(["dev", "start", "--dir", dir, "--node", String(n)])).code).toBe(0);
          await until(
            "both recovering",
            dir,
            (x) => x[1]!.status === "recovering" && x[2]!.status === "recovering",
          );
          expect((await recover(dir, "erin", "0000")).code).toBe(5);
          // Node 1 returns: they vote for it, it leads and brings them up to date. No guess comes back.
          expect((await bkv(["dev", "start", "--dir", dir, "--node", "1"])).code).toBe(0);
          await until(
            "a leader and no node recovering",
            dir,
            (x) => leaderOf(x) !== 0 && x.every((n) => n.status === "ok"),
          );
          expect((await recover(dir, "erin", "0000")).out.guessesRemaining).toBe(2);
        } finally {
          await dev.stop();
          rmSync(saved, { recursive: true, force: true });
        }
      }, 150_000);
    }
  });
}
