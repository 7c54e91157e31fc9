// Forge playground: chat, compare, rate, correct and retrain through the server's own HTTP API.
// Safety rule: text from the model, the person or the server is only ever set with textContent (or as an
// attribute value); no HTML is built from data. The page's Content-Security-Policy forbids inline script too.
"use strict";

const FINAL = ["succeeded", "failed", "cancelled"];
const JOB_POLL_MS = 2000;
const STATUS_POLL_MS = 10000;
const SWAP_WAIT_MS = 180000; // after a job publishes a version, how long to wait for the server to swap to it

const state = {
  history: [], // the conversation sent with the next message: {role, content}
  chat: 0, // which conversation is on screen ("New chat" starts another)
  unchosen: null, // closes the last side-by-side pair if the chat goes on before a reply is chosen
  adminToken: null, // kept in this tab's memory only
  adminNeeded: false,
  serving: null,
  models: [],
  following: null, // the fine-tuning job id being followed
  afterToken: null, // what to do once a token is entered
  busy: false, // a reply is streaming
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// -- DOM helpers: every piece of text goes through textContent --------------------------------------------
function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function button(text, label, onClick) {
  const element = node("button", "", text);
  element.type = "button";
  if (label) element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

// Control characters shown as their visible Unicode pictures (ESC as ␛), never passed to the page raw.
function visible(text) {
  return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) =>
    c === "\u007f" ? "\u2421" : String.fromCharCode(0x2400 + c.charCodeAt(0)),
  );
}

function setText(element, text) {
  element.textContent = visible(text);
}

