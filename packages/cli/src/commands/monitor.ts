/**
 * `bkv monitor (--dev DIR | --log URL --log-key VKEY --witness-key VKEY... [--witness-threshold N])
 * [--vendor-root FILE] [--release-key HEX] [--allow-test-roots] [--allow-small-fleet] [--state FILE] [--max-guess-limit N]
 * [--follow [--interval SECONDS]] [--json]`: follow the transparency log, check every entry and its
 * evidence (the SDK's auditEvidence; a test vendor root counts only with --allow-test-roots, or for a
 * --dev folder's own root), report each fleet and what changed from the previous epoch, and each release entry (measurement,
 * source revision, build recipe) with its signature checked under --release-key (for --dev, the
 * folder's pinned release key), else reported unchecked. Exit 0 only if every check holds. The logic is in ../monitor/.
 */
import { isBkvError } from "@bkv/wire";
import {
  formatJson,
  formatText,
  type MonitorEvent,
  parseMonitorFlags,
  runMonitor,
} from "../monitor/index.js";

export interface MonitorCommandIo {
  /** Where reports go (default stdout). */
  readonly write?: (text: string) => void;
  /** Stops --follow (default: SIGINT or SIGTERM). */
  readonly signal?: AbortSignal;
}

export async function monitorCommand(argv: string[], io: MonitorCommandIo = {}): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  try {
    const flags = parseMonitorFlags(argv);
    const write = io.write ?? ((s: string) => void process.stdout.write(s));
    const format = flags.json ? formatJson : formatText;
    io.signal?.addEventListener("abort", onSignal, { once: true });
    if (flags.follow && io.signal === undefined) {
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
    }
    const summary = await runMonitor(
      flags.config,
      { emit: (e: MonitorEvent) => write(format(e)), signal: stop.signal },
      { follow: flags.follow, intervalMs: flags.intervalMs },
    );
    return summary.ok ? 0 : 1;
  } catch (e) {
    if (!isBkvError(e)) throw e;
    process.stderr.write(`bkv monitor: ${e.message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    io.signal?.removeEventListener("abort", onSignal);
  }
}
