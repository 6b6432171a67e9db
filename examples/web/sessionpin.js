// sessionpin.js — a dependency-free helper for browser clients of an app
// behind a sessionpin edge (https://github.com/sessionpin/sessionpin).
//
// It wraps fetch so that:
//   - the pin travels with every request (X-Session-Pin from the last
//     response that issued one; the edge's HttpOnly cookie works too, the
//     header wins);
//   - refresh() asks the edge for /closestToMe first and sends
//     closestServerId and criticalTaskInProgress with the app's own refresh
//     body, so the edge moves the client only when no critical task runs;
//   - "server" fires when the pinned server is first known or changes;
//   - a change of server fires "serverchange" with the message the user
//     should see (dataMayLag set when the edge moved the client before the
//     new server held its latest changes: X-Session-Unsafe-Move);
//   - a 502/503/504 (the pinned server is down) fires "reconnecting" once a
//     second for Retry-After seconds, then refreshes and retries the request.
//
// Usage:
//   import { SessionPin } from "./sessionpin.js";
//   const sp = new SessionPin({
//     authorization: () => accessToken && "Bearer " + accessToken,
//     refreshBody: () => ({ refreshToken }),
//     onRefresh: (json) => { accessToken = json.accessToken; refreshToken = json.refreshToken; },
//   });
//   sp.addEventListener("serverchange", (e) => show(e.detail.message));
//   sp.addEventListener("reconnecting", (e) => show(`Reconnecting… ${e.detail.secondsLeft}s`));
//   const res = await sp.fetch("/orders", { method: "POST" });

export const SERVER_CHANGED_MESSAGE =
  "Your primary server has changed. Any missing data will be synced within 5 minutes.";
export const DATA_MAY_LAG_MESSAGE =
  "Your primary server has changed. Your latest changes may take a moment to appear.";

const PIN_HEADER = "X-Session-Pin";
const SERVER_HEADER = "X-Session-Server";
const SERVER_URL_HEADER = "X-Session-Server-URL";
const CHANGED_HEADER = "X-Session-Server-Changed";
const UNSAFE_MOVE_HEADER = "X-Session-Unsafe-Move";

export class SessionPin extends EventTarget {
  /**
   * @param {object} [options]
   * @param {string} [options.baseURL]  prefix of every path (default: same origin, "")
   * @param {string} [options.refreshPath]  the app's refresh endpoint (default "/auth/refresh")
   * @param {string} [options.closestPath]  the edge's closest-server endpoint (default "/closestToMe")
   * @param {() => (string|undefined)} [options.authorization]  the app's Authorization header value
   * @param {() => object} [options.refreshBody]  the app's own refresh fields, e.g. {refreshToken}
   * @param {(json: object) => void} [options.onRefresh]  receives a successful refresh body
   * @param {number} [options.defaultRetryAfter]  seconds to wait when a 5xx has no Retry-After (default 30)
   * @param {number} [options.maxRetryAfter]  cap on the wait, for demos and tests (default: none)
   * @param {number} [options.reconnectAttempts]  refresh attempts before giving up (default 5)
   */
  constructor(options = {}) {
    super();
    this.options = {
      baseURL: "",
      refreshPath: "/auth/refresh",
      closestPath: "/closestToMe",
      authorization: () => undefined,
      refreshBody: () => ({}),
      onRefresh: () => {},
      defaultRetryAfter: 30,
      maxRetryAfter: Infinity,
      reconnectAttempts: 5,
      ...options,
    };
    /** The last pin the edge issued. */
    this.pin = "";
    /** The server the client is pinned to, and its URL. */
    this.server = "";
    this.serverURL = "";
    this._critical = 0;
  }

  /** Marks the start of a multi-step workflow: refreshes keep the server. */
  beginCriticalTask() {
    this._critical++;
  }

  /** Marks its end. */
  endCriticalTask() {
    if (this._critical > 0) this._critical--;
  }

  /** Whether a critical task is in progress. */
  get criticalTaskInProgress() {
    return this._critical > 0;
  }

  /**
   * fetch with the pin. On a 5xx that means the pinned server is gone, it
   * waits Retry-After seconds ("reconnecting" events), refreshes (which
   * moves the pin to a live server) and retries once.
   */
  async fetch(path, init = {}) {
    const res = await this._send(path, init);
    if (!isServerDown(res)) return res;
    const ok = await this.reconnect(res);
    return ok ? this._send(path, init) : res;
  }