// -- the API ------------------------------------------------------------------------------------------------
async function api(path, { method = "GET", body, admin = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (admin && state.adminToken) headers.authorization = `Bearer ${state.adminToken}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, (data.error && data.error.message) || `HTTP ${response.status}`);
  }
  return data;
}

// One streamed chat completion; `onText(text, version, chunks)` after each delta. Resolves with the reply,
// the version that wrote it (the stream's `model`, also the x-forge-model-version header) and its id.
async function streamChat(messages, model, onText) {
  const body = {
    messages,
    stream: true,
    temperature: Number($("temperature").value),
    max_tokens: Number($("max-tokens").value),
  };
  if (model) body.model = model;
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(response.status, (data.error && data.error.message) || `HTTP ${response.status}`);
  }
  const reply = { id: null, version: response.headers.get("x-forge-model-version"), text: "", chunks: 0 };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return reply;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const payload = line.slice(6);
        if (payload === "[DONE]") return reply;
        const event = JSON.parse(payload);
        if (event.error) throw new ApiError(500, event.error.message);
        reply.id = reply.id || event.id;
        reply.version = event.model || reply.version;
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        if (delta && delta.content) {
          reply.text += delta.content;
          reply.chunks += 1;
          onText(reply.text, reply.version, reply.chunks);
        }
      }
    }
  }
}

async function record(interaction) {
  const saved = await api("/v1/interactions", { method: "POST", body: interaction });
  refreshStatus().catch(() => {}); // the "new interactions" count
  return saved;
}

// -- chat -----------------------------------------------------------------------------------------------------
function conversationStart() {
  const system = $("system-prompt").value;
  return system.trim() ? [{ role: "system", content: system }, ...state.history] : [...state.history];
}

function scrollChat() {
  const chat = $("chat");
  chat.scrollTop = chat.scrollHeight;
}

function userTurn(text) {
  const turn = node("div", "turn user");
  turn.append(node("span", "visually-hidden", "You: "));
  const body = node("p", "text");
  setText(body, text);
  turn.append(body);
  return turn;
}

function confirm(card, text, ok = true) {
  const line = card.querySelector(".confirm");
  line.className = ok ? "confirm" : "confirm error";
  setText(line, text);
}

// A reply card: version label, streamed text, thumbs up/down and "correct this reply".
function replyCard(title) {
  const card = node("article", "turn reply");
  card.dataset.state = "streaming";
  const head = node("div", "reply-head");
  if (title) head.append(node("span", "slot", title));
  const version = node("span", "version", "…");
  const status = node("span", "state", "streaming…");
  head.append(version, status);
  const text = node("p", "text");
  const actions = node("div", "actions");
  const confirmLine = node("p", "confirm");
  confirmLine.setAttribute("role", "status");
  card.append(head, text, actions, confirmLine);
  card.parts = { version, status, text, actions };
  return card;
}

function showStreaming(card, text, version, chunks) {
  setText(card.parts.text, text);
  setText(card.parts.version, version || "…");
  card.dataset.chunks = String(chunks);
  scrollChat();
}

// One exchange of the chat: the user's text and where its answer sits in `state.history`. The answer is the
// reply, the reply chosen side by side, or the person's correction, whichever they did last: later turns send
// that as history, so the model continues the conversation the person settled on.
function newTurn(text) {
  return { chat: state.chat, user: text, index: null };
}

function answer(turn, text) {
  if (turn.chat !== state.chat) return; // that conversation was closed with "New chat"
  if (turn.index === null) {
    state.history.push({ role: "user", content: turn.user }, { role: "assistant", content: text });
    turn.index = state.history.length - 1;
  } else {
    state.history[turn.index] = { role: "assistant", content: text };
  }
}

function finishCard(card, reply, conversation, turn) {
  card.dataset.state = "done";
  card.dataset.responseId = reply.id || "";
  card.dataset.version = reply.version || "";
  setText(card.parts.version, reply.version || "unknown version");
  setText(card.parts.status, `${reply.chunks} streamed pieces`);
  if (!reply.text.trim()) {
    setText(card.parts.text, "(empty reply)");
    return;
  }
  const rated = [...conversation, { role: "assistant", content: reply.text }];
  const up = button("▲ Good", "Good reply", () => rate("up"));
  const down = button("▼ Bad", "Bad reply", () => rate("down"));
  const correct = button("✎ Correct", "Correct this reply", () => openCorrection());
  card.parts.actions.append(up, down, correct);

  async function rate(rating) {
    up.disabled = down.disabled = true;
    try {
      const saved = await record({ messages: rated, rating, response_id: reply.id });
      (rating === "up" ? up : down).setAttribute("aria-pressed", "true");
      confirm(card, `Saved: rated ${rating === "up" ? "good" : "bad"} for ${reply.version} (${saved.interaction_id.slice(0, 8)})`);
    } catch (error) {
      up.disabled = down.disabled = false;
      confirm(card, `Not saved: ${error.message}`, false);
    }
  }

  function openCorrection() {
    if (card.querySelector(".correct-form")) return;
    const form = node("form", "correct-form");
    const id = `correction-${Math.random().toString(36).slice(2)}`;
    const label = node("label", "", "Corrected reply");
    label.htmlFor = id;
    const area = node("textarea");
    area.id = id;
    area.rows = 3;
    area.required = true;
    area.value = reply.text;
    const save = node("button", "", "Save correction");
    save.type = "submit";
    const cancel = button("Cancel", "", () => form.remove());
    cancel.className = "secondary";
    const row = node("div", "actions");
    row.append(save, cancel);
    form.append(label, area, row);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      save.disabled = true;
      try {
        const saved = await record({ messages: rated, corrected_reply: area.value, response_id: reply.id });
        answer(turn, area.value);
        form.remove();
        correct.disabled = true;
        const shown = node("div", "corrected");
        shown.append(node("strong", "", "Corrected: "));
        const body = node("span", "text");
        setText(body, area.value);
        shown.append(body);
        card.insertBefore(shown, card.querySelector(".confirm"));
        confirm(card, `Saved: correction of ${reply.version}'s reply (${saved.interaction_id.slice(0, 8)})`);
      } catch (error) {
        save.disabled = false;
        confirm(card, `Not saved: ${error.message}`, false);
      }
    });
    card.insertBefore(form, card.querySelector(".confirm"));
    area.focus();
  }
}

function failCard(card, error) {
  card.dataset.state = "error";
  setText(card.parts.status, `failed: ${error.message}`);
}

async function askOne(text) {
  const conversation = [...conversationStart(), { role: "user", content: text }];
  const turn = newTurn(text);
  const card = replyCard();
  $("chat").append(card);
  try {
    const reply = await streamChat(conversation, $("model").value, (t, v, n) => showStreaming(card, t, v, n));
    finishCard(card, reply, conversation, turn);
    if (reply.text.trim()) answer(turn, reply.text);
  } catch (error) {
    failCard(card, error);
  }
}

