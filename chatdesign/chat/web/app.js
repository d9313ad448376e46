// The chat page: plain JavaScript, no build step. It speaks the protocol of
// chatdesign/chat/protocol.py over ws://HOST:PORT/ws. Delivery is at-least-once: the page keeps
// its last received seq per conversation (in localStorage), presents it on every (re)connect,
// acknowledges what it keeps with "delivered" frames and drops repeats by seq.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#2f6fed", "#8e44ad", "#16a085", "#d35400", "#c0392b", "#2c3e50", "#7f8c8d", "#27ae60"];

const state = {
  token: null, user: null, device: null, ws: null, connected: false, attempt: 0, nextId: 1,
  waiting: new Map(),        // request id -> resolve
  unacked: new Map(),        // client_message_id -> send frame (resent after a reconnect)
  conversations: new Map(),  // conversation_id -> summary (+ messages: Map seq -> message)
  positions: {},             // conversation_id -> last received seq (this device's record)
  presence: {},              // user_id -> status
  open: null, syncing: false, resyncWanted: false, heartbeat: null, oldestLoaded: {},
};

function colorOf(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}
function initials(name) {
  const words = name.split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 1)).toUpperCase();
}
function nice(userId) { return userId.charAt(0).toUpperCase() + userId.slice(1); }
function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
function positionsKey() { return `chatdesign.positions.${state.user}.${state.device}`; }
function savePositions() { localStorage.setItem(positionsKey(), JSON.stringify(state.positions)); }

// --- login -------------------------------------------------------------------------------------

function deviceId() {
  let device = sessionStorage.getItem("chatdesign.device");
  if (!device) {
    device = "web-" + Math.random().toString(36).slice(2, 10);
    sessionStorage.setItem("chatdesign.device", device);
  }
  return device;
}

async function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  const box = $("demo-users");
  box.textContent = "";
  try {
    const reply = await (await fetch("/api/demo")).json();
    for (const user of reply.users || []) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.testid = `login-${user}`;
      button.innerHTML = `<span class="avatar" style="background:${colorOf(user)}">${initials(user)}</span>`;
      button.append(nice(user));
      button.onclick = () => demoLogin(user);
      box.append(button);
    }
  } catch (error) { /* no demo users: the token form is the way in */ }
}

async function demoLogin(user) {
  const reply = await (await fetch(`/api/demo?user=${encodeURIComponent(user)}&device=${deviceId()}`)).json();
  if (!reply.token) { $("login-error").textContent = reply.message || "login failed"; return; }
  startSession(reply.token);
}

function startSession(token) {
  state.token = token;
  sessionStorage.setItem("chatdesign.token", token);
  connect();
}

$("token-form").onsubmit = (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (token) startSession(token);
};

$("logout").onclick = () => {
  sessionStorage.removeItem("chatdesign.token");
  state.token = null;
  if (state.ws) state.ws.close(1000, "logout");
  location.reload();
};

// --- the connection ----------------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", id: "auth", token: state.token }));
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.connected = false;
    clearInterval(state.heartbeat);
    for (const resolve of state.waiting.values()) resolve(null);
    state.waiting.clear();
    if (event.code === 4001 || !state.token) {
      sessionStorage.removeItem("chatdesign.token");
      showLogin(event.reason || "Please log in again.");
      return;
    }
    $("status-banner").hidden = false;
    // exponential backoff with jitter: 0.25 s doubling up to 5 s, each delay 50-100 % of it
    const ceiling = Math.min(5000, 250 * 2 ** state.attempt);
    state.attempt += 1;
    setTimeout(connect, ceiling * (0.5 + Math.random() / 2));
  };
}

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

function request(frame) {
  const id = `p${state.nextId++}`;
  return new Promise((resolve) => {
    state.waiting.set(id, resolve);
    send({ ...frame, id });
  });
}

async function onWelcome(frame) {
  const firstTime = state.user === null;
  state.user = frame.user_id;
  state.device = frame.device_id;
  state.connected = true;
  state.attempt = 0;
  $("status-banner").hidden = true;
  if (firstTime) {
    state.positions = JSON.parse(localStorage.getItem(positionsKey()) || "{}");
    $("login").hidden = true;
    $("app").hidden = false;
    $("me-name").textContent = nice(state.user);
    $("me-device").textContent = state.device;
    const me = $("me-avatar");
    me.textContent = initials(state.user);
    me.style.background = colorOf(state.user);
  }
  clearInterval(state.heartbeat);
  state.heartbeat = setInterval(() => send({ type: "heartbeat", active: document.hasFocus() }),
                                1000 * (frame.heartbeat_interval_s || 5));
  for (const frameToResend of state.unacked.values()) send(frameToResend);
  await loadConversations();
  resync();
  const statuses = await request({ type: "presence" });
  if (statuses) for (const s of statuses.statuses) state.presence[s.user_id] = s.status;
  renderConversations();
  renderHeader();
}

