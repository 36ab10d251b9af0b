// Auditor page: the latest replay report (GET /v1/audit/report), for auditor keys only.
import { api, downloadJson, el, problemBlock, setUpSignIn, show, when } from "./common.js";

const statusNode = document.getElementById("report-status");
const reportNode = document.getElementById("report");

function findingsTable(findings) {
  if (!findings.length) return el("p", {}, "No findings.");
  const columns = ["severity", "code", "message"];
  return el("table", { id: "findings" },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))),
    el("tbody", {}, findings.map((f) => el("tr", {}, columns.map((c) =>
      el("td", { class: c === "severity" ? `outcome-${f.severity === "error" ? "fail" : "warn"}` : null },
        f[c] === undefined ? "" : String(f[c])))))));
}

async function load() {
  statusNode.replaceChildren(el("p", {}, "Loading the latest report…"));
  const answer = await api("/v1/audit/report");
  if (answer.status === 404 && answer.body.code === "audit-report-not-found") {
    show(statusNode, el("div", { class: "verdict warn" }, el("h3", {}, "No replay report yet"),
      el("p", {}, "Nobody has run a replay on this service's ledger yet. Run ",
        el("code", {}, "ledger audit replay --report FILE"),
        " with FILE set to the service's LEDGER_AUDIT_REPORT path (default var/audit/report.json).")));
    return;
  }
  if (!answer.ok) {
    show(statusNode, problemBlock("The audit report is not available to you", answer.status, answer.body));
    return;
  }
  const { written_at: writtenAt, report } = answer.body;
  const ok = report.ok === true;
  const summary = report.summary || {};
  show(statusNode, el("div", { class: `verdict ${ok ? "ok" : "bad"}` },
    el("h3", {}, ok ? "Replay OK — no errors found" : "Replay found problems"),
    el("p", {}, `${summary.errors ?? "?"} error(s), ${summary.warnings ?? "?"} warning(s); report written ${when(writtenAt)}.`)));
  const blocks = report.blocks || {};
  const digest = report.digest || {};
  show(reportNode,
    el("dl", { class: "facts" },
      el("dt", {}, "Chain id"), el("dd", {}, String(report.chain_id ?? "—")),
      el("dt", {}, "Blocks replayed"), el("dd", {}, `${blocks.from ?? "?"} – ${blocks.to ?? "?"}`),
      el("dt", {}, "State digest"), el("dd", {}, el("code", {}, String(digest.replay ?? "—"))),
      el("dt", {}, "Digest matches views"), el("dd", {}, digest.match === true ? "yes" : digest.match === false
        ? "NO" : "not compared")),
    el("h3", {}, "Findings"), findingsTable(report.findings || []),
    el("p", {}, el("button", { type: "button", id: "download-report", class: "secondary" }, "Download report.json")),
    el("details", {}, el("summary", {}, "Full report (JSON)"), el("pre", {}, JSON.stringify(report, null, 2))));
  document.getElementById("download-report").addEventListener("click", () => downloadJson("report.json", report));
}

setUpSignIn((identity) => {
  show(reportNode);
  if (!identity) {
    show(statusNode, el("p", { class: "muted" }, "Sign in with an auditor token to see the latest replay report."));
  } else {
    load();
  }
});
