/**
 * `bkv release key --out FILE`: make a release key (Ed25519, file mode 0600); prints its public key.
 * `bkv release publish --log URL --namespace NS --release-key FILE --submitter-key FILE
 *      --revision REV [--measurement HEX | --source DIR] [--recipe TEXT] [--epoch E] [--json]`:
 * sign a release entry (the HSM core's measurement, the source revision it is built from, the build
 * recipe) with the release key and append it to the log's releases namespace, the /add signed with
 * the namespace's submitter key. Without --measurement the core is built from --source (default:
 * this checkout), as `bkv measure` does; without --epoch the namespace's next epoch is used.
 */
import { resolve } from "node:path";
import {
  artifactDigest,
  encodeSignedRelease,
  evidenceDigest,
  type Release,
  releaseSignedBytes,
  submitMessage,
  toBase64,
} from "@bkv/tlog";
import { BkvError, ErrorCode, fromHex, toHex } from "@bkv/wire";
import { intFlag, parse, required, UsageError } from "../args.js";
import { buildCore, OWN_SOURCE_ROOT } from "../measure.js";
import { newSigningKeyFile, readSigningKeyFile, type SigningKey } from "../signing-key-file.js";

export const DEFAULT_RECIPE =
  "git checkout <revision> && npm ci && npm run build; build/hsm-core.js is the core, `bkv measure` prints its SHA-256";

export async function nextEpoch(log: string, namespace: string): Promise<number> {
  const res = await fetch(`${log}/bundle?namespace=${encodeURIComponent(namespace)}`, {
    signal: AbortSignal.timeout(15_000),
  });
  if (res.status === 404) return 1;
  if (!res.ok) throw new BkvError(ErrorCode.Unavailable, `the log answered ${res.status} for ${namespace}`);
  return ((await res.json()) as { epoch: number }).epoch + 1;
}

/** Sign `release` with the release key and append it to the log, the /add signed by the submitter. */
export async function publishRelease(o: {
  log: string;
  releaseKey: SigningKey;
  submitter: SigningKey;
  release: Release;
}): Promise<Response> {
  const { namespace, epoch } = o.release;
  const artifact = encodeSignedRelease({
    ...o.release,
    signature: o.releaseKey.sign(releaseSignedBytes(o.release)),
  });
  const evidence = new Uint8Array(0);
  return fetch(`${o.log}/add`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      namespace,
      epoch,
      artifact: toBase64(artifact),
      evidence: toBase64(evidence),
      submitterSignature: toBase64(
        o.submitter.sign(submitMessage(namespace, epoch, artifactDigest(artifact), evidenceDigest(evidence))),
      ),
    }),
    signal: AbortSignal.timeout(30_000),
  });
}

export async function releaseCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "key") {
    const { values } = parse(rest, { out: { type: "string" } });
    const key = newSigningKeyFile(
      required(values.out, "--out"),
      "bkv release key: Ed25519 seed, hex. It signs release entries; clients may pin its public key.",
    );
    process.stdout.write(`${toHex(key.publicKey)}\n`);
    return 0;
  }
  if (sub !== "publish") throw new UsageError("bkv release key|publish ...");
  const { values } = parse(rest, {
    log: { type: "string" },
    namespace: { type: "string" },
    epoch: { type: "string" },
    "release-key": { type: "string" },
    "submitter-key": { type: "string" },
    measurement: { type: "string" },
    source: { type: "string" },
    revision: { type: "string" },
    recipe: { type: "string" },
    json: { type: "boolean" },
  });
  const log = required(values.log, "--log").replace(/\/+$/, "");
  const namespace = required(values.namespace, "--namespace");
  const releaseKey = readSigningKeyFile(required(values["release-key"], "--release-key"));
  const submitter = readSigningKeyFile(required(values["submitter-key"], "--submitter-key"));
  const sourceRevision = required(values.revision, "--revision");
  if (values.measurement !== undefined && values.source !== undefined)
    throw new UsageError("give --measurement or --source, not both");
  let measurement: Uint8Array;
  if (values.measurement !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(values.measurement)) throw new UsageError("--measurement: 64 hex digits");
    measurement = fromHex(values.measurement);
  } else {
    measurement = fromHex((await buildCore(resolve(values.source ?? OWN_SOURCE_ROOT))).measurement);
  }
  const epoch =
    values.epoch === undefined
      ? await nextEpoch(log, namespace)
      : intFlag(values.epoch, "--epoch", 1, 0, 0xffffffff);
  const res = await publishRelease({
    log,
    releaseKey,
    submitter,
    release: {
      namespace,
      epoch,
      measurement,
      sourceRevision,
      buildRecipe: values.recipe ?? DEFAULT_RECIPE,
      time: Date.now(),
    },
  });
  const body = (await res.json()) as { index?: number; code?: string; message?: string };
  if (!res.ok) {
    process.stderr.write(
      `bkv release publish: the log refused the release (${res.status} ${body.code}): ${body.message}\n`,
    );
    return 1;
  }
  const out = { namespace, epoch, index: body.index, measurement: toHex(measurement), sourceRevision };
  process.stdout.write(
    values.json === true
      ? `${JSON.stringify(out)}\n`
      : `release ${namespace} epoch ${epoch} logged at index ${body.index}: measurement ${out.measurement}, revision ${sourceRevision}\n`,
  );
  return 0;
}
