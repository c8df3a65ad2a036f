/**
 * A load-generator thread for the vault benchmark: recovers its share of the bench users in a loop
 * until the deadline and reports each recovery's latency. Runs as a worker_threads worker so the
 * clients' own CPU work (OPAQUE, key stretching) spreads over the machine's cores.
 */
import { parentPort, workerData } from "node:worker_threads";
import { httpTransport, VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { fromHex } from "@bkv/wire";

export interface LoadJob {
  url: string | string[];
  vaultPublicKey: string;
  users: { user: string; token: string }[];
  pin: string;
  concurrency: number;
  /** performance.timeOrigin-independent: absolute Date.now() deadline. */
  deadline: number;
}

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;

async function run(job: LoadJob): Promise<number[]> {
  const clients = job.users.map(
    (u) =>
      new VaultClient({
        user: u.user,
        vaultPublicKey: fromHex(job.vaultPublicKey),
        transport: httpTransport({ url: job.url, token: u.token }),
        keyStretching: LIGHT,
        hpke: nodeHpkeSealer,
      }),
  );
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: job.concurrency }, async (_, w) => {
      // Each slot owns distinct users, so no two recoveries of one user race (that would use guesses).
      for (let i = w; Date.now() < job.deadline; i += job.concurrency) {
        const t = performance.now();
        await clients[i % clients.length]!.recover(job.pin);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

if (parentPort !== null) {
  run(workerData as LoadJob).then(
    (lat) => parentPort!.postMessage({ ok: true, latencies: lat }),
    (e: unknown) => parentPort!.postMessage({ ok: false, error: (e as Error).message }),
  );
}

/**
 * From the main thread: split the users over `workers` load threads, run them until `seconds` have
 * passed, and return every recovery's latency.
 */
export async function runLoad(opts: {
  url: string | string[];
  vaultPublicKey: string;
  users: { user: string; token: string }[];
  pin: string;
  workers: number;
  concurrency: number;
  seconds: number;
}): Promise<number[]> {
  const { Worker } = await import("node:worker_threads");
  const deadline = Date.now() + opts.seconds * 1000;
  const per = Math.ceil(opts.users.length / opts.workers);
  const results = await Promise.all(
    Array.from({ length: opts.workers }, (_, k) => {
      const job: LoadJob = {
        url: opts.url,
        vaultPublicKey: opts.vaultPublicKey,
        users: opts.users.slice(k * per, (k + 1) * per),
        pin: opts.pin,
        concurrency: Math.ceil(opts.concurrency / opts.workers),
        deadline,
      };
      return new Promise<number[]>((resolve, reject) => {
        const w = new Worker(new URL("./vault-load.js", import.meta.url), { workerData: job });
        w.once("message", (m: { ok: boolean; latencies?: number[]; error?: string }) => {
          if (m.ok) resolve(m.latencies!);
          else reject(new Error(`load worker failed: ${m.error}`));
          void w.terminate();
        });
        w.once("error", reject);
      });
    }),
  );
  return results.flat();
}
