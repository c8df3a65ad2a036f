/** `bkv measure [--source DIR] [--out FILE]`: build the HSM core reproducibly and print its measurement. */
import { resolve } from "node:path";
import { parse } from "../args.js";
import { buildCore, OWN_SOURCE_ROOT, writeCore } from "../measure.js";

export async function measureCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    source: { type: "string" },
    out: { type: "string" },
    json: { type: "boolean" },
  });
  const source = resolve(values.source ?? OWN_SOURCE_ROOT);
  const m = values.out === undefined ? await buildCore(source) : await writeCore(source, values.out);
  process.stdout.write(
    values.json === true
      ? `${JSON.stringify({ measurement: m.measurement, bytes: m.code.length, source, out: values.out ?? null })}\n`
      : `${m.measurement}\n`,
  );
  return 0;
}