function onFrame(frame) {
  switch (frame.type) {
    case "welcome": onWelcome(frame); return;
    case "message": takePush(frame.message); return;
    case "receipt": takeReceipt(frame); return;
    case "presence_update":
      for (const change of frame.changes) state.presence[change.user_id] = change.status;
      renderConversations(); renderHeader(); return;
    case "ack": takeAck(frame); return;
    case "sync": if (frame.id === "resync") { takeSync(frame); return; } break;
    case "error":
      if (frame.id && state.unacked.has(frame.id)) { failSend(frame); return; }
      break;
  }
  const resolve = state.waiting.get(frame.id);
  if (resolve) { state.waiting.delete(frame.id); resolve(frame.type === "error" ? null : frame); }
}

// --- messages: positions, de-duplication, acknowledgements -------------------------------------

function conversation(id) {
  let c = state.conversations.get(id);
  if (!c) {
    c = { conversation_id: id, kind: id.startsWith("g:") ? "group" : "direct", title: id, members: [],
          seen: {}, unread_count: 0, last_seq: 0, messages: new Map(), updated_at: 0 };
    state.conversations.set(id, c);
  }
  if (!c.messages) c.messages = new Map();
  return c;
}

function resync() {
  if (state.syncing) { state.resyncWanted = true; return; }
  state.syncing = true;
  send({ type: "sync", id: "resync", positions: state.positions });
}

function takeSync(frame) {
  state.syncing = false;
  const acks = {};
  for (const [id, messages] of Object.entries(frame.conversations || {})) {
    for (const m of messages) {
      if (m.seq <= (state.positions[id] || 0)) continue;  // a repeat: already shown
      keep(m);
      acks[id] = m.seq;
    }
  }
  acknowledge(acks);
  if (state.resyncWanted) { state.resyncWanted = false; resync(); }
  renderConversations();
  renderMessages();
}

function takePush(m) {
  const position = state.positions[m.conversation_id];
  if (position !== undefined && m.seq <= position) return;         // duplicate
  if (position !== undefined && m.seq > position + 1) { resync(); return; }  // a gap: sync fills it
  keep(m);
  acknowledge({ [m.conversation_id]: m.seq });
  if (!state.conversations.get(m.conversation_id).title || m.seq === 1) loadConversations();
  renderConversations();
  if (state.open === m.conversation_id) renderMessages();
}

function keep(m) {
  const c = conversation(m.conversation_id);
  const isNew = !c.messages.has(m.seq);
  c.messages.set(m.seq, m);
  state.positions[m.conversation_id] = Math.max(state.positions[m.conversation_id] || 0, m.seq);
  if (m.seq > c.last_seq) {
    c.last_seq = m.seq;
    c.last_message_preview = m.content || "Photo";
    c.last_sender_id = m.sender_id;
    c.updated_at = m.created_at;
  }
  if (isNew && m.sender_id !== state.user && state.open !== m.conversation_id
      && m.seq > (c.seen[state.user] || 0)) {
    c.unread_count = Math.max(c.unread_count, m.seq - (c.seen[state.user] || 0));
  }
  if (m.sender_id === state.user) c.seen[state.user] = Math.max(c.seen[state.user] || 0, m.seq);
  savePositions();
}

function acknowledge(acks) {
  for (const [conversationId, seq] of Object.entries(acks)) {
    send({ type: "delivered", conversation_id: conversationId, seq });
  }
}

function takeReceipt(frame) {
  const c = conversation(frame.conversation_id);
  c.seen[frame.user_id] = Math.max(c.seen[frame.user_id] || 0, frame.seq);
  if (state.open === frame.conversation_id) renderMessages();
}

async function loadConversations() {
  const page = await request({ type: "conversations", page_number: 0, page_size: 50 });
  if (!page) return;
  for (const item of page.items) {
    const c = conversation(item.conversation_id);
    const messages = c.messages;
    Object.assign(c, item, { messages });
    if (state.open === item.conversation_id) c.unread_count = 0;
  }
  renderConversations();
  if (!state.open && page.items.length) openConversation(page.items[0].conversation_id);
}

