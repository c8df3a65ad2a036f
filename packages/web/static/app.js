// The Backup Key Vault browser demo. Plain ES module over the SDK's browser build.
//
// What stays in this page's memory only, never in the DOM, the URL, the console or storage: the
// backup key K, the PIN, and a passkey's PRF output (the SDK keeps that inside enrollPasskey /
// recoverWithPasskey). localStorage holds only the largest log checkpoint seen. The demo server gets
// ciphertext, the file's metadata and passkey wraps (useless without the passkey).
import {
  BACKUP_HEADER_SIZE,
  backupDecryptStream,
  backupEncryptStream,
  decodeBackupHeader,
  enrollPasskey,
  generateBackupKey,
  httpTransport,
  parsePasskeyWrap,
  recoverWithPasskey,
  sameCheckpoint,
  VaultClient,
} from "/sdk/bkv-client.js";

const $ = (id) => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el;
};

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const TOKEN_REFRESH_MS = 50 * 60 * 1000; // tokens last an hour

/** @type {{hosts: string[], pins: object, rpName: string} | null} */
let config = null;
/** user → {token, at} */
const tokens = new Map();
/** K of the latest backup made on this page (memory only). @type {Uint8Array | null} */
let backupKey = null;
let backupUser = null;
/** The user whose PIN record this page saw destroyed. */
const lockedUsers = new Set();
let restoredUrl = null;

// ---------------------------------------------------------------------------------------------
// Messages

/** A status message; `scroll` brings it into view (outcomes do, messages of work in progress do not). */
function say(text, scroll = true) {
  $("error").textContent = "";
  $("status").textContent = text;
  if (scroll) $("status").scrollIntoView({ block: "nearest" });
}

function fail(text) {
  $("status").textContent = "";
  $("error").textContent = text;
  $("error").scrollIntoView({ block: "nearest" });
}