// Side by side: the same conversation to two versions, one after the other; the person's pick is a `choice`
// interaction and becomes the conversation's reply (a correction of either reply does too).
async function askTwo(text) {
  const conversation = [...conversationStart(), { role: "user", content: text }];
  const turn = newTurn(text);
  const pair = node("div", "pair");
  pair.setAttribute("role", "group");
  pair.setAttribute("aria-label", "Two versions side by side");
  const cards = [replyCard("A"), replyCard("B")];
  pair.append(...cards);
  const choose = node("div", "turn reply choose");
  const chooseLine = node("p", "confirm");
  chooseLine.setAttribute("role", "status");
  const buttons = [0, 1].map((index) =>
    button(`Choose ${"AB"[index]}`, `Choose reply ${"AB"[index]}`, () => pick(index)),
  );
  buttons.forEach((b) => (b.disabled = true));
  const row = node("div", "actions");
  row.append(node("span", "", "Which answer is better? "), ...buttons);
  choose.append(row, chooseLine);
  $("chat").append(pair, choose);
  const replies = [];
  for (const [index, model] of [$("model").value, $("model-b").value].entries()) {
    try {
      const reply = await streamChat(conversation, model, (t, v, n) => showStreaming(cards[index], t, v, n));
      finishCard(cards[index], reply, conversation, turn);
      replies.push(reply);
    } catch (error) {
      failCard(cards[index], error);
      setText(chooseLine, "Nothing to choose: a version did not answer.");
      chooseLine.className = "confirm error";
      return;
    }
  }
  buttons.forEach((b) => (b.disabled = false));
  // A choice made after a later message would answer a turn the later message was sent without.
  state.unchosen = () => {
    if (turn.index !== null || buttons.every((b) => b.disabled)) return;
    buttons.forEach((b) => (b.disabled = true));
    chooseLine.className = "confirm";
    setText(chooseLine, "Not chosen: the chat went on without this turn.");
  };

  async function pick(chosen) {
    buttons.forEach((b) => (b.disabled = true));
    try {
      const saved = await record({
        messages: conversation,
        choice: {
          replies: replies.map((r) => r.text),
          chosen,
          model_versions: replies.map((r) => r.version),
        },
      });
      buttons[chosen].setAttribute("aria-pressed", "true");
      chooseLine.className = "confirm";
      setText(chooseLine, `Saved: you chose ${"AB"[chosen]} (${replies[chosen].version}) (${saved.interaction_id.slice(0, 8)})`);
      answer(turn, replies[chosen].text);
    } catch (error) {
      buttons.forEach((b) => (b.disabled = false));
      chooseLine.className = "confirm error";
      setText(chooseLine, `Not saved: ${error.message}`);
    }
  }
}

async function send(event) {
  if (event) event.preventDefault();
  const box = $("message");
  const text = box.value;
  if (!text.trim() || state.busy) return; // Enter while a reply is still streaming waits for it
  state.busy = true;
  if (state.unchosen) state.unchosen();
  state.unchosen = null;
  const sendButton = $("send");
  sendButton.disabled = true;
  box.value = "";
  const empty = $("chat").querySelector(".empty");
  if (empty) empty.remove();
  $("chat").append(userTurn(text));
  scrollChat();
  try {
    await ($("side-by-side").checked ? askTwo(text) : askOne(text));
  } finally {
    state.busy = false;
    sendButton.disabled = false;
    box.focus();
  }
}

function newConversation() {
  state.history = [];
  state.chat += 1;
  const chat = $("chat");
  chat.replaceChildren(node("p", "empty", "Ask your model something."));
  $("message").focus();
}

// -- versions and status --------------------------------------------------------------------------------------
function evaluationText(entry) {
  const figures = (entry && entry.evaluation) || {};
  const tuned = figures.tuned_perplexity;
  const base = figures.base_perplexity;
  if (typeof tuned !== "number" || typeof base !== "number") return "no evaluation recorded";
  const change = ((tuned / base - 1) * 100).toFixed(1);
  return `held-out perplexity ${tuned.toFixed(2)} vs base ${base.toFixed(2)} (${change > 0 ? "+" : ""}${change}%)`;
}

function fillPicker(select, models, serving, includeDefault) {
  const previous = select.value;
  const options = [];
  if (includeDefault) options.push(["", "Server's choice (current or A/B)"]);
  for (const model of models) {
    const tags = [model.id === serving ? "current" : "", model.candidate ? "candidate" : ""].filter(Boolean);
    options.push([model.id, tags.length ? `${model.id} (${tags.join(", ")})` : model.id]);
  }
  select.replaceChildren(
    ...options.map(([value, text]) => {
      const option = node("option", "", text);
      option.value = value;
      return option;
    }),
  );
  if (options.some(([value]) => value === previous)) select.value = previous;
}

