// The demo page: the app's own login and order workflow, carried by
// sessionpin.js. Add ?fast=1 to the URL to cap "Reconnecting…" at 2s.
import { SessionPin } from "./sessionpin.js";

const $ = (id) => document.getElementById(id);
const fast = new URLSearchParams(location.search).has("fast");

// The app's own tokens; the edge never looks at them.
let accessToken = "";
let refreshToken = "";
let orderId = "";

const sp = new SessionPin({
  authorization: () => (accessToken ? "Bearer " + accessToken : undefined),
  refreshBody: () => ({ refreshToken }),
  onRefresh: (json) => {
    accessToken = json.accessToken || accessToken;
    refreshToken = json.refreshToken || refreshToken;
  },
  maxRetryAfter: fast ? 2 : Infinity,
});

// For the browser console (and the browser test): the pin state.
window.sessionpin = sp;

sp.addEventListener("server", (e) => {
  $("server").textContent = e.detail.server;
  $("server-url").textContent = e.detail.serverURL || "–";
});
sp.addEventListener("serverchange", (e) => {
  $("message").textContent = e.detail.message;
  log(`server changed: ${e.detail.from} → ${e.detail.to}`);
});
sp.addEventListener("reconnecting", (e) => {
  if (e.detail.secondsLeft > 0 && !$("reconnecting").textContent) {
    log(`${e.detail.server} unavailable (${e.detail.status}): reconnecting in ${e.detail.secondsLeft}s`);
  }
  $("reconnecting").textContent =
    e.detail.secondsLeft > 0 ? `Reconnecting… ${e.detail.secondsLeft}s` : "Reconnecting…";
});
sp.addEventListener("reconnected", (e) => {
  $("reconnecting").textContent = "";
  log(`reconnected to ${e.detail.server}`);
});
sp.addEventListener("reconnectfailed", () => {
  $("reconnecting").textContent = "";
  showError("Could not reconnect. Try again later.");
});

function log(line) {
  const el = $("log");
  el.textContent = `${new Date().toLocaleTimeString()} ${line}\n` + el.textContent;
}

function showError(text) {
  $("error").textContent = text;
}

function setCritical() {
  $("critical").textContent = sp.criticalTaskInProgress ? "yes (refreshes keep your server)" : "no";
}

// call runs one API request and logs it; it resolves to the JSON body of a
// 2xx answer, or null after showing the error.
async function call(method, path, body) {
  showError("");
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await sp.fetch(path, init);
  const json = await res.json().catch(() => ({}));
  const servedBy = res.headers.get("X-Served-By") || res.headers.get("X-Session-Server") || "edge";
  log(`${method} ${path} → ${res.status} from ${servedBy}`);
  if (!res.ok) {
    showError(`${method} ${path}: ${json.message || json.error || res.status}`);
    return null;
  }
  return json;
}

$("login").addEventListener("click", async () => {
  const json = await call("POST", "/auth/login", { user: $("username").value });
  if (!json) return;
  accessToken = json.accessToken;
  refreshToken = json.refreshToken;
  $("user").textContent = json.user;
  $("message").textContent = "";
});

$("whoami").addEventListener("click", async () => {
  const json = await call("GET", "/whoami");
  if (json) log(`you are ${json.user || "anonymous"} on ${json.server} (${json.region})`);
});

$("refresh").addEventListener("click", async () => {
  showError("");
  let res = await sp.refresh();
  if ([502, 503, 504].includes(res.status) && (await sp.reconnect(res))) {
    log("refreshed after reconnecting");
    return;
  }
  log(`POST /auth/refresh (critical: ${sp.criticalTaskInProgress}) → ${res.status} on ${sp.server}`);
  if (!res.ok) showError(`refresh failed: ${res.status}`);
});

$("create-order").addEventListener("click", async () => {
  sp.beginCriticalTask();
  setCritical();
  const json = await call("POST", "/orders");
  if (!json) {
    sp.endCriticalTask();
    setCritical();
    return;
  }
  orderId = json.id;
  $("order").textContent = `${json.id} (${json.status}, 0 items, on ${json.server})`;
});

$("add-item").addEventListener("click", async () => {
  if (!orderId) return showError("create an order first");
  const json = await call("POST", `/orders/${orderId}/items`, { sku: "espresso-beans", qty: 1 });
  if (json) $("order").textContent = `${json.id} (${json.status}, ${json.items.length} items, on ${json.server})`;
});

$("submit-order").addEventListener("click", async () => {
  if (!orderId) return showError("create an order first");
  const json = await call("POST", `/orders/${orderId}/submit`);
  if (!json) return;
  $("order").textContent = `${json.id} (${json.status}, ${json.items.length} items, on ${json.server})`;
  sp.endCriticalTask();
  setCritical();
});
