// ==UserScript==
// @name         Agent Co-pilot connector (web helpdesk chat)
// @namespace    agent-copilot.example
// @version      0.1.0
// @description  Sends the messages of the chat open in a web helpdesk to the Agent Co-pilot running on this computer.
// @match        https://helpdesk.example.com/*
// @grant        GM_xmlhttpRequest
// @grant        GM_getValue
// @grant        GM_setValue
// @grant        GM_deleteValue
// @grant        GM_registerMenuCommand
// @connect      127.0.0.1
// @run-at       document-idle
// @noframes
// ==/UserScript==

/*
 * A PATTERN to adapt, not a finished integration: every helpdesk's DOM differs. Change the
 * @match line above and the SELECTORS below to your helpdesk's chat view, then install the file
 * in a userscript manager (Tampermonkey, Violentmonkey).
 *
 * What it does: a MutationObserver watches the chat transcript in the page; every new (or
 * edited) message is posted as a turn event to the co-pilot's local ingest API
 * (POST http://127.0.0.1:8765/v1/turns, docs/api/openapi.yaml). The co-pilot redacts card
 * numbers and other secrets on arrival; this script never logs message text.
 *
 * Set-up, once per browser profile:
 *
 * 1. The token. Run `copilot token` (or copy it from the co-pilot's settings) and paste it via
 *    the userscript manager's menu: "Co-pilot: set token". It is kept in the userscript's own
 *    storage (GM_setValue), which the helpdesk page cannot read. It is never put in the page:
 *    not in the DOM, localStorage, a cookie, a page variable or the console. Requests go through
 *    GM_xmlhttpRequest, which runs in the manager's isolated context rather than the page's, so
 *    the helpdesk's own scripts never see the Authorization header either. "Co-pilot: forget
 *    token" removes it. After `copilot token --rotate`, paste the new one.
 *
 * 2. The Origin allowlist. The API refuses (403 "forbidden origin") any request whose Origin
 *    header is not on its exact allowlist, so that no web page can drive it. Add the helpdesk's
 *    origin, for example https://helpdesk.example.com, to the co-pilot's allowed origins:
 *    `allowed_origins` under [sources.ingest_api] in the settings, or
 *    `copilot serve --allow-origin https://helpdesk.example.com`. Depending on the browser and
 *    the manager, GM_xmlhttpRequest sends the page's origin, no Origin at all, or the
 *    extension's own (moz-extension://..., chrome-extension://...); if the status badge says
 *    "forbidden origin", find the Origin actually sent in the browser's developer tools
 *    (Network tab) and allow that exact value too. Never allow "*" or "null".
 *
 * Turn ids come from the helpdesk's message ids, so a page reload or a resend is harmless: the
 * API answers "duplicate" and nothing is counted twice. An edited message is sent again with
 * the same id and replaces the stored text.
 */

