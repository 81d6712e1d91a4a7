// tastelens page: chat, profile and taste edits over the same-origin /v1 API.
// Plain DOM code; every text from the server goes in through textContent, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const GRANULARITIES = ["keyword", "topic", "sentiment", "application"];
  const KEY_STORE = "tastelens.api-key";  // the operator key, for every user
  const TOKEN_STORE = "tastelens.token.";  // + user id: that user's own token (tlu_…)
  const state = {
    user: null, session: null, taste: null, retry: null, lastCards: null,
    key: sessionStorage.getItem(KEY_STORE),
  };

  // What this tab sends: the user's own token when it has one, else the operator key.
  function credential() {
    const token = state.user ? sessionStorage.getItem(TOKEN_STORE + state.user) : null;
    return token || state.key;
  }

  class ApiError extends Error {
    constructor(type, message, status) {
      super(message);
      this.type = type;
      this.status = status;
    }
  }

  // -- talking to the API ---------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const sent = credential();
    if (sent) headers.Authorization = "Bearer " + sent;
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError("network", "The server could not be reached (" + err.message +
                         "). Is `tastelens api` still running?", 0);
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      const e = data && data.error ? data.error
        : { type: "http_" + response.status, message: response.statusText || "request failed" };
      throw new ApiError(e.type, e.message, response.status);
    }
    return data;
  }

  // A 401 (no or a wrong credential) or a 403 (a token of another user) asks for the user's
  // token or the API key; `retry` runs again once it is saved.
  function needKey(err, retry) {
    if (err.status !== 401 && !(err.status === 403 && err.type === "forbidden")) return false;
    state.retry = retry;
    const whose = state.user ? "user " + state.user + "'s access token" : "an access token";
    $("key-why").textContent = credential()
      ? "Not accepted: " + err.message + ". Enter " + whose + " or the API key."
      : "This needs " + whose + " (`tastelens token issue` makes one) or the server's API key.";
    $("key-form").hidden = false;
    $("api-key").focus();
    return true;
  }

  function showAlert(message) {
    const box = $("alert");
    box.textContent = message;
    box.hidden = !message;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  // -- who is this -------------------------------------------------------------------------
  function setUser(user) {
    state.user = user || null;
    state.session = null;
    state.taste = null;
    state.lastCards = null;
    $("log").replaceChildren();
    $("user-id").value = state.user || "";
    $("who-line").textContent = state.user
      ? "Chatting as user " + state.user + ": recommendations follow their history and taste."
      : "You are a new visitor: tell me what you like (e.g. 'I love 90s Disney musicals').";
    $("profile").hidden = true;
    $("profile-empty").hidden = false;
    $("profile-empty").textContent = state.user ? "Open the profile to load it."
      : "Enter a user id above to see and edit a profile.";
    const url = new URL(window.location.href);
    if (state.user) url.searchParams.set("user", state.user);
    else url.searchParams.delete("user");
    history.replaceState(null, "", url);
    showAlert("");
    if (!$("panel-profile").hidden) loadProfile();
  }

  // -- chat ---------------------------------------------------------------------------------
  function addMessage(kind, text, ...extra) {
    const item = el("li", { class: "msg " + kind },
      el("span", { class: "sr-only", text: kind === "user" ? "You: " : "tastelens: " }),
      el("span", { class: "bubble", text }));
    for (const part of extra) if (part) item.append(part);
    $("log").append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  function card(rec, titles) {
    const head = el("h3", {},
      el("span", { class: "rank", text: "#" + rec.rank }),
      el("span", { class: "title", text: rec.title }));
    if (rec.source === "explored") {
      head.append(el("span", { class: "badge", text: "explored",
                               title: "Outside your usual taste, to explore" }));
    }
    const meta = el("div", { class: "meta" });
    if (rec.year) meta.append(el("span", { class: "year", text: String(rec.year) + " " }));
    for (const c of rec.categories || []) meta.append(el("span", { class: "tag", text: c }));
    const li = el("li", { class: "card", "data-item": rec.item }, head, meta);
    const exp = rec.explanation;
    if (exp) {
      li.append(el("p", { class: "why", text: exp.text }));
      const cited = (exp.evidence || []).map((id) => titles[id]).filter(Boolean);
      if (cited.length) {
        li.append(el("p", { class: "cited", text: "Because you liked: " + cited.join("; ") }));
      }
    }
    return li;
  }

  // How the list was made, from its report: says when the model was not used, and why.
  const READING = { ok: "rules + model", off: "rules", invalid: "rules (model reply unusable)",
                    timeout: "rules (model too slow)", unavailable: "rules (model unavailable)" };
  function howMade(report, intent) {
    const ranking = report.rerank_fallback
      ? "retrieval order (" + (report.rerank_fallback_reason || "fallback") + ")"
      : report.rerank === "none" ? "retrieval order" : report.rerank;
    const parts = ["ranking: " + ranking];
    if (intent && intent.llm) parts.push("reading: " + (READING[intent.llm] || intent.llm));
    if (report.timings && report.timings.total !== undefined) {
      parts.push(report.timings.total.toFixed(1) + " s");
    }
    return el("p", { class: "report muted", text: parts.join(" · ") });
  }

  function setBusy(id, busy, controls) {
    $(id).hidden = !busy;
    for (const c of controls) c.disabled = busy;
  }

  async function send(message) {
    message = message.trim();
    if (!message) return;
    addMessage("user", message);
    const controls = [$("send"), ...document.querySelectorAll(".chip")];
    setBusy("chat-busy", true, controls);
    $("log").setAttribute("aria-busy", "true");
    const body = { message };
    if (state.session) body.session_id = state.session;
    else if (state.user) body.user = state.user;
    try {
      const reply = await api("POST", "/v1/chat", body);
      state.session = reply.session_id;
      let cards = null;
      const items = reply.recommendations ? reply.recommendations.items : [];
      if (items.length) {
        cards = el("ol", { class: "cards", "aria-label": "Recommendations" },
                   ...items.map((r) => card(r, reply.titles || {})));
        state.lastCards = cards;
      }
      const intent = reply.turn && reply.turn.intent;
      const note = reply.recommendations ? howMade(reply.recommendations.report, intent) : null;
      addMessage("bot", reply.text, cards, note);
      if (intent && intent.action === "explain" && state.lastCards && intent.about_rank) {
        const all = state.lastCards.querySelectorAll(".card");
        const i = intent.about_rank === -1 ? all.length - 1 : intent.about_rank - 1;
        all.forEach((c, j) => c.classList.toggle("asked", j === i));
      }
    } catch (err) {
      if (needKey(err, () => send(message))) {
        addMessage("error", "An access token is needed: enter it above and the message is " +
                            "sent.");
      } else if (err.status === 404 && state.session && err.type === "UnknownSessionError") {
        state.session = null;  // the server restarted or the session expired
        addMessage("error", "That conversation expired on the server; send it again to start " +
                            "a new one.");
      } else {
        addMessage("error", "Sorry, that failed: " + err.message);
      }
    } finally {
      setBusy("chat-busy", false, controls);
      $("log").removeAttribute("aria-busy");
      $("message").focus();
    }
  }

  // -- profile --------------------------------------------------------------------------
  async function loadProfile() {
    if (!state.user) return;
    setBusy("profile-busy", true, []);
    $("profile-empty").hidden = true;
    try {
      renderTaste(await api("GET", "/v1/users/" + encodeURIComponent(state.user) + "/taste"));
      showAlert("");
    } catch (err) {
      if (!needKey(err, loadProfile)) {
        showAlert("Could not load the profile of user " + state.user + ": " + err.message);
        $("profile-empty").hidden = false;
        $("profile-empty").textContent = "No profile to show.";
      }
    } finally {
      setBusy("profile-busy", false, []);
    }
  }

  async function edit(action, label, button) {
    const buttons = [...document.querySelectorAll("#profile button")];
    setBusy("profile-busy", true, buttons);
    const body = { action, label };
    if (state.taste) body.expected_version = state.taste.overrides.version;
    try {
      renderTaste(await api("POST", "/v1/users/" + encodeURIComponent(state.user) + "/taste",
                            body));
      showAlert("");
      return true;
    } catch (err) {
      if (needKey(err, () => edit(action, label))) return false;
      showAlert("Could not " + action + " '" + label + "': " + err.message);
      if (err.status === 409) await loadProfile();
      return false;
    } finally {
      setBusy("profile-busy", false, buttons);
      if (button && document.body.contains(button)) button.focus();
    }
  }

  function evidenceLine(ids, titles, lead) {
    const names = (ids || []).map((id) => titles[id]).filter(Boolean);
    return names.length ? el("div", { class: "evidence", text: lead + names.join("; ") }) : null;
  }

  function interestItem(interest, titles) {
    const label = el("span", { class: "label", text: interest.label });
    const row = el("div", { class: "row" }, label);
    if (interest.pinned) label.append(el("span", { class: "badge pin", text: "pinned" }));
    const actions = el("div", { class: "actions" });
    const pin = el("button", { type: "button", class: "ghost",
      text: interest.pinned ? "Unpin" : "Pin",
      "aria-label": (interest.pinned ? "Unpin " : "Pin ") + interest.label });
    pin.addEventListener("click", () => edit(interest.pinned ? "unpin" : "pin", interest.label, pin));
    const remove = el("button", { type: "button", class: "ghost", text: "Remove",
                                  "aria-label": "Remove " + interest.label });
    remove.addEventListener("click", () => edit("remove", interest.label));
    actions.append(pin, remove);
    row.append(actions);
    const bar = el("span", { class: "weight", role: "img",
                             "aria-label": "weight " + interest.weight.toFixed(2) },
                   el("span"));
    bar.firstChild.style.width = Math.round(interest.weight * 100) + "%";
    const trend = interest.trend;
    if (trend != null && Math.abs(trend) >= 0.05) {
      label.append(el("span", { class: "badge trend " + (trend > 0 ? "rising" : "falling"),
                                text: trend > 0 ? "rising" : "fading" }));
    }
    // The descriptors the interest stands for, when they say more than its label.
    const about = (interest.descriptors || []).filter((d) => d !== interest.label.toLowerCase());
    const descriptors = about.length
      ? el("div", { class: "descriptors", text: "About: " + interest.descriptors.join(", ") })
      : null;
    return el("li", { class: "interest", "data-label": interest.label }, row, bar,
              descriptors, evidenceLine(interest.evidence, titles, "From: "));
  }

  function renderTaste(view) {
    state.taste = view;
    const p = view.profile;
    const titles = view.titles || {};
    $("profile").hidden = false;
    $("profile-empty").hidden = true;
    $("summary").textContent = p.summary || "No summary yet.";
    const o = view.overrides;
    $("version").textContent = "Profile of user " + p.user + ", " + p.n_items +
      " items in the history. " + (o.version ? "Your edits: version " + o.version +
      (o.updated_at ? " (" + new Date(o.updated_at).toLocaleString() + ")" : "") + "."
      : "No edits yet: remove, pin or add to change what you get.");

    const groups = $("interests");
    groups.replaceChildren();
    for (const g of GRANULARITIES) {
      const mine = p.interests.filter((i) => i.granularity === g);
      const list = el("ul", { class: "plain" }, ...mine.map((i) => interestItem(i, titles)));
      if (!mine.length) list.append(el("li", { class: "muted", text: "None." }));
      groups.append(el("section", { class: "group", "data-granularity": g,
                                    "aria-label": g + " interests" },
                       el("h3", { text: g }), list));
    }

    $("removed-box").hidden = !view.removed.length;
    $("removed").replaceChildren(...view.removed.map((i) => {
      const restore = el("button", { type: "button", class: "ghost", text: "Restore",
                                     "aria-label": "Restore " + i.label });
      restore.addEventListener("click", () => edit("restore", i.label));
      return el("li", { "data-label": i.label },
                el("div", { class: "row" }, el("span", { text: i.label + " " }), restore));
    }));

    const dislikes = $("dislikes");
    dislikes.replaceChildren();
    for (const d of p.dislikes) {
      const item = el("li", { "data-label": d.label },
                      el("span", { class: "label", text: d.label }));
      if (d.source === "user") {
        item.firstChild.append(el("span", { class: "badge user", text: "yours" }));
        const undo = el("button", { type: "button", class: "ghost", text: "Undo",
                                    "aria-label": "Drop the dislike " + d.label });
        undo.addEventListener("click", () => edit("undislike", d.label));
        item.append(" ", undo);
      }
      // A low-rated item is its own evidence: name other items only.
      const others = (d.evidence || []).filter((id) => titles[id] && titles[id] !== d.label);
      const ev = evidenceLine(others, titles, "From low ratings: ");
      if (ev) item.append(ev);
      dislikes.append(item);
    }
    if (!p.dislikes.length) dislikes.append(el("li", { class: "muted", text: "None." }));
    drawDrift(p);
  }

  // -- the drift chart: long-term vs recent share per category (SVG) -------------------
  function drawDrift(p) {
    const NS = "http://www.w3.org/2000/svg";
    const cats = [...new Set([...Object.keys(p.long_term || {}), ...Object.keys(p.recent || {})])]
      .map((c) => [c, p.long_term[c] || 0, p.recent[c] || 0])
      .sort((a, b) => Math.max(b[1], b[2]) - Math.max(a[1], a[2]))
      .slice(0, 8);
    const box = $("drift");
    box.replaceChildren();
    if (!cats.length) {
      box.append(el("p", { class: "muted", text: "No category history to chart." }));
      return;
    }
    const W = 360, left = 100, row = 30, top = 26, barH = 10;
    const H = top + cats.length * row + 6;
    const max = Math.max(...cats.flatMap((c) => [c[1], c[2]]), 0.01);
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    const describe = cats.map((c) => c[0] + ": long-term " + pct(c[1]) + ", recent " + pct(c[2]));
    svg.setAttribute("aria-label", "Category shares. " + describe.join("; "));
    const add = (tag, attrs, text) => {
      const n = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      svg.append(n);
      return n;
    };
    add("rect", { x: left, y: 6, width: 10, height: 10, class: "long" });
    add("text", { x: left + 14, y: 15 }, "long-term");
    add("rect", { x: left + 90, y: 6, width: 10, height: 10, class: "recent" });
    add("text", { x: left + 104, y: 15 }, "recent");
    const span = W - left - 44;
    cats.forEach(([name, long, recent], i) => {
      const y = top + i * row;
      add("text", { x: left - 6, y: y + barH + 4, "text-anchor": "end" }, name);
      add("rect", { x: left, y, width: Math.max(1, (long / max) * span), height: barH,
                    class: "long" });
      add("text", { x: left + (long / max) * span + 4, y: y + barH - 1, class: "value" },
          pct(long));
      add("rect", { x: left, y: y + barH + 2, width: Math.max(1, (recent / max) * span),
                    height: barH, class: "recent" });
      add("text", { x: left + (recent / max) * span + 4, y: y + 2 * barH + 1, class: "value" },
          pct(recent));
    });
    box.append(svg);
    const moves = (p.drift || []).map((d) => d.category + " " + d.direction + " (" +
      (d.delta > 0 ? "+" : "") + pct(d.delta) + ")");
    box.append(el("p", { class: "muted", id: "drift-text",
                         text: moves.length ? "Drift: " + moves.join(", ") + "."
                                            : "No category moved noticeably." }));
  }

  function pct(x) { return Math.round(x * 1000) / 10 + "%"; }

  // -- tabs (arrow keys move between them, as in the WAI-ARIA tabs pattern) -------------
  function selectTab(name) {
    for (const t of ["chat", "profile"]) {
      const on = t === name;
      $("tab-" + t).setAttribute("aria-selected", String(on));
      $("tab-" + t).tabIndex = on ? 0 : -1;
      $("panel-" + t).hidden = !on;
    }
    if (name === "profile") loadProfile();
  }

  // -- wiring ---------------------------------------------------------------------------------
  function init() {
    $("who").addEventListener("submit", (e) => {
      e.preventDefault();
      setUser($("user-id").value.trim());
    });
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("api-key").value.trim();
      if (value.startsWith("tlu_") && state.user) {  // a user's token: for that user only
        sessionStorage.setItem(TOKEN_STORE + state.user, value);
      } else {  // the operator key: it replaces a token this user may have had
        state.key = value;
        sessionStorage.setItem(KEY_STORE, value);
        if (state.user) sessionStorage.removeItem(TOKEN_STORE + state.user);
      }
      $("api-key").value = "";
      $("key-form").hidden = true;
      const retry = state.retry;
      state.retry = null;
      if (retry) retry();
    });
    $("chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("message").value;
      $("message").value = "";
      send(text);
    });
    for (const chip of document.querySelectorAll(".chip")) {
      chip.addEventListener("click", () => send(chip.dataset.say));
    }
    $("dislike-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      if (await edit("dislike", $("dislike").value.trim())) $("dislike").value = "";
    });
    for (const t of ["chat", "profile"]) {
      $("tab-" + t).addEventListener("click", () => selectTab(t));
      $("tab-" + t).addEventListener("keydown", (e) => {
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          const other = t === "chat" ? "profile" : "chat";
          selectTab(other);
          $("tab-" + other).focus();
        }
      });
    }
    window.addEventListener("error", (e) => showAlert("Something broke on this page: " +
                                                      e.message));
    window.addEventListener("unhandledrejection", (e) => showAlert(
      "Something broke on this page: " + (e.reason && e.reason.message || e.reason)));
    setUser(new URL(window.location.href).searchParams.get("user"));
  }

  init();
})();
