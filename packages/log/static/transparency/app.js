// The transparency page: checks the log in the browser with the SDK's own code (bkv-client.js),
// against the keys the visitor pins (from the URL fragment or the form), never the server's word.
import * as bkv from "./bkv-client.js";

const $ = (id) => document.getElementById(id);
const hex = (b) => bkv.toHex(b);
const short = (h) => `${h.slice(0, 16)}…`;

function setText(el, text, cls) {
  el.textContent = text;
  if (cls) el.className = cls;
}

function row(dl, term, value, cls) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (cls) dd.className = cls;
  dl.append(dt, dd);
}

/** "1 entry", "2 entries". */
function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

const devFlags = { testRoot: false, allowSmallFleet: false };

function pinsFromFragment() {
  const p = new URLSearchParams(location.hash.slice(1));
  $("logKey").value = p.get("logKey") ?? "";
  $("witnessKeys").value = p.getAll("witnessKey").join("\n");
  $("threshold").value = p.get("threshold") ?? String(Math.max(1, p.getAll("witnessKey").length));
  $("vendorRoot").value = p.get("vendorRoot") ?? "";
  $("releaseKey").value = p.get("releaseKey") ?? "";
  // Development only (bkv dev's link): its vendor root is a test root, small fleets are allowed.
  devFlags.testRoot = p.get("testRoot") === "1";
  devFlags.allowSmallFleet = p.get("allowSmallFleet") === "1";
  return p.has("logKey");
}

function readPins() {
  return {
    logKey: $("logKey").value.trim(),
    witnessKeys: $("witnessKeys")
      .value.split("\n")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    threshold: Number($("threshold").value),
    vendorRoot: $("vendorRoot").value.trim(),
    releaseKey: $("releaseKey").value.trim(),
  };
}

/** A refusal as the log answers it ({code, message}), as text; the page shows it as text only. */
async function refusal(path, r) {
  try {
    const j = await r.json();
    if (typeof j.code === "string" && typeof j.message === "string")
      return `${path}: HTTP ${r.status} ${j.code}: ${j.message}`;
  } catch {
    // not the log's error shape
  }
  return `${path}: HTTP ${r.status}`;
}

async function fetchBytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(await refusal(path, r));
  return new Uint8Array(await r.arrayBuffer());
}

/** Remember the largest checkpoint this browser verified, and demand consistency with it. */
async function checkAgainstSeen(log, cp) {
  const key = `bkv-transparency:${cp.origin}`;
  const seen = JSON.parse(localStorage.getItem(key) ?? "null");
  let verdict = "first visit: nothing to compare with";
  if (seen !== null) {
    const root = bkv.fromBase64(seen.root);
    if (cp.size < seen.size)
      throw new Error(`rollback: this browser saw ${seen.size} entries, the log now shows ${cp.size}`);
    if (cp.size === seen.size && hex(root) !== hex(cp.root))
      throw new Error(`split view: another tree of size ${cp.size}`);
    if (cp.size > seen.size && seen.size > 0) {
      bkv.verifyConsistency(seen.size, cp.size, root, cp.root, await log.consistencyProof(seen.size));
    }
    verdict = `consistent with the checkpoint of size ${seen.size} this browser saw before`;
  }
  localStorage.setItem(key, JSON.stringify({ size: cp.size, root: bkv.toBase64(cp.root) }));
  return verdict;
}