// --- sending -----------------------------------------------------------------------------------

function sendMessage(content, attachments) {
  if (!state.open || (!content && !attachments.length)) return;
  const clientMessageId = crypto.randomUUID();
  const frame = { type: "send", id: clientMessageId, to: state.open, content, client_message_id: clientMessageId,
                  attachments };
  state.unacked.set(clientMessageId, frame);
  renderMessages();
  send(frame);
}

function takeAck(frame) {
  const pending = state.unacked.get(frame.id);
  if (!pending) return;
  state.unacked.delete(frame.id);
  const c = conversation(frame.conversation_id);
  c.seen[state.user] = Math.max(c.seen[state.user] || 0, frame.seq);
  // the server does not push our own message back: build it from the send and its ack, and
  // keep it only when it is the next seq (positions stay contiguous); after a gap, sync fetches both
  const position = state.positions[frame.conversation_id] || 0;
  if (frame.seq === position + 1) {
    keep({ message_id: frame.message_id, conversation_id: frame.conversation_id, seq: frame.seq,
           sender_id: state.user, content: pending.content, created_at: frame.created_at,
           attachments: pending.attachments || [] });
    acknowledge({ [frame.conversation_id]: frame.seq });
    if (!c.title || frame.seq === 1) loadConversations();
    renderConversations();
  } else if (frame.seq > position + 1) {
    resync();
  }
  renderMessages();
}

function failSend(frame) {
  state.unacked.delete(frame.id);
  renderMessages();
  alert(`Not sent: ${frame.message}`);
}

