// Verification page: hash a dropped file in the browser (WebCrypto SHA-256), or take a pasted
// sha256 / CID, and ask the ledger for its verdict. The file's bytes are never sent anywhere.
import { api, article, downloadJson, el, problemBlock, setUpSignIn, show, timelineList, token, when } from "./common.js";

/** Largest file hashed in the browser (it is read into memory whole). */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

/**
 * Where the evidence bundle of a verdict is (GET /v1/evidence/{sha256}): only anchored documents
 * have one. The bundle verifies offline with `ledger evidence verify` (docs/evidence.md).
 */
export function evidenceBundlePath(verdict) {
  if (!verdict || verdict.status === "NOT_ANCHORED" || !/^0x[0-9a-f]{64}$/.test(verdict.sha256)) return null;
  return `/v1/evidence/${verdict.sha256}`;
}

/** Fetch the bundle with the signed-in token (a plain link could not carry it) and save it. */
async function downloadBundle(path, sha256, status) {
  show(status, "Building the evidence bundle (it reads the chain's block headers; this can take a moment)…");
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
      credentials: "omit", cache: "no-store" });
  } catch (error) {
    show(status, problemBlock("The evidence bundle could not be fetched", 0, { title: String(error) }));
    return;
  }
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { problem = null; }
    show(status, problemBlock("The evidence bundle could not be built", response.status, problem));
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: `evidence-${sha256.slice(2, 18)}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  show(status, "Evidence bundle saved. Check it offline with: ledger evidence verify FILE --trusted-block <block hash>");
}

const VERDICT_WORDS = {
  VALID: ["ok", "Anchored and valid", "This document is anchored on the ledger and every check passed."],
  VALID_WITH_WARNINGS: ["warn", "Anchored — valid, with warnings",
    "This document is anchored on the ledger and unaltered; read the warnings below."],
  INVALID: ["bad", "Anchored but NOT valid", "This document is anchored, but a check failed: do not rely on it."],
  NOT_ANCHORED: ["bad", "Not found — does not match any anchored document",
    "No document with this fingerprint is anchored on the ledger. If you expected one, this copy may have been altered."],
};
const OUTCOME_WORDS = { pass: "✔ pass", warn: "⚠ warning", fail: "✘ FAIL", skip: "– skipped" };

const verdictNode = document.getElementById("verdict");
const details = document.getElementById("details");
const zone = document.getElementById("drop-zone");
const fileInput = document.getElementById("file-input");

function say(...children) {
  show(verdictNode, ...children);
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function sizeText(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${bytes} bytes`;
}

async function checkFile(file) {
  if (!file) return;
  show(details);
  if (file.size > MAX_FILE_BYTES) {
    say(el("div", { class: "verdict bad" }, el("h3", {}, "File too large to check here"),
      el("p", {}, `${file.name} is ${sizeText(file.size)}; this page hashes files of up to ` +
        `${sizeText(MAX_FILE_BYTES)}. Use the command line instead: ledger api --as YOUR-KEY verify FILE`)));
    return;
  }
  if (!(window.crypto && crypto.subtle)) {
    say(el("div", { class: "verdict bad" }, el("h3", {}, "This browser cannot hash files here"),
      el("p", {}, "WebCrypto is only available on HTTPS (or localhost). Open the page over HTTPS, or paste the sha256.")));
    return;
  }
  say(el("p", {}, `Computing the SHA-256 of ${file.name} (${sizeText(file.size)}) in your browser…`));
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  await verify(`/v1/verify/0x${hex(digest)}`, { name: file.name, size: file.size });
}

async function checkText(text) {
  const value = text.trim();
  show(details);
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(value)) {
    await verify(`/v1/verify/0x${value.replace(/^0x/, "").toLowerCase()}`, null);
  } else if (/^[A-Za-z0-9]{10,100}$/.test(value)) {
    await verify(`/v1/verify/cid/${value}`, null);
  } else {
    say(el("div", { class: "verdict bad" }, el("h3", {}, "Not a sha256 or a CID"),
      el("p", {}, "Paste 64 hexadecimal digits (optionally starting with 0x), or a CID such as bafkrei…")));
  }
}

async function verify(path, file) {
  if (!token()) {
    say(el("div", { class: "verdict bad" }, el("h3", {}, "Sign in first"),
      el("p", {}, "Verification needs an agency API token: paste it in the Sign in section above.")));
    return;
  }
  say(el("p", {}, "Asking the ledger…"));
  const answer = await api(path);
  if (!answer.ok) {
    if (answer.status === 404 && answer.body.code === "document-not-found") {
      say(verdictBlock({ status: "NOT_ANCHORED", sha256: null }, file, answer.body.detail));
    } else {
      say(problemBlock("The ledger refused this check", answer.status, answer.body));
    }
    return;
  }
  const verdict = answer.body;
  say(verdictBlock(verdict, file, null));
  await renderDetails(verdict);
}

