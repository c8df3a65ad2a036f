/**
 * `bkv vault register|recover|delete`: protect a backup key with a PIN, recover it, or delete the
 * record. Exit codes (a contract): 0 ok, 1 other error, 3 wrong PIN, 4 no record (both only from
 * the HSM's sealed answer), 5 no verdict: the vault could not be reached, or a host refused or
 * failed (its unsealed word about the PIN or the record is never believed), 6 a validation bundle
 * did not verify (the message says what had been sent).
 */
import { readFile } from "node:fs/promises";
import { AnswerBundleError, httpTransport, VaultClient } from "@bkv/client";
import { defaultCheckpointPath, fileCheckpointStore, nodeHpkeSealer } from "@bkv/client/node";
import { BkvError, ErrorCode, isBkvError } from "@bkv/wire";
import { parse, required, UsageError } from "../args.js";
import { devPaths, mintDevToken, readDevInfo, readTrust } from "../dev-files.js";
import { EXIT } from "../exit-codes.js";
import { fsReason, readKeyFile, writeKeyFile } from "../key-file.js";
import { askYesNo, readPin } from "../pin.js";

/** Transport errors: no verdict from the HSM (a host's own refusals and failures). */
const NO_VERDICT = new Set<string>([ErrorCode.Unavailable, ErrorCode.RateLimited, ErrorCode.HostError]);

function exitCodeFor(e: unknown): number {
  if (!isBkvError(e)) return EXIT.error;
  if (e instanceof AnswerBundleError || e.code.startsWith("BUNDLE_")) return EXIT.untrusted;
  if (NO_VERDICT.has(e.code)) return EXIT.unavailable;
  switch (e.code) {
    case ErrorCode.WrongPin:
      return EXIT.wrongPin;
    case ErrorCode.NoRecord:
      return EXIT.noRecord;
    default:
      return EXIT.error;
  }
}

/** The one-line message for a failed vault command: true about what was sent and who said what. */
export function failureText(err: BkvError): string {
  if (err instanceof AnswerBundleError) {
    return `a validation bundle that came with the vault's answer did not verify (${err.bundleError.code}: ${err.bundleError.message}); ${err.outcome}`;
  }
  if (err.code.startsWith("BUNDLE_"))
    return `refused the fleet before sending anything that depends on the PIN: ${err.message}`;
  if (err.code === ErrorCode.WrongPin) {
    return err.guessesRemaining === 0
      ? "wrong PIN; no guesses remain: the record is destroyed"
      : `wrong PIN; ${err.guessesRemaining} guess${err.guessesRemaining === 1 ? "" : "es"} remaining`;
  }
  if (NO_VERDICT.has(err.code)) return `no verdict from the vault: ${err.message}`;
  if (err.code === ErrorCode.RecordExists)
    return "this user already has a record in the vault; nothing was changed. Pass --replace to replace it (the old PIN and the key it protects stop working)";
  return err.message;
}

/** The exit code and message of a failed vault command. */
export function describeFailure(e: unknown): { code: number; err: BkvError; text: string } {
  const err = isBkvError(e) ? e : new BkvError(ErrorCode.Invalid, (e as Error)?.message ?? String(e));
  return { code: exitCodeFor(e), err, text: failureText(err) };
}

/**
 * The bearer token: --token-file FILE (its first line), --token TOKEN (seen by other local users in
 * the process list), or the environment variable BKV_TOKEN.
 */
async function bearerToken(file: string | undefined, flag: string | undefined): Promise<string> {
  if (file !== undefined && flag !== undefined)
    throw new UsageError("give --token-file or --token, not both");
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      throw new UsageError(`cannot read the token file ${file}: ${fsReason(e)}`);
    }
    const token = text.split("\n")[0]!.trim();
    if (token === "") throw new UsageError(`the token file ${file} is empty`);
    return token;
  }
  const token = flag ?? process.env.BKV_TOKEN;
  if (token === undefined || token === "")
    throw new UsageError("a bearer token is required: --token-file FILE, the BKV_TOKEN variable, or --token");
  return token;
}