  /** Asks the edge which server it would place this client on. */
  async closest() {
    const res = await fetch(this.options.baseURL + this.options.closestPath, {
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (!res.ok) throw new Error(`closestToMe answered ${res.status}`);
    return res.json();
  }

  /**
   * Refreshes the app's tokens through the edge, telling it the closest
   * server and whether a critical task runs, so the edge can move the pin.
   * Resolves to the Response; a 2xx body goes to options.onRefresh.
   */
  async refresh() {
    let closestServerId = "";
    try {
      closestServerId = (await this.closest()).closestServerId || "";
    } catch (err) {
      // No closest server known: the edge falls back to its own placement.
    }
    const body = {
      ...this.options.refreshBody(),
      closestServerId,
      criticalTaskInProgress: this.criticalTaskInProgress,
    };
    const res = await this._send(this.options.refreshPath, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.ok) {
      this.options.onRefresh(await res.clone().json().catch(() => ({})));
    }
    return res;
  }

  /**
   * The failure path of a dead server: "Reconnecting…" for Retry-After
   * seconds, then a refresh; repeated while the refresh itself finds no
   * live server. Resolves to true once a refresh succeeded.
   */
  async reconnect(failed) {
    let res = failed;
    for (let attempt = 1; attempt <= this.options.reconnectAttempts; attempt++) {
      const seconds = await this._retryAfter(res);
      for (let left = seconds; left > 0; left--) {
        this._emit("reconnecting", { secondsLeft: left, server: this.server, attempt, status: res.status });
        await sleep(1000);
      }
      this._emit("reconnecting", { secondsLeft: 0, server: this.server, attempt, status: res.status });
      res = await this.refresh();
      if (res.ok) {
        this._emit("reconnected", { server: this.server });
        return true;
      }
      if (!isServerDown(res)) break;
    }
    this._emit("reconnectfailed", { server: this.server, status: res.status });
    return false;
  }

  async _send(path, init) {
    const headers = new Headers(init.headers || {});
    if (this.pin) headers.set(PIN_HEADER, this.pin);
    const auth = this.options.authorization();
    if (auth && !headers.has("Authorization")) headers.set("Authorization", auth);
    let res;
    try {
      res = await fetch(this.options.baseURL + path, { ...init, headers, credentials: "same-origin" });
    } catch (err) {
      // The edge itself is unreachable: treat it like a dead server.
      res = new Response(JSON.stringify({ error: "network_error", message: String(err) }), {
        status: 503,
        headers: { "Content-Type": "application/json" },
      });
    }
    this._observe(res);
    return res;
  }

  // _observe keeps the pin from the response and announces a server change.
  // The server comes from X-Session-Server, which every proxied answer
  // carries: a client pinned by the edge's cookie (for instance by the
  // page's first request) gets no X-Session-Pin until its next refresh.
  _observe(res) {
    const server = res.headers.get(SERVER_HEADER);
    if (!server || res.status >= 500) return;
    const pin = res.headers.get(PIN_HEADER);
    const previous = this.server;
    if (pin) {
      this.pin = pin;
      this.serverURL = res.headers.get(SERVER_URL_HEADER) || this.serverURL;
    }
    this.server = server;
    if (pin || server !== previous) {
      this._emit("server", { server: this.server, serverURL: this.serverURL });
    }
    const changed = res.headers.get(CHANGED_HEADER) === "1" || (previous !== "" && previous !== server);
    if (changed) {
      const dataMayLag = res.headers.get(UNSAFE_MOVE_HEADER) === "1";
      this._emit("serverchange", {
        from: previous,
        to: this.server,
        serverURL: this.serverURL,
        dataMayLag,
        message: dataMayLag ? DATA_MAY_LAG_MESSAGE : SERVER_CHANGED_MESSAGE,
      });
    }
  }

  async _retryAfter(res) {
    let seconds = parseInt(res.headers.get("Retry-After") || "", 10);
    if (!(seconds >= 0)) {
      const body = await res.clone().json().catch(() => ({}));
      seconds = Number.isFinite(body.retryAfterSeconds) ? body.retryAfterSeconds : this.options.defaultRetryAfter;
    }
    return Math.min(seconds, this.options.maxRetryAfter);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function isServerDown(res) {
  return res.status === 502 || res.status === 503 || res.status === 504;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
