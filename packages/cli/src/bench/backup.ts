/**
 * The backup benchmark (prints figures; not a test). In fresh child processes (backup-child.ts), it
 * measures raw AES-256-GCM from node:crypto on 64 KiB chunks and the backup format's encryption and
 * decryption of a `bytes`-long stream made in memory and sent to a null sink, plus a Node stream
 * round trip; it prints MB/s, the ratio backup/raw, and the backup process's peak RSS.
 * Targets: ratio >= 0.8, peak RSS < 150 MiB. Runs alternate raw/backup and the best of each counts.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ChildResult } from "./backup-child.js";

const RATIO_TARGET = 0.8;
const RSS_TARGET = 150 * 1024 * 1024;

function runChild(mode: "raw" | "backup", bytes: number): Promise<ChildResult> {
  const script = fileURLToPath(new URL("./backup-child.js", import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [script, mode, String(bytes)],
      { maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`backup benchmark child (${mode}) failed: ${stderr.trim() || err.message}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as ChildResult);
        } catch (e) {
          reject(new Error(`backup benchmark child (${mode}) printed no result: ${String(e)}`));
        }
      },
    );
  });
}

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;

export async function benchBackup(opts: { bytes: number; runs?: number }): Promise<void> {
  const runs = opts.runs ?? 3;
  const best = { rawEnc: 0, rawDec: 0, rawRt: 0, enc: 0, dec: 0, streamRt: 0, rss: 0 };
  let bytes = opts.bytes;
  for (let i = 0; i < runs; i++) {
    const r = await runChild("raw", opts.bytes);
    const b = await runChild("backup", opts.bytes);
    bytes = b.bytes;
    best.rawEnc = Math.max(best.rawEnc, mbps(r.bytes, r.encryptSeconds));
    best.rawDec = Math.max(best.rawDec, mbps(r.bytes, r.decryptSeconds));
    best.rawRt = Math.max(best.rawRt, mbps(r.bytes, r.encryptSeconds + r.decryptSeconds));
    best.enc = Math.max(best.enc, mbps(b.bytes, b.encryptSeconds));
    best.dec = Math.max(best.dec, mbps(b.bytes, b.decryptSeconds));
    best.streamRt = Math.max(best.streamRt, mbps(b.bytes, b.streamRoundTripSeconds!));
    best.rss = Math.max(best.rss, b.maxRssBytes);
  }
  const ratio = (x: number, raw: number) => x / raw;
  const verdict = (ok: boolean) => (ok ? "ok" : "BELOW TARGET");
  const rows: [string, string, string, string][] = [
    ["raw AES-256-GCM encrypt", best.rawEnc.toFixed(0), "", ""],
    ["raw AES-256-GCM decrypt", best.rawDec.toFixed(0), "", ""],
    [
      "backup encrypt",
      best.enc.toFixed(0),
      ratio(best.enc, best.rawEnc).toFixed(2),
      `${verdict(ratio(best.enc, best.rawEnc) >= RATIO_TARGET)} (>= ${RATIO_TARGET})`,
    ],
    [
      "backup decrypt",
      best.dec.toFixed(0),
      ratio(best.dec, best.rawDec).toFixed(2),
      `${verdict(ratio(best.dec, best.rawDec) >= RATIO_TARGET)} (>= ${RATIO_TARGET})`,
    ],
    ["raw encrypt+decrypt", best.rawRt.toFixed(0), "", ""],
    [
      "Node stream round trip",
      best.streamRt.toFixed(0),
      ratio(best.streamRt, best.rawRt).toFixed(2),
      "(info)",
    ],
  ];
  const gib = bytes / 2 ** 30;
  const out: string[] = [
    `backup benchmark: ${gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`} made in memory, ` +
      `64 KiB chunks, null sink, node:crypto; best of ${runs} run${runs === 1 ? "" : "s"}, each in a fresh process`,
    "",
    `  ${"".padEnd(24)}${"MB/s".padStart(8)}${"vs raw".padStart(9)}  target`,
  ];
  for (const [name, v, r, t] of rows) out.push(`  ${name.padEnd(24)}${v.padStart(8)}${r.padStart(9)}  ${t}`);
  const rssMiB = best.rss / 2 ** 20;
  out.push(
    `  ${"peak RSS (backup child)".padEnd(24)}${`${rssMiB.toFixed(0)} MiB`.padStart(17)}  ` +
      `${verdict(best.rss < RSS_TARGET)} (< ${RSS_TARGET / 2 ** 20} MiB)`,
  );
  process.stdout.write(`${out.map((l) => l.trimEnd()).join("\n")}\n\n`);
}