export async function vaultCommand(argv: string[]): Promise<number> {
  const [op, ...rest] = argv;
  if (op !== "register" && op !== "recover" && op !== "delete") {
    throw new UsageError("expected register, recover or delete");
  }
  const { values } = parse(rest, {
    dev: { type: "string" },
    vault: { type: "string" },
    token: { type: "string" },
    "token-file": { type: "string" },
    trust: { type: "string" },
    checkpoint: { type: "string" },
    user: { type: "string" },
    key: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
    replace: { type: "boolean" },
    json: { type: "boolean" },
  });
  const user = required(values.user, "--user");
  const json = values.json === true;
  const report = (obj: Record<string, unknown>, text: string, toErr = false) => {
    if (json) process.stdout.write(`${JSON.stringify({ op, user, ...obj })}\n`);
    else (toErr ? process.stderr : process.stdout).write(`${text}\n`);
  };

  try {
    let url: string | string[];
    let token: string;
    let trustPath: string;
    if (values.dev !== undefined) {
      url = readDevInfo(values.dev).nodes.map((n) => n.url);
      token = await mintDevToken(values.dev, user);
      trustPath = values.trust ?? devPaths(values.dev).trustJson;
    } else {
      url = required(values.vault, "--vault (or --dev DIR)");
      token = await bearerToken(values["token-file"], values.token);
      trustPath = required(values.trust, "--trust");
    }
    const pins = readTrust(trustPath);
    if (op === "register" && values.key === undefined) throw new UsageError("register needs --key KEYFILE");
    if (op === "recover" && values.out === undefined) throw new UsageError("recover needs --out KEYFILE");
    const backupKey = op === "register" ? await readKeyFile(values.key!) : undefined;
    const client = new VaultClient({
      user,
      trust: {
        pins,
        checkpoints: fileCheckpointStore(values.checkpoint ?? defaultCheckpointPath(pins)),
      },
      transport: httpTransport({ url, token }),
      hpke: nodeHpkeSealer,
    });
    const pin = await readPin({ confirm: op === "register" });

    switch (op) {
      case "register": {
        let r: { guessesAllowed: number };
        try {
          r = await client.register(pin, backupKey!, { replace: values.replace === true });
        } catch (e) {
          // The HSM refused to replace the record: on a terminal, ask; elsewhere --replace decides.
          if (!isBkvError(e) || e.code !== ErrorCode.RecordExists || process.stdin.isTTY !== true) throw e;
          const yes = await askYesNo(
            `${user} already has a record in the vault. Replace it? Its PIN and the key it protects stop working`,
          );
          if (!yes) throw new UsageError(`${user}'s record is kept; nothing was changed`);
          r = await client.register(pin, backupKey!, { replace: true });
        }
        report(
          { ok: true, guessesAllowed: r.guessesAllowed, guessesRemaining: r.guessesAllowed },
          `registered: the backup key of ${user} is protected by the PIN (${r.guessesAllowed} wrong guesses allowed)`,
        );
        return EXIT.ok;
      }
      case "recover": {
        const r = await client.recover(pin);
        await writeKeyFile(values.out!, r.backupKey, { force: values.force === true });
        report(
          { ok: true, guessesAllowed: r.guessesAllowed, guessesRemaining: r.guessesAllowed, out: values.out },
          `recovered: backup key written to ${values.out}`,
        );
        return EXIT.ok;
      }
      case "delete":
        await client.delete(pin);
        report({ ok: true }, `deleted: the vault no longer holds a record for ${user}`);
        return EXIT.ok;
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const { code, err, text } = describeFailure(e);
    report(
      {
        ok: false,
        error: err.code,
        message: text,
        ...(err.guessesRemaining === undefined ? {} : { guessesRemaining: err.guessesRemaining }),
        ...(err instanceof AnswerBundleError
          ? { outcome: err.outcome, ...(err.verdict === undefined ? {} : { verdict: err.verdict.code }) }
          : {}),
      },
      `bkv vault ${op}: ${text}`,
      true,
    );
    if (json && err.code === ErrorCode.WrongPin) process.stderr.write(`bkv vault ${op}: ${text}\n`);
    return code;
  }
}
