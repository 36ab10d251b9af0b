// Trader page: the signed-in trader's own declarations (GET /v1/declarations/mine, paginated) with
// their provenance timelines, and opening one declaration by id. The service decides what is
// visible: another trader's declaration is refused (404) whatever the page asks.
import { api, article, el, problemBlock, setUpSignIn, show, timelineList, when } from "./common.js";

const PAGE_SIZE = 25;
const list = document.getElementById("declarations");
const status = document.getElementById("list-status");
const more = document.getElementById("more");
const opened = document.getElementById("opened");
let nextAfter = null;

function declarationItem(d) {
  const timeline = el("div", { class: "timeline-body" }, el("p", { class: "muted" }, "Loading…"));
  const toggle = el("details", { "data-declaration": d.declaration_id },
    el("summary", {}, "Provenance timeline"), timeline);
  let loaded = false;
  toggle.addEventListener("toggle", async () => {
    if (!toggle.open || loaded) return;
    loaded = true;
    const answer = await api(`/v1/declarations/${d.declaration_id}/timeline`);
    show(timeline, answer.ok ? timelineList(answer.body) : problemBlock("Timeline refused", answer.status, answer.body));
  });
  return el("li", { "data-declaration": d.declaration_id },
    el("h3", {}, `Declaration version ${d.version} — ${d.status}`),
    el("dl", { class: "facts" },
      el("dt", {}, "Id"), el("dd", {}, el("code", {}, d.declaration_id)),
      el("dt", {}, "Status"), el("dd", {}, d.status),
      el("dt", {}, "MRN"), el("dd", {}, d.mrn || "not assigned yet"),
      el("dt", {}, "Submitted"), el("dd", {}, `${when(d.submitted_at)} (block ${d.submitted_block})`),
      el("dt", {}, "Supporting documents"), el("dd", {}, d.documents.length
        ? el("ul", {}, d.documents.map((doc) => el("li", {}, `type ${doc.document_type}: `, el("code", {}, doc.sha256))))
        : "none"),
      d.superseded_by ? el("dt", {}, "Superseded by") : null,
      d.superseded_by ? el("dd", {}, el("code", {}, d.superseded_by)) : null),
    toggle);
}

async function loadPage(reset) {
  if (reset) {
    nextAfter = null;
    show(list);
  }
  status.textContent = "Loading your declarations…";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (nextAfter) query.set("after", nextAfter);
  const answer = await api(`/v1/declarations/mine?${query}`);
  if (!answer.ok) {
    status.replaceChildren(problemBlock("Your declarations could not be listed", answer.status, answer.body));
    more.hidden = true;
    return;
  }
  for (const d of answer.body.items) list.append(declarationItem(d));
  nextAfter = answer.body.next_after;
  more.hidden = !nextAfter;
  const count = list.children.length;
  status.textContent = count ? `${count} declaration version(s) shown${nextAfter ? "; more below" : ""}.`
    : "You have not submitted any declarations yet.";
}

more.addEventListener("click", () => loadPage(false));
document.getElementById("open-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = document.getElementById("open-id").value.trim().toLowerCase();
  if (!/^0x[0-9a-f]{64}$/.test(id)) {
    show(opened, el("p", { class: "error" }, "A declaration id is 0x followed by 64 hexadecimal digits."));
    return;
  }
  const answer = await api(`/v1/declarations/${id}`);
  if (!answer.ok) {
    show(opened, problemBlock("Refused: this declaration is not visible to you", answer.status, answer.body));
    return;
  }
  show(opened, el("ol", { class: "declarations" }, declarationItem(answer.body)));
});
setUpSignIn((identity) => {
  show(list);
  show(opened);
  more.hidden = true;
  if (!identity) {
    status.textContent = "Sign in with a trader token to see your declarations.";
  } else if (identity.kind !== "trader") {
    status.textContent = `This page lists a trader's own declarations; you are signed in with ${article(identity.kind)} ` +
      `${identity.kind} key. Sign out and sign in with a trader token.`;
  } else {
    loadPage(true);
  }
});