function renderFleet(index, entry, artifact, audit, previous) {
  const box = document.createElement("article");
  box.className = "fleet";
  const h = document.createElement("h3");
  h.textContent = `${entry.namespace}, epoch ${entry.epoch} (entry ${index})`;
  const dl = document.createElement("dl");
  row(dl, "Fleet id", hex(artifact.fleetId));
  row(dl, "Code measurement", hex(artifact.measurement));
  row(
    dl,
    "Policy",
    `guess limit ${artifact.policy.guessLimit}, ${artifact.policy.n} members, quorum ${artifact.policy.quorum}`,
  );
  for (const k of artifact.keys) row(dl, `Key: ${k.role}`, hex(k.key));
  row(dl, "Members", artifact.members.map((m) => `${m.platform} ${short(hex(m.signKey))}`).join(", "));
  row(
    dl,
    "Valid",
    `${new Date(artifact.notBefore).toISOString()} to ${new Date(artifact.notAfter).toISOString()}`,
  );
  if (previous !== undefined) {
    const changed = artifact.keys
      .filter((k) => hex(bkv.artifactKey(previous, k.role)) !== hex(k.key))
      .map((k) => k.role);
    row(
      dl,
      `Since epoch ${previous.epoch}`,
      changed.length === 0 ? "same keys" : `new keys: ${changed.join(", ")}`,
    );
  }
  const frozen = audit.report?.fleet;
  if (frozen !== undefined && frozen !== null)
    row(
      dl,
      "Successors",
      `code released under ${frozen.releaseKey}; guess limit at most ${frozen.maxSuccessorGuessLimit}`,
    );
  if (audit.error !== undefined) row(dl, "Evidence", audit.error, "bad");
  else {
    const failed = audit.report.checks.filter(
      (c) => !c.ok && !(audit.skipAttestations && c.name.startsWith("attestation.")),
    );
    const vendor = audit.report.fleet?.members.map((m) => m.vendor)[0] ?? "";
    row(
      dl,
      "Evidence",
      failed.length === 0
        ? `${audit.report.checks.length} checks hold${audit.skipAttestations ? " (attestations not checked: no vendor root given)" : ""}; ${vendor}`
        : `FAILED: ${failed.map((c) => `${c.name} (${c.detail})`).join("; ")}`,
      failed.length === 0 ? "ok" : "bad",
    );
  }
  box.append(h, dl);
  return box;
}

/** A release entry (measurement, source revision, build recipe), its signature checked if a release key is pinned. */
function renderRelease(index, entry, release, releaseKey) {
  const box = document.createElement("article");
  box.className = "fleet release";
  const h = document.createElement("h3");
  h.textContent = `Release: ${entry.namespace}, epoch ${entry.epoch} (entry ${index})`;
  const dl = document.createElement("dl");
  row(dl, "Code measurement", hex(release.measurement));
  row(dl, "Source revision", release.sourceRevision);
  row(dl, "Build recipe", release.buildRecipe);
  row(dl, "Signed at", new Date(release.time).toISOString());
  const problems = [];
  if (release.namespace !== entry.namespace || release.epoch !== entry.epoch)
    problems.push(`it names (${release.namespace}, ${release.epoch}), not its log entry's`);
  if (hex(entry.evidenceDigest) !== hex(bkv.sha256(new Uint8Array(0))))
    problems.push("its evidence is not empty");
  if (/^[0-9a-f]{64}$/.test(releaseKey)) {
    if (!bkv.verifyRelease(release, bkv.fromHex(releaseKey)))
      problems.push("it is NOT signed by the pinned release key");
  }
  row(
    dl,
    "Release",
    problems.length > 0
      ? `FAILED: ${problems.join("; ")}`
      : /^[0-9a-f]{64}$/.test(releaseKey)
        ? "signed by the pinned release key"
        : "signature not checked (no release key given)",
    problems.length > 0 ? "bad" : "ok",
  );
  box.append(h, dl);
  return box;
}