function verdictBlock(verdict, file, note) {
  const [tone, heading, sentence] = VERDICT_WORDS[verdict.status] || ["bad", verdict.status, ""];
  return el("div", { class: `verdict ${tone}`, "data-status": verdict.status },
    el("p", { class: "help" }, "Verdict"),
    el("h3", { id: "verdict-heading" }, heading),
    el("p", {}, sentence),
    file ? el("p", {}, `File checked: ${file.name} (${sizeText(file.size)}), hashed in this browser.`) : null,
    verdict.sha256 ? el("p", {}, "SHA-256: ", el("code", {}, verdict.sha256)) : null,
    note ? el("p", {}, note) : null);
}

function issuerOf(verdict) {
  const provenance = (verdict.checks || []).find((c) => c.name === "provenance");
  return provenance ? `${provenance.detail} (${OUTCOME_WORDS[provenance.outcome] || provenance.outcome})` : "—";
}

async function renderDetails(verdict) {
  const parts = [];
  parts.push(el("h3", {}, "Facts"), el("dl", { class: "facts" },
    el("dt", {}, "Verdict code"), el("dd", {}, el("code", { id: "verdict-status" }, verdict.status)),
    el("dt", {}, "Anchored as"), el("dd", {}, verdict.anchored_as || "—"),
    el("dt", {}, "Issuer"), el("dd", { id: "issuer" }, issuerOf(verdict)),
    el("dt", {}, "Declaration"), el("dd", {}, verdict.declaration_id ? el("code", {}, verdict.declaration_id) : "—"),
    el("dt", {}, "Declaration status"), el("dd", { id: "declaration-status" }, verdict.declaration_status || "—"),
    el("dt", {}, "Ledger read through"), el("dd", {}, `block ${verdict.indexed_through_block}` +
      (verdict.chain_head === null ? " (node unreachable)" : ` of ${verdict.chain_head}`))));
  parts.push(el("h3", {}, "Checks"), el("table", { id: "checks" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Step"), el("th", { scope: "col" }, "Check"),
      el("th", { scope: "col" }, "Outcome"), el("th", { scope: "col" }, "Detail"))),
    el("tbody", {}, verdict.checks.map((c) => el("tr", {},
      el("td", {}, String(c.step)), el("td", {}, c.name),
      el("td", { class: `outcome-${c.outcome}` }, OUTCOME_WORDS[c.outcome] || c.outcome), el("td", {}, c.detail))))));

  if (verdict.declaration_id) {
    const answer = await api(`/v1/declarations/${verdict.declaration_id}/timeline`);
    if (answer.ok) {
      const events = answer.body;
      const stampsAndDecisions = events.filter((e) => /Stamp|Decision/.test(e.name));
      parts.push(el("h3", {}, "Stamps and decisions"), stampsAndDecisions.length
        ? timelineList(stampsAndDecisions) : el("p", { class: "muted" }, "No stamps or decisions recorded yet."));
      parts.push(el("h3", {}, "Provenance timeline"), el("div", { id: "timeline" }, timelineList(events)));
    } else {
      parts.push(el("h3", {}, "Provenance timeline"), el("p", { class: "muted" },
        "The full timeline is shown to the declarant and the customs authority of the declaration's jurisdiction; " +
        "the checks above already cover its stamps and decisions."));
    }
  }
  const downloads = el("p", {}, el("button", { type: "button", id: "download-verdict", class: "secondary" },
    "Download verdict.json"));
  const bundle = evidenceBundlePath(verdict);
  const bundleStatus = el("div", { id: "bundle-status", role: "status", "aria-live": "polite" });
  if (bundle) {
    downloads.append(" ", el("button", { type: "button", id: "download-bundle", class: "secondary" },
      "Download evidence bundle"));
  }
  parts.push(el("h3", {}, "Evidence"), downloads, bundleStatus);
  show(details, ...parts);
  document.getElementById("download-verdict").addEventListener("click", () =>
    downloadJson("verdict.json", { ...verdict, retrieved_at: when(Math.floor(Date.now() / 1000)) }));
  if (bundle) {
    document.getElementById("download-bundle").addEventListener("click", () =>
      downloadBundle(bundle, verdict.sha256, document.getElementById("bundle-status")));
  }
}

// --- wiring: drop zone (mouse and keyboard), file input, paste form ---
zone.addEventListener("click", () => fileInput.click());
zone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    fileInput.click();
  }
});
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
}
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  const file = event.dataTransfer && event.dataTransfer.files[0];
  checkFile(file);
});
fileInput.addEventListener("change", () => {
  checkFile(fileInput.files[0]);
  fileInput.value = "";
});
document.getElementById("hash-form").addEventListener("submit", (event) => {
  event.preventDefault();
  checkText(document.getElementById("hash-input").value);
});
document.getElementById("max-size").textContent = sizeText(MAX_FILE_BYTES);
setUpSignIn((identity) => {
  if (identity && identity.kind !== "agency") {
    say(el("p", { class: "error" }, `Verification is for agency keys; this token belongs to ${article(identity.kind)} ` +
      `${identity.kind}. Traders see their own declarations on the "My declarations" page.`));
  }
});