$("composer").onsubmit = (event) => {
  event.preventDefault();
  const input = $("composer-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  sendMessage(text, []);
};

$("file-input").onchange = async () => {
  const file = $("file-input").files[0];
  $("file-input").value = "";
  if (!file || !state.open) return;
  const response = await fetch("/attachments", {
    method: "POST", body: file,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": file.type, "X-Filename": file.name },
  });
  const reply = await response.json();
  if (!response.ok) { alert(`Upload refused: ${reply.message}`); return; }
  sendMessage("", [reply.attachment_id]);
};

// --- reading: open a conversation, infinite scroll, seen ---------------------------------------

async function openConversation(id) {
  state.open = id;
  const c = conversation(id);
  c.unread_count = 0;
  $("composer-input").disabled = false;
  $("send-button").disabled = false;
  $("history-end").hidden = true;
  renderConversations();
  renderHeader();
  await loadOlder(id, true);
  renderMessages(true);
  markSeen();
  $("composer-input").focus();
}

async function loadOlder(id, first) {
  const c = conversation(id);
  if (c.historyDone) return;
  const seqs = [...c.messages.keys()];
  const oldest = first || !seqs.length ? null : Math.min(...seqs);
  const reply = await request({ type: "messages", conversation_id: id, before_seq: oldest, limit: 30 });
  if (!reply) return;
  for (const m of reply.messages) c.messages.set(m.seq, m);
  if (reply.messages.length < 30 || reply.messages.some((m) => m.seq === 1)) c.historyDone = true;
}

$("messages").addEventListener("scroll", async () => {
  const box = $("messages");
  if (box.scrollTop > 40 || !state.open || state.loadingOlder) return;
  state.loadingOlder = true;
  const before = box.scrollHeight;
  await loadOlder(state.open, false);
  renderMessages();
  box.scrollTop = box.scrollHeight - before;
  state.loadingOlder = false;
});

function markSeen() {
  const c = state.open && state.conversations.get(state.open);
  if (!c || !document.hasFocus() && document.visibilityState !== "visible") return;
  const last = Math.max(0, ...c.messages.keys());
  if (last > (c.seen[state.user] || 0)) {
    c.seen[state.user] = last;
    send({ type: "seen", id: `seen-${last}`, conversation_id: c.conversation_id, seq: last });
  }
}

// --- rendering -----------------------------------------------------------------------------------

function partnerOf(c) {
  return c.kind === "direct" ? (c.members || []).find((m) => m !== state.user) : null;
}

function titleOf(c) {
  const partner = partnerOf(c);
  return partner ? nice(partner) : c.title;
}

function avatar(c) {
  const span = document.createElement("span");
  span.className = "avatar";
  const title = titleOf(c);
  span.textContent = initials(title);
  span.style.background = colorOf(title);
  const partner = partnerOf(c);
  if (partner) {
    const dot = document.createElement("span");
    dot.className = "presence-dot";
    dot.dataset.user = partner;
    dot.dataset.status = state.presence[partner] || "offline";
    span.append(dot);
  }
  return span;
}

function renderConversations() {
  const list = $("conversations");
  list.textContent = "";
  const items = [...state.conversations.values()].sort((a, b) => b.updated_at - a.updated_at);
  for (const c of items) {
    const li = document.createElement("li");
    li.className = "conversation" + (c.conversation_id === state.open ? " active" : "");
    li.dataset.id = c.conversation_id;
    li.onclick = () => openConversation(c.conversation_id);
    const body = document.createElement("div");
    body.className = "body";
    const who = c.last_sender_id === state.user ? "You: " : (c.kind === "group" && c.last_sender_id
      ? `${nice(c.last_sender_id)}: ` : "");
    body.innerHTML = `<div class="top"><span class="title"></span><span class="time"></span></div>
      <div class="bottom"><span class="preview"></span></div>`;
    body.querySelector(".title").textContent = titleOf(c);
    body.querySelector(".time").textContent = c.updated_at ? clock(c.updated_at) : "";
    body.querySelector(".preview").textContent = c.last_message_preview ? who + c.last_message_preview : "No messages yet";
    if (c.unread_count > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(c.unread_count);
      body.querySelector(".bottom").append(badge);
    }
    li.append(avatar(c), body);
    list.append(li);
  }
}

function renderHeader() {
  const c = state.open && state.conversations.get(state.open);
  if (!c) return;
  $("chat-title").textContent = titleOf(c);
  const old = $("chat-avatar");
  const fresh = avatar(c);
  fresh.id = "chat-avatar";
  old.replaceWith(fresh);
  const partner = partnerOf(c);
  $("chat-subtitle").textContent = partner ? (state.presence[partner] || "offline")
    : (c.members || []).map(nice).join(", ");
}

function renderMessages(toBottom) {
  const c = state.open && state.conversations.get(state.open);
  const box = $("messages");
  if (!c) return;
  const atBottom = toBottom || box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  for (const node of [...box.querySelectorAll(".row-msg")]) node.remove();
  $("history-end").hidden = !c.historyDone;
  const others = (c.members || []).filter((m) => m !== state.user);
  const seenByAll = others.length ? Math.min(...others.map((m) => c.seen[m] || 0)) : 0;
  let previousSender = null;
  for (const seq of [...c.messages.keys()].sort((a, b) => a - b)) {
    const m = c.messages.get(seq);
    box.append(bubble(m, c, m.sender_id !== previousSender, seq <= seenByAll));
    previousSender = m.sender_id;
  }
  for (const frame of state.unacked.values()) {
    if (frame.to !== c.conversation_id) continue;
    const row = bubble({ content: frame.content, sender_id: state.user, attachments: frame.attachments,
                         created_at: Date.now() / 1000 }, c, false, false);
    row.classList.add("pending");
    box.append(row);
  }
  if (atBottom) box.scrollTop = box.scrollHeight;
  markSeen();
}

function bubble(m, c, showSender, seen) {
  const mine = m.sender_id === state.user;
  const row = document.createElement("div");
  row.className = "row-msg" + (mine ? " mine" : "");
  if (m.seq) row.dataset.seq = String(m.seq);
  if (showSender && !mine && c.kind === "group") {
    const name = document.createElement("div");
    name.className = "sender";
    name.textContent = nice(m.sender_id);
    row.append(name);
  }
  const b = document.createElement("div");
  b.className = "bubble";
  for (const id of m.attachments || []) {
    const img = document.createElement("img");
    img.alt = "attachment";
    img.src = `/attachments/${id}?token=${encodeURIComponent(state.token)}`;
    b.append(img);
  }
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.content;
  b.append(text);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = clock(m.created_at);
  if (mine) {
    const tick = document.createElement("span");
    tick.className = "tick" + (seen ? " seen" : "");
    tick.textContent = m.seq ? (seen ? "✓✓" : "✓") : "sending…";
    tick.title = seen ? "Seen" : m.seq ? "Sent" : "Sending";
    meta.append(tick);
  }
  b.append(meta);
  row.append(b);
  return row;
}

window.addEventListener("focus", markSeen);

// --- start ---------------------------------------------------------------------------------------

const saved = sessionStorage.getItem("chatdesign.token");
if (saved) startSession(saved); else showLogin();