async function refreshModels() {
  const listing = await api("/v1/models");
  state.models = listing.data;
  state.serving = listing.serving;
  setText($("current-version"), listing.serving || "no model");
  fillPicker($("model"), listing.data, listing.serving, true);
  const second = $("model-b");
  const hadChoice = second.value;
  fillPicker(second, listing.data, listing.serving, false);
  if (!hadChoice) {
    // Default to a version other than the current one, so side by side compares something.
    const other = listing.data.find((m) => m.candidate) || listing.data.find((m) => m.id !== listing.serving);
    if (other) second.value = other.id;
  }
  const current = listing.data.find((m) => m.id === listing.serving);
  setText($("status-current"), listing.serving || "no model served");
  setText($("status-current-eval"), current ? evaluationText(current) : "");
  const candidate = listing.data.find((m) => m.candidate);
  setText($("status-candidate"), candidate ? candidate.id : "none");
  setText($("status-candidate-eval"), candidate ? evaluationText(candidate) : "");
}

function describeJob(job, latest) {
  const parts = [job.id, job.status];
  if (job.fine_tuned_model) parts.push(`published ${job.fine_tuned_model}`);
  if (job.trained_tokens) parts.push(`${job.trained_tokens.toLocaleString("en")} tokens trained`);
  if (job.error && job.error.message) parts.push(job.error.message);
  if (latest && !FINAL.includes(job.status)) parts.push(latest);
  return parts.join(" · ");
}

// Dagster's run-level events, in words; step events name their step instead.
const RUN_EVENTS = {
  RUN_ENQUEUED: "queued",
  RUN_DEQUEUED: "starting",
  RUN_STARTING: "starting",
  RUN_START: "started",
  RUN_SUCCESS: "finished",
  RUN_FAILURE: "failed",
  RUN_CANCELING: "cancelling",
  RUN_CANCELED: "cancelled",
};
// The training step's own progress line (train/tracking.py): "step 4/64 (6%) loss 2.31 68 tok/s ETA 2m55s".
const TRAINING_LINE = /^step (\d+)\/(\d+) \((\d+)%\)(?:.*?ETA (\S+))?/;

// Where the job is, from its newest events (newest first): the asset being materialized, the training step's
// progress and estimate when it is training.
function describeProgress(events) {
  const stepEvent = events.find((e) => e.data && e.data.step);
  const training = events.find((e) => e.data && e.data.step === "lora_adapter" && TRAINING_LINE.test(e.message));
  if (stepEvent && stepEvent.data.step === "lora_adapter" && training) {
    const [, step, total, percent, eta] = training.message.match(TRAINING_LINE);
    return `training: step ${step}/${total} (${percent}%)${eta ? `, about ${eta} left` : ""}`;
  }
  if (stepEvent) return `running ${stepEvent.data.step}`;
  const run = events.find((e) => e.data && RUN_EVENTS[e.data.dagster_event]);
  return run ? RUN_EVENTS[run.data.dagster_event] : "";
}

async function latestEvent(jobId) {
  try {
    const events = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?limit=50`, { admin: true });
    return describeProgress(events.data);
  } catch (error) {
    return "";
  }
}

function showRunLink(job) {
  const link = $("job-run-link");
  if (job && job.dagster_run_url) {
    link.href = job.dagster_run_url;
    link.hidden = false;
  } else {
    link.hidden = true;
  }
}

// One line that agrees with the "Serving" label: the newest trained version is named with what became of it.
function interactionsText(status) {
  const trained = status.last_training;
  const count = status.interactions_since_training;
  if (!trained) return `${count} (no version trained yet)`;
  const serving = state.serving || trained.current;
  if (trained.version === serving) return `${count} since ${trained.version} (serving) was trained`;
  const fate =
    trained.version === trained.candidate ? "the A/B candidate" : trained.promoted ? "promoted" : "not promoted";
  return `${count} since ${trained.version} was trained (${fate}; serving ${serving || "nothing"})`;
}

async function refreshStatus() {
  const status = await api("/playground/status", { admin: true });
  state.adminNeeded = status.admin !== "ok";
  $("enter-token").hidden = !state.adminNeeded;
  setText($("status-interactions"), interactionsText(status));
  if (state.adminNeeded) {
    setText($("status-job"), "enter the admin token to see jobs");
    return;
  }
  if (state.following) return; // the follower keeps the job line up to date
  const jobs = await api("/v1/fine_tuning/jobs?limit=1", { admin: true });
  if (!jobs.data.length) {
    setText($("status-job"), "none yet");
    return;
  }
  const job = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobs.data[0].id)}`, { admin: true }).catch(
    () => jobs.data[0],
  );
  setText($("status-job"), describeJob(job, await latestEvent(job.id)));
  showRunLink(job);
  if (!FINAL.includes(job.status)) follow(job.id);
}

