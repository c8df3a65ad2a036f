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