(function () {
  "use strict";

  // --- adapt these to your helpdesk ------------------------------------------------------------

  const API = "http://127.0.0.1:8765"; // the co-pilot's port (Settings, [sources.ingest_api])
  const SELECTORS = {
    transcript: "[data-testid='chat-transcript']", // the element holding the messages
    message: "[data-message-id]", // one message; its data-message-id is the turn id
    text: ".message-body", // the message text inside a message
    pending: ".is-sending, .is-typing", // not final yet: skipped until it is
  };
  // Which side wrote a message, from its classes; the first match wins.
  const ROLES = [
    ["customer", ".from-customer, .message--visitor"],
    ["agent", ".from-agent, .message--agent"],
    ["system", ".from-system, .message--event"],
  ];
  // The conversation id: the chat's id in the URL, e.g. https://helpdesk.example.com/chats/8841.
  function conversationId() {
    const match = location.pathname.match(/\/chats\/([\w-]+)/);
    return match ? "helpdesk-" + match[1] : null;
  }

  // --- the token: userscript storage only ------------------------------------------------------

  const TOKEN_KEY = "copilotToken";

  GM_registerMenuCommand("Co-pilot: set token", function () {
    // The prompt is the browser's, opened from the userscript's context, not the page's.
    const value = (window.prompt("Paste the token printed by `copilot token`:") || "").trim();
    if (value) {
      GM_setValue(TOKEN_KEY, value);
      pausedUntil = 0;
      setStatus("token saved");
      scan();
    }
  });
  GM_registerMenuCommand("Co-pilot: forget token", function () {
    GM_deleteValue(TOKEN_KEY);
    setStatus("no token: use the menu, Co-pilot: set token");
  });

  // --- a small status badge (never shows the token or message text) ----------------------------

  const badge = document.createElement("div");
  const shadow = badge.attachShadow({ mode: "closed" });
  const label = document.createElement("span");
  label.style.cssText =
    "position:fixed;right:8px;bottom:8px;z-index:2147483647;padding:2px 6px;" +
    "font:12px sans-serif;background:#223;color:#fff;border-radius:4px;opacity:.8";
  shadow.appendChild(label);
  document.documentElement.appendChild(badge);
  function setStatus(text) {
    label.textContent = "Co-pilot: " + text;
  }

  // --- reading the transcript ------------------------------------------------------------------

  const sent = new Map(); // turn key -> text last sent, so that only changes are posted
  let queue = [];
  let sending = false;
  let retryDelay = 1000;
  let pausedUntil = 0; // after a refusal that waiting (or the agent) must fix

  function roleOf(element) {
    for (const [role, selector] of ROLES) {
      if (element.matches(selector)) return role;
    }
    return null;
  }

  function scan() {
    const conversation = conversationId();
    const transcript = document.querySelector(SELECTORS.transcript);
    if (!conversation || !transcript) return;
    for (const element of transcript.querySelectorAll(SELECTORS.message)) {
      if (element.matches(SELECTORS.pending)) continue;
      const role = roleOf(element);
      const body = element.querySelector(SELECTORS.text) || element;
      const text = (body.innerText || "").trim();
      const turnId = element.getAttribute("data-message-id");
      if (!role || !text || !turnId) continue;
      const key = conversation + "\u0000" + turnId;
      if (sent.get(key) === text) continue;
      sent.set(key, text);
      const event = { conversation_id: conversation, turn_id: turnId, role: role, text: text };
      const time = element.querySelector("time[datetime]");
      if (time) event.ts = time.getAttribute("datetime");
      queue.push(event);
    }
    flush();
  }

  // Helpdesks are single-page apps: the transcript element is replaced when the agent switches
  // chats, so the whole document is observed and the transcript looked up again on each change.
  let scheduled = 0;
  new MutationObserver(function () {
    if (!scheduled) scheduled = setTimeout(function () { scheduled = 0; scan(); }, 150);
  }).observe(document.body, { childList: true, subtree: true, characterData: true });

  // --- sending ---------------------------------------------------------------------------------

  function flush() {
    if (sending || queue.length === 0 || Date.now() < pausedUntil) return;
    const token = GM_getValue(TOKEN_KEY, "");
    if (!token) {
      setStatus("no token: use the menu, Co-pilot: set token");
      return;
    }
    // One request per batch, in page order; the API takes up to 500 events or 64 KB per request.
    const batch = [];
    let size = 2;
    while (queue.length && batch.length < 100) {
      const length = JSON.stringify(queue[0]).length + 1;
      if (batch.length && size + length > 60000) break;
      size += length;
      batch.push(queue.shift());
    }
    sending = true;
    GM_xmlhttpRequest({
      method: "POST",
      url: API + "/v1/turns",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      data: JSON.stringify(batch),
      timeout: 10000,
      onload: function (response) {
        sending = false;
        handle(response, batch);
      },
      onerror: function () {
        retry(batch, "not reachable: is the co-pilot running?");
      },
      ontimeout: function () {
        retry(batch, "no answer: is the co-pilot busy?");
      },
    });
  }

  function handle(response, batch) {
    const status = response.status;
    if (status === 200) {
      retryDelay = 1000;
      setStatus("connected, " + sent.size + " messages sent");
      flush();
      return;
    }
    if (status === 429) {
      const wait = parseFloat(response.responseHeaders.match(/retry-after:\s*(\d+)/i)?.[1] || "1");
      retry(batch, "slowing down (429)", wait * 1000);
      return;
    }
    let reason = "";
    try {
      const body = JSON.parse(response.responseText);
      reason = body.field ? body.field + ": " + body.reason : body.error;
    } catch (error) {
      reason = "HTTP " + status;
    }
    if (status === 401) {
      queue = batch.concat(queue); // kept until a valid token is pasted
      pausedUntil = Infinity;
      setStatus("token refused (401): paste the current one, Co-pilot: set token");
    } else if (status === 403) {
      queue = batch.concat(queue);
      pausedUntil = Date.now() + 30000;
      setTimeout(flush, 30000);
      setStatus(reason + " (403): allow this helpdesk's origin in the co-pilot's settings");
    } else {
      // 400 (an event the API cannot read), 413, 415: resending cannot help.
      setStatus("a message was refused: " + reason);
      flush();
    }
  }

  function retry(batch, text, delay) {
    sending = false;
    queue = batch.concat(queue); // resending is safe: turn ids make repeats idempotent
    setStatus(text);
    const wait = delay || retryDelay;
    retryDelay = Math.min(retryDelay * 2, 30000);
    pausedUntil = Date.now() + wait;
    setTimeout(flush, wait);
  }

  setStatus(GM_getValue(TOKEN_KEY, "") ? "watching" : "no token: use the menu, Co-pilot: set token");
  scan();
})();
