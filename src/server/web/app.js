// The web chat page of `dsv3 serve` (docs/serving.md, "Web chat page"). Plain JavaScript, no build step.
// It talks to the server's own OpenAI-compatible API: GET /props (what the template supports),
// GET /v1/models (the model's name), POST /v1/chat/completions with stream: true, read as server-sent
// events through fetch's ReadableStream. Markdown is rendered by marked, sanitized by DOMPurify, code
// highlighted by highlight.js; all three are served by the server itself (Debian's packages, embedded).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    conversation: $('conversation'), emptyHint: $('empty-hint'), input: $('input'), composer: $('composer'),
    send: $('send'), stop: $('stop'), newChat: $('new-chat'), modelName: $('model-name'),
    settingsButton: $('settings-button'), settings: $('settings'), error: $('error'), errorText: $('error-text'),
    errorClose: $('error-close'), system: $('system-prompt'), temperature: $('temperature'), topP: $('top-p'),
    maxTokens: $('max-tokens'), seed: $('seed'), thinkingRow: $('thinking-row'), thinking: $('thinking-toggle'),
    tools: $('tools'), apiKey: $('api-key'), serverInfo: $('server-info'), keyDialog: $('key-dialog'),
    keyForm: $('key-form'), keyInput: $('key-input'), keyText: $('key-dialog-text'),
  };

  // ---- settings, kept in localStorage ----------------------------------------------------------------
  const SETTINGS = 'dsv3.settings';
  const KEY = 'dsv3.apiKey';
  const fields = {system: el.system, temperature: el.temperature, top_p: el.topP, max_tokens: el.maxTokens,
                  seed: el.seed, tools: el.tools};

  function loadSettings() {
    let s = {};
    try { s = JSON.parse(localStorage.getItem(SETTINGS) || '{}') || {}; } catch { s = {}; }
    for (const [k, input] of Object.entries(fields)) if (typeof s[k] === 'string') input.value = s[k];
    if (typeof s.thinking === 'boolean') el.thinking.checked = s.thinking;
    el.apiKey.value = localStorage.getItem(KEY) || '';
  }
  function saveSettings() {
    const s = {thinking: el.thinking.checked};
    for (const [k, input] of Object.entries(fields)) s[k] = input.value;
    localStorage.setItem(SETTINGS, JSON.stringify(s));
  }
  function setKey(key) {
    key = key.trim();
    if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
    el.apiKey.value = key;
  }
  const apiKey = () => localStorage.getItem(KEY) || '';

  // ---- the API --------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // The message of an error response: OpenAI's {"error": {"message"}}, else the body's text.
  async function errorMessage(res) {
    const text = await res.text().catch(() => '');
    let message = text.trim();
    try {
      const j = JSON.parse(text);
      if (j && j.error) message = typeof j.error === 'string' ? j.error : (j.error.message || message);
    } catch { /* not JSON */ }
    return `HTTP ${res.status}${message ? ': ' + message : ''}`;
  }

  async function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    const key = apiKey();
    if (key) headers.set('Authorization', 'Bearer ' + key);
    if (init.body) headers.set('Content-Type', 'application/json');
    const res = await fetch(path, {...init, headers, cache: 'no-store'});
    if (res.ok) return res;
    const message = await errorMessage(res);
    if (res.status === 401) askForKey(message);
    throw new ApiError(res.status, message);
  }

  // The data of each server-sent event of a response body, as it arrives ("[DONE]" included). Lines end in
  // "\n" or "\r\n" (a CR alone, which SSE also allows, is not one the server sends).
  async function* sseData(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '', ended = false;
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) {
          ended = true;
          return;
        }
        buf = (buf + value).replace(/\r\n/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const lines = buf.slice(0, end).split('\n');
          buf = buf.slice(end + 2);
          const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
          if (data.length) yield data.join('\n');
        }
      }
    } finally {
      if (!ended) reader.cancel().catch(() => {});  // the reader stopped early: the connection is dropped
    }
  }

  // ---- what the server says about itself ------------------------------------------------------------
  let props = null;  // GET /props
  let model = '';    // GET /v1/models

  // A thinking switch is offered when the template reads a `thinking` variable (DeepSeek-V3.1's, V3.2's).
  const thinkingSupported = () =>
    !!props && (props.chat_template_renderer === 'dsv32' || /\bthinking\b/.test(props.chat_template || ''));

  async function loadServerInfo() {
    try {
      props = await (await fetch('/props', {cache: 'no-store'})).json();
    } catch {
      props = null;
    }
    el.thinkingRow.hidden = !thinkingSupported();
    if (thinkingSupported() && localStorage.getItem(SETTINGS) === null) {
      el.thinking.checked = !!(props.chat_template_kwargs && props.chat_template_kwargs.thinking);
    }
    if (props) {
      el.serverInfo.textContent = `${props.model_type || 'model'} · context ${props.n_ctx} · template ` +
          `${props.chat_template_renderer} · tool calls ${props.tool_call_format} · reasoning ` +
          `${props.reasoning ? 'split' : 'off'}`;
    }
    try {
      const list = await (await api('/v1/models')).json();
      model = (list.data && list.data[0] && list.data[0].id) || '';
      el.modelName.textContent = model || '(unknown model)';
      hideError();
    } catch (e) {
      el.modelName.textContent = '(not connected)';
      if (e.status !== 401) showError(e.message);
    }
    document.body.dataset.ready = 'true';
  }

  function askForKey(message) {
    el.keyText.textContent = message;
    el.keyInput.value = apiKey();
    if (!el.keyDialog.open) el.keyDialog.showModal();
    el.keyInput.focus();
  }

  // ---- errors ---------------------------------------------------------------------------------------
  function showError(message) {
    el.errorText.textContent = message;
    el.error.hidden = false;
  }
  function hideError() { el.error.hidden = true; }

  // ---- rendering ------------------------------------------------------------------------------------
  let fullHighlight = false;  // highlightAuto for unlabelled code: only once a reply is complete (it is slow)
  marked.setOptions({
    gfm: true,
    headerIds: false,
    mangle: false,
    highlight(code, lang) {
      try {
        if (lang && hljs.getLanguage(lang)) return hljs.highlight(lang, code, true).value;
        if (fullHighlight) return hljs.highlightAuto(code).value;
      } catch { /* left plain */ }
      return code;
    },
  });
  // Links from a reply open elsewhere and do not tell where they came from.
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A' && node.hasAttribute('href')) {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer');
    }
  });

  function renderMarkdown(target, text, final) {
    fullHighlight = final;
    target.innerHTML = DOMPurify.sanitize(marked.parse(text));
    for (const code of target.querySelectorAll('pre > code')) code.classList.add('hljs');
  }

  function prettyArguments(args) {
    try { return JSON.stringify(JSON.parse(args), null, 2); } catch { return args; }
  }

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function nearBottom() {
    const c = el.conversation;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }
  function keepAtBottom(wasNear) {
    if (wasNear) el.conversation.scrollTop = el.conversation.scrollHeight;
  }

  function addMessageView(role, label) {
    el.emptyHint.hidden = true;
    const article = node('article', `message ${role}`);
    article.setAttribute('aria-label', label);
    article.append(node('span', 'role', label));
    const wasNear = nearBottom();
    el.conversation.append(article);
    keepAtBottom(wasNear);
    return article;
  }

  // One assistant reply as it streams: a collapsible "Thinking" block, the markdown content, tool-call cards.
  class ReplyView {
    constructor() {
      this.article = addMessageView('assistant', 'Assistant');
      this.article.dataset.state = 'streaming';
      this.thinking = null;
      this.content = node('div', 'content');
      this.calls = node('div', 'tool-calls');
      this.meta = node('div', 'meta');
      this.article.append(this.content, this.calls, this.meta);
      this.cards = [];
      this.pending = false;
      this.collapsed = false;
      this.started = performance.now();
    }

    // Re-renders at most once a frame however fast the chunks come.
    schedule(reply) {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        if (this.article.dataset.state === 'streaming') this.render(reply, false);
      });
    }

    render(reply, final) {
      const wasNear = nearBottom();
      if (reply.reasoning) {
        if (!this.thinking) {
          this.thinking = node('details', 'thinking');
          this.thinking.open = true;
          this.summary = node('summary', '', 'Thinking');
          this.thinkingText = node('div', 'thinking-text');
          this.thinking.append(this.summary, this.thinkingText);
          this.article.insertBefore(this.thinking, this.content);
        }
        this.thinkingText.textContent = reply.reasoning;
        // Collapsed once the answer starts (or the reply ends); the reader may open it again.
        if (!this.collapsed && (final || reply.content || reply.calls.length)) {
          this.collapsed = true;
          this.thinking.open = false;
          const s = ((reply.thoughtAt || performance.now()) - this.started) / 1000;
          this.summary.textContent = `Thinking (${s.toFixed(1)} s)`;
        }
      }
      renderMarkdown(this.content, reply.content, final);
      this.article.dataset.received = String(reply.reasoning.length + reply.content.length);
      reply.calls.forEach((call, i) => this.renderCall(call, i, final));
      keepAtBottom(wasNear);
    }

    renderCall(call, i, final) {
      let card = this.cards[i];
      if (!card) {
        const root = node('div', 'tool-call');
        root.setAttribute('role', 'group');
        const head = node('div', 'tool-call-head');
        const name = node('span', 'tool-call-name');
        head.append('Tool call ', name);
        const pre = node('pre', 'tool-call-args');
        const code = node('code', 'language-json');
        pre.append(code);
        root.append(head, pre);
        this.calls.append(root);
        card = this.cards[i] = {root, name, code};
      }
      card.name.textContent = call.function.name;
      card.root.setAttribute('aria-label', `Tool call ${call.function.name}`);
      card.root.dataset.callId = call.id || '';
      if (final) {
        card.code.innerHTML = hljs.highlight('json', prettyArguments(call.function.arguments), true).value;
        card.code.classList.add('hljs');
      } else {
        card.code.textContent = call.function.arguments;
      }
    }

    finish(reply, state, elapsed) {
      this.render(reply, true);
      this.article.dataset.state = state;
      if (reply.finish) this.article.dataset.finishReason = reply.finish;
      const parts = [];
      if (state === 'stopped') parts.push('Stopped');
      if (state === 'error') parts.push('Failed');
      if (reply.usage) {
        const n = reply.usage.completion_tokens;
        parts.push(`${n} tokens` + (elapsed > 0 ? ` · ${(n / elapsed).toFixed(1)} tok/s` : ''));
      }
      if (reply.finish === 'length') parts.push('cut at the token limit');
      this.meta.textContent = parts.join(' · ');
      if (state === 'stopped') this.meta.classList.add('stopped');
    }

    // A field per call for its result; when every call has one, the conversation goes on.
    offerToolResults(calls) {
      const results = new Array(calls.length).fill(null);
      calls.forEach((call, i) => {
        const form = node('form', 'tool-result');
        const input = node('input');
        input.type = 'text';
        input.placeholder = 'Result of the call';
        input.setAttribute('aria-label', `Result of ${call.function.name}`);
        const button = node('button', '', 'Send result');
        button.type = 'submit';
        form.append(input, button);
        form.addEventListener('submit', (e) => {
          e.preventDefault();
          if (busy()) return;
          input.disabled = button.disabled = true;
          results[i] = input.value;
          messages.push({role: 'tool', tool_call_id: call.id, content: input.value});
          addMessageView('tool', `Tool result (${call.function.name})`).append(input.value);
          if (results.every((r) => r !== null)) runTurn();
        });
        this.cards[i].root.append(form);
      });
    }

    remove() { this.article.remove(); }
  }

  // ---- the conversation -----------------------------------------------------------------------------
  let messages = [];       // the API's messages, system prompt excluded (added per request)
  let controller = null;   // the AbortController of the reply streaming now
  const busy = () => controller !== null;

  function setBusy(on) {
    el.send.disabled = on;
    el.stop.hidden = !on;
    el.send.hidden = on;
    document.body.dataset.busy = on ? 'true' : 'false';
  }

  function numberField(input, parse) {
    const v = input.value.trim();
    if (v === '') return undefined;
    const n = parse(v);
    return Number.isFinite(n) ? n : undefined;
  }

  function requestBody() {
    const body = {model: model || undefined, stream: true, stream_options: {include_usage: true}};
    const system = el.system.value.trim();
    body.messages = (system ? [{role: 'system', content: system}] : []).concat(messages);
    const t = numberField(el.temperature, Number), p = numberField(el.topP, Number);
    const max = numberField(el.maxTokens, (v) => parseInt(v, 10)), seed = numberField(el.seed, (v) => parseInt(v, 10));
    if (t !== undefined) body.temperature = t;
    if (p !== undefined) body.top_p = p;
    if (max !== undefined) body.max_tokens = max;
    if (seed !== undefined) body.seed = seed;
    if (thinkingSupported()) body.chat_template_kwargs = {thinking: el.thinking.checked};
    const tools = el.tools.value.trim();
    if (tools) {
      let parsed;
      try { parsed = JSON.parse(tools); } catch (e) { throw new ApiError(0, `Tools are not JSON: ${e.message}`); }
      if (!Array.isArray(parsed)) throw new ApiError(0, 'Tools must be a JSON array of {"type": "function", ...}');
      if (parsed.length) body.tools = parsed;
    }
    return body;
  }

  // Streams one assistant reply to the messages so far.
  async function runTurn() {
    hideError();
    const thread = messages;  // a new conversation started meanwhile leaves this one alone
    const view = new ReplyView();
    const reply = {content: '', reasoning: '', calls: [], finish: null, usage: null, thoughtAt: 0};
    const ctl = controller = new AbortController();
    setBusy(true);
    let state = 'done', failedEarly = false, firstByte = 0;
    try {
      const res = await api('/v1/chat/completions', {method: 'POST', body: JSON.stringify(requestBody()),
                                                     signal: ctl.signal});
      for await (const data of sseData(res.body)) {
        if (!firstByte) firstByte = performance.now();
        if (data === '[DONE]') continue;  // the body ends right after; reading on lets it end cleanly
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message || JSON.stringify(chunk.error));
        if (chunk.usage) reply.usage = chunk.usage;
        const choice = chunk.choices && chunk.choices[0];
        if (!choice) continue;
        const d = choice.delta || {};
        if (d.reasoning_content) reply.reasoning += d.reasoning_content;
        if ((d.content || d.tool_calls) && reply.reasoning && !reply.thoughtAt) reply.thoughtAt = performance.now();
        if (d.content) reply.content += d.content;
        for (const tc of d.tool_calls || []) {
          const call = reply.calls[tc.index] ||= {id: '', type: 'function', function: {name: '', arguments: ''}};
          if (tc.id) call.id = tc.id;
          if (tc.function && tc.function.name) call.function.name += tc.function.name;
          if (tc.function && tc.function.arguments) call.function.arguments += tc.function.arguments;
        }
        if (choice.finish_reason) reply.finish = choice.finish_reason;
        view.schedule(reply);
      }
    } catch (e) {
      if (e.name === 'AbortError') {
        state = 'stopped';
      } else {
        state = 'error';
        failedEarly = !reply.content && !reply.reasoning && !reply.calls.length;
        showError(e.message);
      }
    } finally {
      if (controller === ctl) controller = null;
      setBusy(busy());
    }
    if (thread !== messages) return;
    const elapsed = firstByte ? (performance.now() - firstByte) / 1000 : 0;
    if (failedEarly) {
      // Nothing came back: the turn is taken back, a user message returns to the input box to send again.
      view.remove();
      const last = messages[messages.length - 1];
      if (last && last.role === 'user') {
        messages.pop();
        const views = el.conversation.querySelectorAll('.message.user');
        if (views.length) views[views.length - 1].remove();
        if (!el.input.value) el.input.value = last.content;
      }
      if (!messages.length) el.emptyHint.hidden = false;
      return;
    }
    view.finish(reply, state, elapsed);
    const msg = {role: 'assistant', content: reply.content};
    if (reply.calls.length) {
      msg.tool_calls = reply.calls;
      if (!reply.content) msg.content = null;
    }
    if (reply.content || reply.calls.length || reply.reasoning) messages.push(msg);
    if (state === 'done' && reply.calls.length) view.offerToolResults(reply.calls);
    if (state !== 'error') el.input.focus();
  }

  function send() {
    const text = el.input.value;
    if (busy() || !text.trim()) return;
    el.input.value = '';
    autoGrow();
    messages.push({role: 'user', content: text});
    addMessageView('user', 'You').append(text);
    runTurn();
  }

  function stop() {
    if (controller) controller.abort();
  }

  function newConversation() {
    stop();
    messages = [];
    el.conversation.querySelectorAll('.message').forEach((m) => m.remove());
    el.emptyHint.hidden = false;
    hideError();
    el.input.focus();
  }

  function autoGrow() {
    el.input.style.height = 'auto';
    el.input.style.height = Math.min(el.input.scrollHeight + 2, window.innerHeight * 0.4) + 'px';
  }

  // ---- wiring ---------------------------------------------------------------------------------------
  el.composer.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === 'Escape' && busy()) {
      stop();
    }
  });
  el.input.addEventListener('input', autoGrow);
  el.stop.addEventListener('click', stop);
  el.newChat.addEventListener('click', newConversation);
  el.errorClose.addEventListener('click', hideError);
  el.settingsButton.addEventListener('click', () => {
    el.settings.hidden = !el.settings.hidden;
    el.settingsButton.setAttribute('aria-expanded', String(!el.settings.hidden));
  });
  for (const input of [...Object.values(fields), el.thinking]) input.addEventListener('change', saveSettings);
  el.apiKey.addEventListener('change', () => { setKey(el.apiKey.value); loadServerInfo(); });
  el.keyForm.addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(el.keyInput.value);
    el.keyDialog.close();
    loadServerInfo();
    el.input.focus();
  });

  loadSettings();
  setBusy(false);
  loadServerInfo();
  el.input.focus();
})();
