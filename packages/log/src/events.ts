/** What the log and witness processes tell their operator: one JSON line on stderr per event. */

export type EventSink = (event: string, fields?: Record<string, unknown>) => void;

/** One JSON line on stderr per event: never request bodies or keys. */
export function logEvent(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}