async function refreshAll() {
  try {
    await refreshModels();
    await refreshStatus();
  } catch (error) {
    trainMessage(`Status unavailable: ${error.message}`, false);
  }
}

// -- train now ---------------------------------------------------------------------------------------------------
function trainMessage(text, ok = true) {
  const line = $("train-message");
  line.className = ok ? "message" : "message error";
  setText(line, text);
}

function askForToken(then, why) {
  state.afterToken = then;
  $("admin-token-form").hidden = false;
  trainMessage(why, false);
  $("admin-token").focus();
}

async function trainNow() {
  if (state.adminNeeded && !state.adminToken) {
    askForToken(trainNow, "This server needs the admin token to start a job.");
    return;
  }
  $("train-now").disabled = true;
  trainMessage("Starting a fine-tuning job…");
  try {
    const job = await api("/v1/fine_tuning/jobs", {
      method: "POST",
      admin: true,
      // 'current': the serving version learns what is new since it was trained (minutes), not a full retrain.
      body: { model: "current", suffix: "playground" },
    });
    trainMessage(`Started ${job.id}.`);
    setText($("status-job"), describeJob(job));
    showRunLink(job);
    follow(job.id);
  } catch (error) {
    $("train-now").disabled = false;
    if (error.status === 403) {
      state.adminToken = null;
      askForToken(trainNow, `Admin token refused: ${error.message}`);
    } else {
      trainMessage(`Could not start a job: ${error.message}`, false);
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Follows a job to its end, then to the hot-swap: the version label changes once the server serves the version
// the job published.
async function follow(jobId) {
  if (state.following === jobId) return;
  state.following = jobId;
  $("train-now").disabled = true;
  try {
    let job;
    for (;;) {
      job = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}`, { admin: true });
      setText($("status-job"), describeJob(job, await latestEvent(jobId)));
      showRunLink(job);
      if (FINAL.includes(job.status)) break;
      await sleep(JOB_POLL_MS);
    }
    if (job.status !== "succeeded") {
      trainMessage(`${job.id} ${job.status}${job.error ? `: ${job.error.message}` : ""}`, false);
      return;
    }
    const version = job.fine_tuned_model;
    await refreshModels();
    const entry = state.models.find((m) => m.id === version);
    if (entry && entry.candidate) {
      trainMessage(`${version} is the A/B candidate; ${state.serving} stays current.`);
      return;
    }
    if (!entry || !entry.promoted) {
      trainMessage(`${version} was published but not promoted (the evaluation gate); ${state.serving} stays current.`);
      return;
    }
    trainMessage(`${version} published; waiting for the server to switch to it…`);
    const deadline = Date.now() + SWAP_WAIT_MS;
    while (state.serving !== version && Date.now() < deadline) {
      await sleep(1000);
      await refreshModels();
    }
    if (state.serving === version) trainMessage(`${version} is now serving.`);
    else trainMessage(`${version} is current in the manifest but the server still serves ${state.serving}.`, false);
  } catch (error) {
    trainMessage(`Lost track of ${jobId}: ${error.message}`, false);
  } finally {
    state.following = null;
    $("train-now").disabled = false;
    refreshStatus().catch(() => {});
  }
}

// -- wiring ------------------------------------------------------------------------------------------------------
function init() {
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  $("new-chat").addEventListener("click", newConversation);
  $("side-by-side").addEventListener("change", () => {
    $("model-b-row").hidden = !$("side-by-side").checked;
  });
  $("train-now").addEventListener("click", trainNow);
  $("enter-token").addEventListener("click", () => askForToken(null, "Enter the admin token to see and start jobs."));
  $("admin-token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.adminToken = $("admin-token").value;
    $("admin-token").value = "";
    $("admin-token-form").hidden = true;
    const then = state.afterToken;
    state.afterToken = null;
    trainMessage(then ? "Token set for this tab." : "Token set for this tab; no job was started.");
    refreshStatus()
      .catch(() => {})
      .then(() => then && then());
  });
  newConversation();
  refreshAll();
  setInterval(() => {
    if (!document.hidden) refreshAll();
  }, STATUS_POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