/** What went wrong, for people: by error code, never with secrets (messages carry none). */
function explain(e, what) {
  const code = typeof e?.code === "string" ? e.code : "";
  // A bundle on one of the vault's answers failed after the (sealed) login had been sent: the SDK
  // finished it first, and says what the vault did.
  if (typeof e?.outcome === "string")
    return `The keys that came with the vault's answer could not be verified (${e.bundleError?.code ?? code}); ${e.outcome}. Details: ${e.bundleError?.message ?? e.message}.`;
  if (code.startsWith("BUNDLE_"))
    return `The vault's keys could not be verified (${code}); nothing was sent. Details: ${e.message}.`;
  switch (code) {
    case "WRONG_PIN":
      return `Wrong PIN. ${e.guessesRemaining} ${e.guessesRemaining === 1 ? "guess" : "guesses"} remaining.`;
    case "NO_RECORD":
      return "There is no PIN record for this user: never registered, deleted, or destroyed after too many wrong PINs.";
    case "UNAVAILABLE":
      return `The vault is unavailable right now. Try again later. (${e.message})`;
    case "RATE_LIMITED":
      return "Too many requests; wait a little and try again.";
    case "HOST_ERROR":
      // An unsealed answer from a host: never a verdict on the PIN or the record.
      return `The vault's host refused the request; that says nothing about your PIN. (${e.message})`;
    case "FORBIDDEN":
      return `Not allowed: ${e.message}`;
    case "WRONG_KEY":
      return `${what} failed: ${e.message} (WRONG_KEY).`;
    case "AUTHENTICATION":
    case "TRUNCATED":
    case "MALFORMED":
      return `${what} failed: the backup does not decrypt with this key or was altered (${code}).`;
    case "":
      if (e?.name === "NotAllowedError") return `${what} was cancelled or not allowed by the browser.`;
      return `${what} failed: ${e?.message ?? String(e)}`;
    default:
      return `${what} failed (${code}): ${e.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The demo server: config, development tokens, storage

async function loadConfig() {
  const res = await fetch("/config.json");
  if (!res.ok) throw new Error(`cannot load /config.json (HTTP ${res.status})`);
  return res.json();
}

function userFrom(input) {
  const user = input.value.trim();
  if (!NAME.test(user) || user === "." || user === "..") {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    throw new Error("Enter a user name: 1 to 64 letters, digits, dots, dashes or underscores.");
  }
  input.removeAttribute("aria-invalid");
  return user;
}

async function tokenFor(user) {
  const t = tokens.get(user);
  if (t !== undefined && Date.now() - t.at < TOKEN_REFRESH_MS) return t.token;
  const res = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.token !== "string")
    throw new Error(`no development token: ${body.message ?? `HTTP ${res.status}`}`);
  tokens.set(user, { token: body.token, at: Date.now() });
  $("token-state").textContent = `Development token for ${user} (valid for an hour).`;
  return body.token;
}

const storageUrl = (user, name) => `/storage/${encodeURIComponent(user)}/${encodeURIComponent(name)}`;

async function storageFetch(user, name, init = {}) {
  const headers = { ...(init.headers ?? {}), authorization: `Bearer ${await tokenFor(user)}` };
  return fetch(storageUrl(user, name), { ...init, headers });
}

async function storageError(res, what) {
  const body = await res.json().catch(() => ({}));
  return new Error(`${what}: ${body.message ?? `HTTP ${res.status}`}`);
}

async function getJson(user, name, fallback) {
  const res = await storageFetch(user, name);
  if (res.status === 404 && fallback !== undefined) return fallback;
  if (!res.ok) throw await storageError(res, `cannot read ${name}`);
  return JSON.parse(await res.text());
}

async function putJson(user, name, value) {
  const res = await storageFetch(user, name, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: JSON.stringify(value),
  });
  if (!res.ok) throw await storageError(res, `cannot store ${name}`);
}

/** PUT a blob with upload progress (fetch has none). */
async function upload(user, name, blob, onProgress) {
  const token = await tokenFor(user);
  await new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", storageUrl(user, name));
    xhr.setRequestHeader("authorization", `Bearer ${token}`);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) onProgress(ev.loaded, ev.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else {
        let message = `HTTP ${xhr.status}`;
        try {
          message = JSON.parse(xhr.responseText).message ?? message;
        } catch {
          // not JSON
        }
        reject(new Error(`upload failed: ${message}`));
      }
    };
    xhr.onerror = () => reject(new Error("upload failed: the storage could not be reached"));
    xhr.send(blob);
  });
}

// ---------------------------------------------------------------------------------------------
// The vault

/**
 * The largest checkpoint this browser has seen, in localStorage. save(expected, next) is a
 * compare-and-swap (under a Web Lock across tabs where the browser has them), so two tabs never
 * store a smaller checkpoint over a larger one. Beside it, the artifacts whose evidence this browser
 * has verified, so the evidence is checked once per epoch.
 */
function localCheckpointStore(namespace) {
  const key = `bkv.checkpoint.${namespace}`;
  const verifiedKey = `bkv.verified.${namespace}`;
  const read = () => {
    try {
      const v = JSON.parse(localStorage.getItem(key) ?? "null");
      if (v !== null && Number.isInteger(v.size) && v.size >= 0 && typeof v.root === "string") {
        const cp = { size: v.size, root: v.root };
        if (Number.isInteger(v.epoch)) cp.epoch = v.epoch;
        // The fleet verified at that epoch (another fleet at the same epoch is refused).
        if (typeof v.artifact === "string") cp.artifact = v.artifact;
        return cp;
      }
    } catch {
      // unreadable: as if none was seen
    }
    return null;
  };
  const verified = () => {
    try {
      const v = JSON.parse(localStorage.getItem(verifiedKey) ?? "[]");
      return Array.isArray(v) ? v.filter((k) => typeof k === "string") : [];
    } catch {
      return [];
    }
  };
  return {
    async load() {
      return read();
    },
    async save(expected, next) {
      const swap = () => {
        // The SDK's own comparison (size, root, epoch and the fleet verified there).
        if (!sameCheckpoint(read(), expected)) return false;
        localStorage.setItem(
          key,
          JSON.stringify({ size: next.size, root: next.root, epoch: next.epoch, artifact: next.artifact }),
        );
        return true;
      };
      return navigator.locks ? navigator.locks.request(key, swap) : swap();
    },
    verified: {
      async has(k) {
        return verified().includes(k);
      },
      async add(k) {
        localStorage.setItem(verifiedKey, JSON.stringify([...verified(), k].slice(-64)));
      },
    },
  };
}

function vaultFor(user) {
  return new VaultClient({
    user,
    trust: { pins: config.pins, checkpoints: localCheckpointStore(config.pins.namespace) },
    transport: httpTransport({ url: config.hosts, token: () => tokenFor(user) }),
  });
}

// ---------------------------------------------------------------------------------------------
// Streams with progress

function counting(total, onProgress) {
  let done = 0;
  return new TransformStream({
    transform(chunk, controller) {
      done += chunk.byteLength;
      onProgress(done, total);
      controller.enqueue(chunk);
    },
  });
}

async function collect(stream) {
  const parts = [];
  await stream.pipeTo(
    new WritableStream({
      write(chunk) {
        parts.push(chunk);
      },
    }),
  );
  return parts;
}

function progress(which, label) {
  const bar = $(`${which}-progress`);
  const text = $(`${which}-progress-text`);
  let shown = -1;
  return {
    update(done, total) {
      const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
      bar.value = pct;
      // Announce in steps of 10 % so screen readers are not flooded.
      if (pct === 100 || pct >= shown + 10) {
        shown = pct;
        text.textContent = `${label}: ${pct} %`;
      }
    },
    phase(newLabel) {
      label = newLabel;
      shown = -1;
      bar.value = 0;
      text.textContent = `${label}…`;
    },
    done(message) {
      bar.value = 100;
      text.textContent = message;
    },
    reset() {
      bar.value = 0;
      text.textContent = "";
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Actions

function setKey(user, key) {
  backupKey?.fill(0);
  backupKey = key;
  backupUser = user;
  $("register-pin").disabled = key === null;
  $("add-passkey").disabled = key === null;
}

async function getToken() {
  const user = userFrom($("user"));
  tokens.delete(user);
  await tokenFor(user);
  say(`Signed in as ${user} with a development token.`);
}

async function backUp() {
  const user = userFrom($("user"));
  const file = $("file").files?.[0];
  if (file === undefined) {
    $("file").focus();
    throw new Error("Choose a file to back up.");
  }
  await tokenFor(user);
  const p = progress("backup", "Encrypting");
  p.phase("Encrypting");
  say(`Encrypting ${file.name} in this browser…`, false);
  const key = generateBackupKey();
  let parts;
  try {
    parts = await collect(
      file
        .stream()
        .pipeThrough(counting(file.size, (d, t) => p.update(d, t)))
        .pipeThrough(backupEncryptStream(key)),
    );
  } catch (e) {
    key.fill(0);
    throw e;
  }
  const ciphertext = new Blob(parts, { type: "application/octet-stream" });
  p.phase("Uploading");
  say("Uploading the encrypted backup…", false);
  try {
    await upload(user, "backup.bkv", ciphertext, (d, t) => p.update(d, t));
    await putJson(user, "backup.json", { name: file.name, size: file.size, type: file.type });
    // Passkey wraps of an earlier backup hold its key, not this one: an empty list replaces them
    // (a list that always exists spares later reads a 404).
    await putJson(user, "passkeys.json", []);
  } catch (e) {
    key.fill(0);
    throw e;
  }
  setKey(user, key);
  renderPasskeys([]);
  p.done(`Backed up: ${ciphertext.size} bytes of ciphertext stored.`);
  say(`Backed up ${file.name}. Now protect its key with a PIN or a passkey.`);
  $("pin").focus();
}

function requireKey() {
  const user = userFrom($("user"));
  if (backupKey === null || backupUser !== user)
    throw new Error(`Back up a file as ${user} first: the key to protect is made by the backup.`);
  return user;
}

async function protectWithPin() {
  const user = requireKey();
  const input = $("pin");
  const again = $("pin-again");
  const pin = input.value;
  if (pin.length < 4) {
    input.focus();
    throw new Error("Choose a PIN of at least 4 characters.");
  }
  if (again.value !== pin) {
    again.value = "";
    again.focus();
    throw new Error("The two PINs differ: type the same PIN twice (a mistyped PIN would lock the key away).");
  }
  again.value = "";
  say("Protecting the backup key with your PIN…", false);
  try {
    let guessesAllowed;
    try {
      ({ guessesAllowed } = await vaultFor(user).register(pin, backupKey));
    } catch (e) {
      if (e?.code !== "RECORD_EXISTS") throw e;
      // The vault already protects a key for this user: replace it only if the user says so.
      const yes = window.confirm(
        `${user} already has a PIN record in the vault. Replace it? The old PIN and the backup key it protects stop working.`,
      );
      if (!yes) {
        say(`Kept ${user}'s existing PIN record; nothing was changed.`);
        return;
      }
      ({ guessesAllowed } = await vaultFor(user).register(pin, backupKey, { replace: true }));
    }
    lockedUsers.delete(user);
    say(`The backup key is protected by your PIN. The vault allows ${guessesAllowed} wrong guesses.`);
  } finally {
    input.value = "";
  }
}

