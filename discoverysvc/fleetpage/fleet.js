// The fleet page: follows GET /v1/events and keeps one card per server,
// grouped by region. No framework and no build step: the discovery service
// serves this file as it is.
"use strict";

(() => {
  const servers = new Map();  // id -> server record
  const drains = new Map();   // id -> {since, reason}
  const joined = new Map();   // id -> when it joined while the page watched (slow start)
  const activity = new Map(); // id -> {pinned_last_minute, last_pinned, edges, drained}
  const cards = new Map();    // id -> <li>
  const sections = new Map(); // region -> <section>
  let token = "";             // the admin token: this variable is its only home
  let revision = 0;
  let synced = false;

  const $ = (id) => document.getElementById(id);
  const regionsEl = $("regions");
  const regionTemplate = $("region-template");
  const serverTemplate = $("server-template");

  function stateOf(id) {
    const s = servers.get(id);
    const a = activity.get(id);
    if (!drains.has(id) && !(s && s.draining)) return "active";
    return a && a.drained ? "drained" : "draining";
  }

  function announce(text) {
    if (synced) $("announce").textContent = text;
  }

  // labelledClone copies template's element, labelled by its heading (the
  // element that selector finds), whose id becomes headingID.
  function labelledClone(template, selector, headingID) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.querySelector(selector).id = headingID;
    el.setAttribute("aria-labelledby", headingID);
    return el;
  }

  function section(region) {
    let sec = sections.get(region);
    if (sec) return sec;
    sec = labelledClone(regionTemplate, "h2", "region-" + region);
    sec.dataset.region = region;
    sec.querySelector(".region-name").textContent = region;
    const after = [...sections.keys()].sort().find((r) => r > region);
    regionsEl.insertBefore(sec, after ? sections.get(after) : null);
    sections.set(region, sec);
    return sec;
  }

  function card(id) {
    let li = cards.get(id);
    if (li) return li;
    li = labelledClone(serverTemplate, ".server-id", "server-" + id);
    li.dataset.serverId = id;
    li.querySelector(".server-id").textContent = id;
    li.querySelector(".bar").setAttribute("aria-label", "load of " + id);
    li.querySelector(".drain-button").addEventListener("click", () => toggleDrain(id));
    cards.set(id, li);
    return li;
  }

  function place(li, region) {
    const list = section(region).querySelector(".servers");
    if (li.parentElement === list) return;
    const old = li.closest("section");
    const id = li.dataset.serverId;
    const next = [...list.children].find((c) => c.dataset.serverId > id);
    list.insertBefore(li, next || null);
    if (old) tidy(old);
  }

  function tidy(sec) {
    if (sec.querySelector(".servers").children.length === 0) {
      sections.delete(sec.dataset.region);
      sec.remove();
    } else {
      counts(sec);
    }
  }

  function counts(sec) {
    const ids = [...sec.querySelectorAll(".server")].map((li) => li.dataset.serverId);
    const by = { active: 0, draining: 0, drained: 0 };
    ids.forEach((id) => by[stateOf(id)]++);
    const parts = [`${ids.length} server${ids.length === 1 ? "" : "s"}`];
    if (by.draining) parts.push(`${by.draining} draining`);
    if (by.drained) parts.push(`${by.drained} drained`);
    sec.querySelector(".region-counts").textContent = "(" + parts.join(", ") + ")";
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${Math.floor(s / 3600)} h ago`;
  }

  function render(id) {
    const s = servers.get(id);
    if (!s) return;
    const li = card(id);
    place(li, s.region);
    const state = stateOf(id);
    li.dataset.state = state;
    li.querySelector(".state").textContent = state;
    li.querySelector(".url").textContent = s.url;
    const pct = Math.round(Math.min(1, s.load) * 100);
    const fill = li.querySelector(".fill");
    fill.style.width = pct + "%";
    fill.classList.toggle("hot", s.load >= 0.8);
    const bar = li.querySelector(".bar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-valuetext", `load ${s.load.toFixed(2)}`);
    li.querySelector(".load-value").textContent = s.load.toFixed(2);

    showSize(li, id, s);
    showProgress(li, s);

    const a = activity.get(id);
    let activityText = "";
    if (a && a.last_pinned) {
      activityText = `pinned: ${a.pinned_last_minute} request${a.pinned_last_minute === 1 ? "" : "s"} in the last minute, ` +
        `last ${ago(a.last_pinned)}` + (a.edges ? ` (${a.edges} edge${a.edges === 1 ? "" : "s"})` : "");
    } else if (a) {
      activityText = "pinned: none seen lately";
    }
    li.querySelector(".activity").textContent = activityText;
    const d = drains.get(id);
    let drainText = "";
    if (d) {
      drainText = `drain since ${new Date(d.since).toLocaleTimeString()}` + (d.reason ? ` (${d.reason})` : "");
      drainText += state === "drained" ? ": no pinned clients left" : ": waiting for pinned clients to move";
    } else if (s.draining) {
      drainText = state === "drained"
        ? "draining by its own record (its agent is stopping): no pinned clients left"
        : "draining by its own record (its agent is stopping): waiting for pinned clients to move";
    }
    li.querySelector(".drain").textContent = drainText;

    const controls = li.querySelector(".controls");
    controls.hidden = token === "";
    const button = li.querySelector(".drain-button");
    button.textContent = d ? "Undrain" : "Drain";
    button.setAttribute("aria-label", (d ? "Undrain " : "Drain ") + id);
    counts(li.closest("section"));
  }

  // SLOW_START_MS is the edges' default slow_start window. The page cannot
  // know each edge's setting; it shows the default's countdown.
  const SLOW_START_MS = 15000;

  // showSize shows the capacity and limit a server declares, and whether
  // it is in slow start: it joined (or came back) while the page watched,
  // less than the default window ago. A server already there when the page
  // connected counts as established, as it does for an edge that lists the
  // registry.
  function showSize(li, id, s) {
    const parts = [];
    if (s.capacity > 0) parts.push(`capacity ${s.capacity}`);
    if (s.limit > 0) parts.push(`limit ${s.limit.toFixed(2)}`);
    const since = joined.get(id);
    const left = since === undefined ? 0 : Math.ceil((SLOW_START_MS - (Date.now() - since)) / 1000);
    if (left > 0) {
      parts.push(`slow start: ramping up at edges, ${left} s left of the default 15 s`);
    } else {
      joined.delete(id);
    }
    const el = li.querySelector(".size");
    el.hidden = parts.length === 0;
    el.dataset.slowStart = String(left > 0);
    el.textContent = parts.join(" · ");
  }

  // lagText says how far behind an origin a copy is: the published step,
  // so a coarse figure.
  function lagText(ms) {
    if (ms === 0) return "caught up";
    if (ms < 1000) return `${ms / 1000} s behind`;
    const s = ms / 1000;
    if (s < 120) return `${s} s behind`;
    if (s < 7200) return `${Math.round(s / 60)} min behind`;
    return `${Math.round(s / 3600)} h behind`;
  }

  // showProgress shows where the server's writes commit and, per origin
  // its data replicates from, how far behind it is; an unknown lag is
  // marked as such (moves to the server wait for it).
  function showProgress(li, s) {
    const el = li.querySelector(".progress");
    const progress = s.progress || {};
    const origins = Object.keys(progress).sort();
    el.hidden = !s.origin && origins.length === 0;
    el.querySelector(".origin").textContent = s.origin ? `writes commit at ${s.origin}` : "";
    const list = el.querySelector(".lags");
    list.replaceChildren(...origins.map((o) => {
      const p = progress[o];
      const item = document.createElement("li");
      item.dataset.origin = o;
      item.dataset.unknown = String(!!p.unknown);
      item.textContent = `${o}: ` + (p.unknown ? "unknown" : lagText(p.lag_ms));
      return item;
    }));
  }

  function remove(id) {
    const li = cards.get(id);
    cards.delete(id);
    if (!li) return;
    const sec = li.closest("section");
    li.remove();
    if (sec) tidy(sec);
  }

  function summary() {
    $("empty").hidden = servers.size > 0;
    const regions = new Set([...servers.values()].map((s) => s.region));
    let draining = 0;
    servers.forEach((_, id) => { if (stateOf(id) !== "active") draining++; });
    $("summary").textContent =
      `${servers.size} server${servers.size === 1 ? "" : "s"} in ${regions.size} region${regions.size === 1 ? "" : "s"}` +
      (draining ? `, ${draining} draining or drained` : "") + ` · revision ${revision}`;
  }

  function connection(state, text) {
    const el = $("connection");
    el.dataset.state = state;
    el.textContent = text;
  }

  // The events stream needs a token, which EventSource cannot send, so
  // the page reads the Server-Sent Events itself. The reading token comes
  // in the page's fragment (#token=...), which the browser never sends to
  // any server, and is removed from the address bar at once; an admin
  // token typed below reads too.
  let readToken = "";
  {
    const params = new URLSearchParams(location.hash.slice(1));
    readToken = params.get("token") || "";
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  }
  let lastEventId = "";
  let retryMs = 2000;
  let stream = null;   // the AbortController of the current connection
  let retryTimer = 0;

  const handlers = {
    reset: () => {
      synced = false;
      [...cards.keys()].forEach(remove);
      servers.clear();
      joined.clear();
      drains.clear();
      activity.clear();
    },
    synced: () => { synced = true; },
    server_added: (s) => {
      if (synced) joined.set(s.id, Date.now());
      servers.set(s.id, s);
      render(s.id);
      announce(`${s.id} joined ${s.region}`);
    },
    server_changed: (s) => {
      const old = servers.get(s.id);
      servers.set(s.id, s);
      render(s.id);
      if (old && old.draining !== s.draining) announce(`${s.id} is ${stateOf(s.id)}`);
    },
    server_removed: (s) => {
      servers.delete(s.id);
      joined.delete(s.id);
      activity.delete(s.id);
      remove(s.id);
      announce(`${s.id} left ${s.region}`);
    },
    drain_started: (d) => {
      drains.set(d.id, d);
      render(d.id);
      announce(`${d.id} is draining`);
    },
    drain_ended: (d) => {
      drains.delete(d.id);
      render(d.id);
      announce(`${d.id} is active again`);
    },
    activity: (a) => {
      const before = stateOf(a.id);
      activity.set(a.id, a);
      render(a.id);
      if (before !== stateOf(a.id)) announce(`${a.id} is ${stateOf(a.id)}`);
    },
  };

  function dispatch(name, data) {
    const handle = handlers[name];
    if (!handle) return;
    const parsed = JSON.parse(data);
    if (parsed && parsed.revision) revision = Math.max(revision, parsed.revision);
    handle(parsed);
    summary();
  }

  // handleBlock applies one event of the text/event-stream format.
  function handleBlock(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id") lastEventId = value;
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (data.length > 0) dispatch(name, data.join("\n"));
  }

  function reconnect(ms) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, ms);
  }

  async function connect() {
    if (stream) stream.abort();
    const ctl = new AbortController();
    stream = ctl;
    const headers = {};
    const auth = readToken || token;
    if (auth) headers["Authorization"] = "Bearer " + auth;
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    try {
      const resp = await fetch("/v1/events", { headers, cache: "no-store", signal: ctl.signal });
      if (resp.status === 401) {
        connection("reconnecting", "token needed: open the page's link with #token=…, or use a token below");
        return; // a new token reconnects
      }
      if (!resp.ok || !resp.body) {
        connection("reconnecting", `reconnecting… (${resp.status})`);
        const after = Number(resp.headers.get("Retry-After"));
        reconnect(after > 0 ? after * 1000 : retryMs);
        return;
      }
      connection("live", "live");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          handleBlock(buf.slice(0, end));
          buf = buf.slice(end + 2);
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return; // replaced by a newer connection
    }
    if (stream !== ctl) return;
    connection("reconnecting", "reconnecting…");
    reconnect(retryMs);
  }

  async function toggleDrain(id) {
    const draining = drains.has(id);
    const result = $("operator-result");
    result.textContent = `${draining ? "Undraining" : "Draining"} ${id}…`;
    try {
      const resp = await fetch(`/v1/servers/${encodeURIComponent(id)}/drain`, {
        method: draining ? "DELETE" : "PUT",
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
        body: draining ? undefined : JSON.stringify({ reason: "fleet page" }),
        cache: "no-store",
      });
      if (!resp.ok) {
        let msg = resp.statusText;
        try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
        result.textContent = `${draining ? "Undrain" : "Drain"} ${id} failed: ${resp.status} ${msg}`;
        return;
      }
      result.textContent = `${draining ? "Undrained" : "Draining"} ${id}.`;
    } catch (err) {
      result.textContent = `${draining ? "Undrain" : "Drain"} ${id} failed: ${err.message}`;
    }
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    $("forget-token").hidden = token === "";
    $("operator-result").textContent = token ? "Token set for this page: drain controls are shown." : "";
    servers.forEach((_, id) => render(id));
    if (!readToken) connect(); // the admin token reads too
  });
  $("forget-token").addEventListener("click", () => {
    token = "";
    $("forget-token").hidden = true;
    $("operator-result").textContent = "Token forgotten.";
    servers.forEach((_, id) => render(id));
  });

  // "last pinned 5 s ago" ages without events.
  setInterval(() => activity.forEach((_, id) => render(id)), 5000);
  // The slow-start countdown.
  setInterval(() => joined.forEach((_, id) => render(id)), 1000);

  summary();
  // The registry's etcd: its size under the header, and a banner while an
  // alarm is raised. GET /v1/registry answers what discovery last saw
  // (it looks every 15 s); asking every 5 s shows a new look soon.
  const alarmText = {
    NOSPACE: "the registry's etcd database is full. New registrations, load changes and drains are refused " +
      "(503 registry_full) until space is freed and the alarm disarmed; edges keep routing and registered servers stay.",
    CORRUPT: "etcd found its data inconsistent between members. See etcd's documentation.",
  };

  function mib(bytes) {
    return (bytes / (1 << 20)).toFixed(1) + " MiB";
  }

  function showRegistry(r) {
    let text = `registry ${mib(r.db_size)} (${mib(r.db_size_in_use)} in use`;
    if (r.quota) text += ` of a ${mib(r.quota)} quota`;
    text += `), ${Math.round(r.revisions_per_second)} writes/s`;
    if (r.uncompacted) text += " — never compacted";
    $("registry").textContent = text;
    const banner = $("registry-alarm");
    const alarms = r.alarms || [];
    banner.hidden = alarms.length === 0;
    banner.replaceChildren();
    for (const a of alarms) {
      const line = document.createElement("span");
      const name = document.createElement("strong");
      name.textContent = `etcd alarm ${a}: `;
      line.append(name, alarmText[a] || "see etcd's documentation.");
      banner.append(line);
    }
  }

  async function pollRegistry() {
    try {
      const resp = await fetch("/v1/registry", { cache: "no-store" });
      if (resp.ok) showRegistry(await resp.json());
    } catch (e) {
      // The events stream shows the connection's state.
    }
    setTimeout(pollRegistry, 5000);
  }

  connect();
  pollRegistry();
})();
