/**
 * The exit codes of `bkv`: a contract that scripts rely on. `bkv --help` prints them from here, and
 * a test checks that the README's table says the same.
 */
export const EXIT = { ok: 0, error: 1, wrongPin: 3, noRecord: 4, unavailable: 5, untrusted: 6 } as const;

/** Each code and its meaning, in the words of `bkv --help` (the README's table says the same). */
export const EXIT_CODES: readonly { code: number; meaning: string }[] = [
  { code: EXIT.ok, meaning: "success" },
  { code: EXIT.error, meaning: "anything else (usage, bad file, forbidden, …), with a message on stderr" },
  { code: EXIT.wrongPin, meaning: "wrong PIN; stderr says how many guesses remain" },
  { code: EXIT.noRecord, meaning: "no record: never registered, deleted, or destroyed by the last guess" },
  {
    code: EXIT.unavailable,
    meaning: "no verdict: the vault is unreachable or has no majority, or a host refused or failed",
  },
  { code: EXIT.untrusted, meaning: "a validation bundle did not verify (the message names the check)" },
];