async function run() {
  $("error").textContent = "";
  $("checkpoint").replaceChildren();
  $("witnesses").replaceChildren();
  $("fleets").replaceChildren();
  const pins = readPins();
  $("results-checkpoint").hidden = false;
  $("results-fleets").hidden = false;
  setText($("status"), "Checking the checkpoint…");
  const res = await fetch("../checkpoint");
  if (!res.ok) throw new Error(await refusal("checkpoint", res));
  const note = await res.text();
  const opened = bkv.openCosignedCheckpoint(note, {
    logKey: pins.logKey,
    witnessKeys: pins.witnessKeys,
    threshold: pins.threshold,
  });
  const cp = opened.checkpoint;
  const log = new bkv.TiledLog({ fetch: (path) => fetchBytes(`../${path}`) }, cp.size, cp.root);
  await log.verifiedRoot();
  const dl = $("checkpoint");
  row(dl, "Log", cp.origin);
  row(dl, "Entries", String(cp.size));
  row(dl, "Root hash", hex(cp.root));
  row(dl, "History", await checkAgainstSeen(log, cp), "ok");
  for (const key of pins.witnessKeys) {
    const li = document.createElement("li");
    const name = key.split("+")[0];
    try {
      const sig = bkv.openNote(note, [bkv.noteVerifier(key)]).verified[0];
      li.textContent = `${name}: cosigned${sig?.timestamp ? ` at ${new Date(sig.timestamp * 1000).toISOString()}` : ""}`;
      li.className = "ok";
    } catch {
      li.textContent = `${name}: no valid cosignature`;
      li.className = "bad";
    }
    $("witnesses").append(li);
  }
  setText($("status"), `Reading ${plural(cp.size, "entry", "entries")} from the tiles…`);
  const vendorRoots = /^[0-9a-f]{64}$/.test(pins.vendorRoot)
    ? [{ name: "the pinned vendor root", key: pins.vendorRoot, test: devFlags.testRoot }]
    : [];
  const latest = new Map();
  for (let t = 0; t * 256 < cp.size; t++) {
    const entries = await log.entries(t);
    for (const [i, bytes] of entries.entries()) {
      const index = t * 256 + i;
      const entry = bkv.decodeLogEntry(bytes);
      let artifact;
      try {
        artifact = bkv.decodeArtifact(entry.artifact);
      } catch (e) {
        // A release entry is no fleet: decoded as a release, or the entry fails as it did.
        let release;
        try {
          release = bkv.decodeSignedRelease(entry.artifact);
        } catch {
          throw e;
        }
        $("fleets").append(renderRelease(index, entry, release, pins.releaseKey));
        continue;
      }
      let audit;
      try {
        const evidence = await fetchBytes(`../evidence/${hex(entry.evidenceDigest)}`);
        if (hex(bkv.sha256(evidence)) !== hex(entry.evidenceDigest))
          throw new Error("the evidence does not match its digest");
        const st = bkv.decodeStatement(bkv.decodeEvidence(evidence).statement);
        const report = bkv.auditEvidence(evidence, {
          vendorRoots,
          expectedMeasurement: st.measurement,
          // Where the fleet is published: the same list of checks as bkv audit and bkv monitor.
          expectedNamespace: entry.namespace,
          expectedEpoch: entry.epoch,
          expectedLogKey: bkv.parseVerifierKey(pins.logKey).publicKey,
          // With a release key pinned: the fleet must have frozen it (its successors' code is
          // accepted only under it).
          ...(/^[0-9a-f]{64}$/.test(pins.releaseKey)
            ? { expectedReleaseKey: bkv.fromHex(pins.releaseKey) }
            : {}),
          // The fleet checks its successor's log entries under the witnesses it froze: they must
          // be the ones this page checks the log's checkpoints with (statement.witnesses).
          expectedWitnessPolicy: {
            witnesses: pins.witnessKeys.map((k) => {
              const v = bkv.parseVerifierKey(k);
              return { name: v.name, key: v.publicKey };
            }),
            threshold: pins.threshold,
          },
          maxGuessLimit: 100,
          allowTestRoots: devFlags.testRoot,
          allowSmallFleet: devFlags.allowSmallFleet,
        });
        audit = { report, skipAttestations: vendorRoots.length === 0 };
      } catch (e) {
        audit = { error: e.message };
      }
      $("fleets").append(renderFleet(index, entry, artifact, audit, latest.get(entry.namespace)));
      latest.set(entry.namespace, artifact);
    }
  }
  setText(
    $("status"),
    `Checked: ${plural(cp.size, "entry", "entries")}, ${plural(opened.cosigners.length, "witness cosignature", "witness cosignatures")}.`,
  );
}

$("pins").addEventListener("submit", (ev) => {
  ev.preventDefault();
  run().catch((e) => {
    setText($("status"), "");
    setText($("error"), `The log did not check out: ${e.message}`);
  });
});
if (pinsFromFragment()) $("pins").requestSubmit();
else setText($("status"), "Nothing checked yet: paste the keys you pin above, then press Check the log.");