function renderPasskeys(wraps) {
  const list = $("passkeys");
  list.replaceChildren(
    ...wraps.map((w, i) => {
      const li = document.createElement("li");
      const when = new Date(w.createdAt).toLocaleString();
      li.textContent = `${w.label ?? `Passkey ${i + 1}`} (added ${when})`;
      return li;
    }),
  );
}

/**
 * The user's passkey wraps from storage, checked (the storage is untrusted). Wraps of an older
 * version, which do not name the key they hold, are left out (INVALID); `old` counts them.
 */
async function loadWraps(user) {
  const stored = await getJson(user, "passkeys.json", []);
  if (!Array.isArray(stored)) throw new Error("passkeys.json in storage is not a list");
  const wraps = [];
  let old = 0;
  for (const w of stored) {
    try {
      wraps.push(parsePasskeyWrap(w));
    } catch (e) {
      if (e?.code !== "INVALID") throw e;
      old++;
    }
  }
  return { wraps, old };
}

/** The key id in the header of the user's stored backup: the K a passkey must give back. */
async function storedBackupKeyId(user) {
  const res = await storageFetch(user, "backup.bkv");
  if (!res.ok || res.body === null) throw await storageError(res, "cannot download the backup");
  const reader = res.body.getReader();
  const head = new Uint8Array(BACKUP_HEADER_SIZE);
  let got = 0;
  try {
    while (got < head.length) {
      const { done, value } = await reader.read();
      if (done) break;
      const n = Math.min(value.length, head.length - got);
      head.set(value.subarray(0, n), got);
      got += n;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (got < head.length) throw new Error("the stored backup is too short to be a backup");
  return decodeBackupHeader(head).keyId;
}

async function addPasskey() {
  const user = requireKey();
  const label = $("passkey-label").value.trim();
  say("Follow your browser's prompt to create a passkey…", false);
  const wrap = await enrollPasskey({
    user,
    userDisplayName: user,
    rp: { name: config.rpName },
    backupKey,
    ...(label === "" ? {} : { label }),
  });
  // Only wraps of this backup's key stay beside the new one.
  const wraps = (await loadWraps(user)).wraps.filter((w) => w.keyId === wrap.keyId);
  wraps.push(wrap);
  await putJson(user, "passkeys.json", wraps);
  renderPasskeys(wraps);
  $("passkey-label").value = "";
  say(
    `Passkey added: ${wraps.length} ${wraps.length === 1 ? "passkey protects" : "passkeys protect"} this backup.`,
  );
}

function showLocked(user, locked) {
  if (locked) lockedUsers.add(user);
  $("locked").hidden = !locked;
  $("locked-passkey").hidden = true;
  // Mention a passkey only to a user who has one.
  if (locked)
    loadWraps(user).then(
      ({ wraps }) => {
        $("locked-passkey").hidden = wraps.length === 0;
      },
      () => {},
    );
}

async function restoreWith(user, key) {
  const p = progress("restore", "Downloading and decrypting");
  try {
    const meta = await getJson(user, "backup.json");
    const res = await storageFetch(user, "backup.bkv");
    if (!res.ok || res.body === null) throw await storageError(res, "cannot download the backup");
    const total = Number(res.headers.get("content-length") ?? 0);
    p.phase("Downloading and decrypting");
    say("Downloading and decrypting the backup in this browser…", false);
    const parts = await collect(
      res.body.pipeThrough(counting(total, (d, t) => p.update(d, t))).pipeThrough(backupDecryptStream(key)),
    );
    const name = typeof meta.name === "string" && meta.name !== "" ? meta.name : "restored-backup";
    const type = typeof meta.type === "string" ? meta.type : "";
    const blob = new Blob(parts, { type: type === "" ? "application/octet-stream" : type });
    if (restoredUrl !== null) URL.revokeObjectURL(restoredUrl);
    restoredUrl = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = restoredUrl;
    a.download = name;
    a.dataset.testid = "restored-link";
    a.textContent = `Save ${name} (${blob.size} bytes)`;
    const out = $("restored");
    out.replaceChildren("Restored: ", a);
    out.hidden = false;
    p.done(`Restored ${blob.size} bytes.`);
    say(`Restored ${name}. Use the link to save it.`);
    a.focus();
  } finally {
    key.fill(0);
  }
}

async function recoverWithPin() {
  const user = userFrom($("restore-user"));
  const input = $("restore-pin");
  const pin = input.value;
  input.value = "";
  if (pin === "") {
    input.focus();
    throw new Error("Enter your PIN.");
  }
  say("Checking the vault's keys and recovering the backup key with your PIN…", false);
  let key;
  try {
    ({ backupKey: key } = await vaultFor(user).recover(pin));
  } catch (e) {
    // The HSM's sealed verdict, also when a bundle problem is reported after a finished login.
    const verdict = e?.verdict ?? e;
    if (verdict?.code === "WRONG_PIN") showLocked(user, verdict.guessesRemaining === 0);
    if (e?.code === "NO_RECORD") {
      const destroyed = lockedUsers.has(user) || /destroyed/.test(e.message ?? "");
      showLocked(user, destroyed);
      if (destroyed) {
        fail(
          "Locked: every allowed PIN guess was used and the record is destroyed; the PIN cannot recover it.",
        );
        return;
      }
    }
    if (e?.code === "WRONG_PIN" && e.guessesRemaining === 0) {
      fail("Wrong PIN, and it was the last guess allowed: the record is destroyed. Locked.");
      return;
    }
    input.focus();
    throw e;
  }
  showLocked(user, false);
  await restoreWith(user, key);
}

async function recoverPasskey() {
  const user = userFrom($("restore-user"));
  const { wraps, old } = await loadWraps(user);
  if (wraps.length === 0 && old > 0)
    throw new Error(
      `${user}'s passkeys were added by an older version of this page, whose wraps do not name the key they hold: recover with the PIN, then add the passkey again.`,
    );
  if (wraps.length === 0)
    throw new Error(`No passkey protects ${user}'s backup: recover with the PIN instead.`);
  // The passkey must give back the key of the backup being restored, not one an old wrap holds.
  const keyId = await storedBackupKeyId(user);
  say("Follow your browser's prompt to use your passkey…", false);
  const { backupKey: key } = await recoverWithPasskey({ user, wraps, keyId });
  await restoreWith(user, key);
}

// ---------------------------------------------------------------------------------------------
// Wiring: every action is a real button; one action at a time.

let busy = false;

function action(id, what, fn) {
  const button = $(id);
  button.addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    document.body.setAttribute("aria-busy", "true");
    const buttons = [...document.querySelectorAll("button")];
    const wasDisabled = buttons.map((b) => b.disabled);
    for (const b of buttons) b.disabled = true;
    try {
      await fn();
    } catch (e) {
      fail(explain(e, what));
    } finally {
      buttons.forEach((b, i) => {
        b.disabled = wasDisabled[i];
      });
      $("register-pin").disabled = backupKey === null;
      $("add-passkey").disabled = backupKey === null;
      busy = false;
      document.body.removeAttribute("aria-busy");
      // How many actions have finished (tests wait on it).
      document.body.dataset.done = String(Number(document.body.dataset.done ?? "0") + 1);
    }
  });
}

async function start() {
  try {
    config = await loadConfig();
  } catch (e) {
    fail(`The demo cannot start: ${e.message}`);
    return;
  }
  for (const form of document.querySelectorAll("form"))
    form.addEventListener("submit", (e) => e.preventDefault());
  action("get-token", "Getting a token", getToken);
  action("backup", "Backup", backUp);
  action("register-pin", "Protecting with a PIN", protectWithPin);
  action("add-passkey", "Adding a passkey", addPasskey);
  action("recover-pin", "Recovery with the PIN", recoverWithPin);
  action("recover-passkey", "Recovery with a passkey", recoverPasskey);
  $("user").addEventListener("change", () => {
    const u = $("user").value.trim();
    if ($("restore-user").value === "") $("restore-user").value = u;
  });
  document.body.dataset.ready = "true";
  say("Ready.");
}

start();
