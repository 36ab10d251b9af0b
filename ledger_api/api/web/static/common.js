// Shared by the pages: sign-in with an API token (sessionStorage), authenticated fetch, safe DOM building.
// Nothing here writes HTML from strings: every value is set as text, so ledger data cannot inject markup.

const TOKEN_KEY = "customs-ledger.api-token";

/** The API token of this tab, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Create an element: el("p", {class: "x"}, "text", child, …). Strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "hidden") node.hidden = Boolean(value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the children of `node` with `children`. */
export function show(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

/**
 * GET (or other method) a JSON route of this service with the tab's token.
 * Resolves to {ok, status, body}; body is the parsed JSON (a problem document when !ok).
 */
export async function api(path, options = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  const current = token();
  if (current) headers.Authorization = `Bearer ${current}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers, credentials: "omit", cache: "no-store" });
  } catch (error) {
    return { ok: false, status: 0, body: { title: "The service cannot be reached", detail: String(error) } };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { title: `HTTP ${response.status}` };
  }
  return { ok: response.ok, status: response.status, body };
}

/** A problem (RFC 9457) as a block that says in words what was refused and why. */
export function problemBlock(heading, status, problem) {
  const code = problem && problem.code ? problem.code : `http-${status}`;
  return el("div", { class: "problem" },
    el("h3", {}, heading),
    el("p", {}, `HTTP ${status} — ${problem && problem.title ? problem.title : "error"} (`, el("code", {}, code), ")"),
    problem && problem.detail ? el("p", {}, problem.detail) : null);
}

/** "a" or "an" before `word`. */
export function article(word) {
  return /^[aeiou]/i.test(word) ? "an" : "a";
}

/** Mark the navigation link of the current page (aria-current), for screen readers and the eye. */
function markCurrentPage() {
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === window.location.pathname) link.setAttribute("aria-current", "page");
  }
}
markCurrentPage();

/** Unix seconds → readable UTC time. */
export function when(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Offer `value` as a JSON file download named `filename`. */
export function downloadJson(filename, value) {
  const blob = new Blob([JSON.stringify(value, null, 2) + "\n"], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A provenance timeline as an ordered list (block, time, event, a few arguments). */
export function timelineList(events) {
  if (!events.length) return el("p", { class: "muted" }, "No events yet.");
  return el("ol", { class: "timeline" }, events.map((event) => el("li", {},
    el("strong", {}, event.name), ` — block ${event.block_number}, ${when(event.timestamp)}`,
    argsText(event.args) ? el("div", { class: "mono help" }, argsText(event.args)) : null)));
}

function argsText(args) {
  const skip = new Set(["declarationId"]);
  return Object.entries(args || {}).filter(([name]) => !skip.has(name))
    .map(([name, value]) => `${name}: ${typeof value === "object" ? JSON.stringify(value) : value}`).join("; ");
}

/**
 * Wire the page's sign-in section. `onIdentity(identity | null)` runs after sign-in / sign-out
 * and on load when the tab already holds a token.
 */
export function setUpSignIn(onIdentity) {
  const form = document.getElementById("sign-in-form");
  const input = document.getElementById("token");
  const signedIn = document.getElementById("signed-in");
  const who = document.getElementById("who");
  const error = document.getElementById("sign-in-error");

  async function refresh() {
    error.textContent = "";
    if (!token()) {
      form.hidden = false;
      signedIn.hidden = true;
      onIdentity(null);
      return;
    }
    const answer = await api("/v1/me");
    if (!answer.ok) {
      sessionStorage.removeItem(TOKEN_KEY);
      form.hidden = false;
      signedIn.hidden = true;
      error.textContent = `Sign-in refused: ${answer.body.title || "error"}` +
        (answer.body.detail ? ` — ${answer.body.detail}` : "") + ". Check the token (it may have expired).";
      onIdentity(null);
      return;
    }
    const me = answer.body;
    form.hidden = true;
    signedIn.hidden = false;
    who.textContent = me.kind === "agency"
      ? `${me.agency_id} (agency key ${me.address}; roles: ${me.roles.join(", ") || "none"})`
      : `${me.kind} ${me.address}`;
    onIdentity(me);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    input.value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    refresh();
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    refresh();
  });
  refresh();
}
