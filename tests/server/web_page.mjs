// The web chat page of `dsv3 serve` in a real browser: Debian's chromium, headless, driven by puppeteer-core
// (tests/server/web_page_test.cc starts the server with scripted replies and runs one mode of this script).
//
//   node web_page.mjs chat     BASE_URL MODEL_NAME SCREENSHOT.png
//   node web_page.mjs key      BASE_URL API_KEY
//   node web_page.mjs settings BASE_URL
//
// Every request the page makes to another origin is refused and counted (the page must work offline), and
// every console error, uncaught exception and CSP violation fails the run. Prints "N checks passed".
import puppeteer from 'puppeteer-core';

const [mode, base, arg1, arg2] = process.argv.slice(2);
const chromium = process.env.DSV3_CHROMIUM || '/usr/bin/chromium';

let checks = 0;
const failures = [];
function check(ok, what) {
  checks++;
  if (!ok) {
    failures.push(what);
    console.log('FAIL: ' + what);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const args = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'];
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');  // chromium refuses root otherwise
const browser = await puppeteer.launch({executablePath: chromium, headless: true, args,
                                        defaultViewport: {width: 1100, height: 860}});
const page = await browser.newPage();
page.setDefaultTimeout(60000);

const foreign = [];    // requests to anything but the server
const problems = [];   // console errors, page errors
const expectedErrors = [];  // regexes of console errors a mode provokes on purpose
const chatBodies = [];  // the JSON bodies POSTed to /v1/chat/completions
await page.setRequestInterception(true);
page.on('request', (r) => {
  const url = r.url();
  if (!url.startsWith(base + '/') && !url.startsWith('data:')) {
    foreign.push(url);
    r.abort();
    return;
  }
  if (url === base + '/v1/chat/completions' && r.method() === 'POST') {
    chatBodies.push({body: JSON.parse(r.postData() || 'null'), auth: r.headers()['authorization'] || ''});
  }
  r.continue();
});
page.on('console', (m) => {
  if (m.type() === 'error' && !expectedErrors.some((re) => re.test(m.text()))) problems.push('console: ' + m.text());
});
page.on('pageerror', (e) => problems.push('page error: ' + e.message));

// ---- helpers over the page ---------------------------------------------------------------------------
const assistantCount = () => page.$$eval('#conversation .message.assistant', (a) => a.length);

// Types a message into the input box and sends it with Enter.
async function sendMessage(text) {
  await page.click('#input');
  await page.type('#input', text);
  await page.keyboard.press('Enter');
}

// Records, inside the page, the length of the newest assistant reply's text after every DOM change: the
// reply must grow over several observations, not appear at once.
async function recordGrowth() {
  await page.evaluate(() => {
    window.__growth = [];
    const conv = document.getElementById('conversation');
    window.__observer?.disconnect();
    window.__observer = new MutationObserver(() => {
      const all = conv.querySelectorAll('.message.assistant');
      const last = all[all.length - 1];
      if (!last) return;
      // The characters received so far, as the page last rendered them (the text itself may shrink while
      // a markdown construct closes: "**Here" becomes a bold "Here").
      const len = Number(last.dataset.received || 0);
      const g = window.__growth;
      if (!g.length || g[g.length - 1].len !== len) g.push({t: performance.now(), len, state: last.dataset.state});
    });
    window.__observer.observe(conv, {childList: true, subtree: true, characterData: true});
  });
}
const growth = () => page.evaluate(() => window.__growth);

// Waits until the n-th assistant reply (1-based) is no longer streaming; returns its state.
async function replyDone(n, timeout = 120000) {
  await page.waitForFunction((n) => {
    const a = document.querySelectorAll('#conversation .message.assistant')[n - 1];
    return a && a.dataset.state && a.dataset.state !== 'streaming';
  }, {timeout}, n);
  return page.evaluate((n) => document.querySelectorAll('#conversation .message.assistant')[n - 1].dataset.state, n);
}

const reply = (n) => page.evaluateHandle(
    (n) => document.querySelectorAll('#conversation .message.assistant')[n - 1], n);

async function replyInfo(n) {
  return page.evaluate((n) => {
    const a = document.querySelectorAll('#conversation .message.assistant')[n - 1];
    const t = a.querySelector('details.thinking');
    return {
      state: a.dataset.state,
      finish: a.dataset.finishReason || '',
      text: a.querySelector('.content').textContent,
      html: a.querySelector('.content').innerHTML,
      strong: [...a.querySelectorAll('.content strong')].map((e) => e.textContent),
      codeBlocks: [...a.querySelectorAll('.content pre > code')].map((e) => ({
        text: e.textContent, cls: e.className, spans: e.querySelectorAll('span[class^="hljs-"]').length})),
      inlineCode: [...a.querySelectorAll('.content :not(pre) > code')].map((e) => e.textContent),
      thinking: t ? {open: t.open, summary: t.querySelector('summary').textContent,
                     text: t.querySelector('.thinking-text').textContent} : null,
      calls: [...a.querySelectorAll('.tool-call')].map((c) => ({
        name: c.querySelector('.tool-call-name').textContent, args: c.querySelector('.tool-call-args').textContent,
        label: c.getAttribute('aria-label'), hasResultField: !!c.querySelector('.tool-result input')})),
      meta: a.querySelector('.meta').textContent,
      scripts: a.querySelectorAll('script').length,
    };
  }, n);
}

async function controls() {
  return page.evaluate(() => ({
    sendHidden: document.getElementById('send').hidden,
    sendDisabled: document.getElementById('send').disabled,
    stopHidden: document.getElementById('stop').hidden,
    inputDisabled: document.getElementById('input').disabled,
    busy: document.body.dataset.busy,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error-text').textContent,
  }));
}

async function setField(id, value) {
  await page.evaluate((id, value) => {
    const e = document.getElementById(id);
    if (e.type === 'checkbox') e.checked = value; else e.value = value;
    e.dispatchEvent(new Event('change', {bubbles: true}));
  }, id, value);
}

async function load() {
  await page.goto(base + '/', {waitUntil: 'load'});
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
}

// ---- the modes -----------------------------------------------------------------------------------
async function chatMode(modelName, screenshot) {
  // Reply 5 carries <img onerror=...>: chromium reports the page's CSP refusing the handler whenever such
  // markup is parsed (even inertly, by DOMPurify, which then drops the attribute). Nothing runs: checked below.
  expectedErrors.push(/^Executing inline event handler violates the following Content Security Policy/);
  await load();
  check(await page.$eval('#model-name', (e) => e.textContent) === modelName, 'the model name from /v1/models');
  check(await page.$eval('#thinking-row', (e) => e.hidden), 'no thinking switch for R1 (it always thinks)');
  for (const id of ['input', 'send', 'new-chat', 'settings-button']) {
    const labelled = await page.$eval('#' + id, (e) => !!(e.getAttribute('aria-label') || e.labels?.length ||
                                                          e.textContent.trim()));
    check(labelled, `#${id} has an accessible name`);
  }

  // 1. Reasoning, then markdown with a code block, streamed.
  await recordGrowth();
  await sendMessage('Show me some code');
  check(await page.$$eval('#conversation .message.user', (u) => u.length) === 1, 'the user message is shown');
  await page.waitForSelector('#conversation .message.assistant[data-state="streaming"]');
  const c1 = await controls();
  check(!c1.stopHidden && c1.sendHidden && c1.busy === 'true', 'Stop is offered while the reply streams');
  check((await replyDone(1)) === 'done', 'reply 1 finished');
  const g1 = await growth();
  const growing = g1.filter((o) => o.state === 'streaming' && o.len > 0);
  check(growing.length >= 3, `reply 1 grew over several observations while streaming (${growing.length}: ` +
        JSON.stringify(g1.slice(0, 8)) + ')');
  check(growing.every((o, i) => i === 0 || o.len > growing[i - 1].len), 'reply 1 only grew');
  const r1 = await replyInfo(1);
  check(r1.thinking !== null, 'reply 1 has a thinking block');
  check(r1.thinking && !r1.thinking.open, 'the thinking block is collapsed once the reply is done');
  check(r1.thinking && r1.thinking.summary.startsWith('Thinking'), 'the thinking block is labelled Thinking');
  check(r1.thinking && r1.thinking.text.includes('The user wants code'), 'the reasoning text is in the block');
  check(!r1.text.includes('</think>') && !r1.text.includes('The user wants code'), 'the reasoning is not in the reply');
  check(r1.strong.includes('Here'), 'markdown **Here** rendered as <strong>: ' + r1.html.slice(0, 300));
  check(r1.inlineCode.includes('add'), 'inline `add` rendered as <code>');
  const py = r1.codeBlocks.find((b) => b.text.includes('def add(a, b):'));
  check(!!py, 'the fenced block rendered as <pre><code>: ' + JSON.stringify(r1.codeBlocks));
  check(py && /language-python/.test(py.cls) && /hljs/.test(py.cls), 'the code block is marked python + hljs');
  check(py && py.spans > 0, 'the python code is highlighted (hljs spans)');
  check(r1.finish === 'stop', 'finish_reason stop: ' + r1.finish);
  check(/\d+ tokens/.test(r1.meta), 'the token count is shown: ' + r1.meta);

  // 2. A tool call: with tools set in the settings, the reply's call is a card with pretty arguments.
  await page.click('#settings-button');
  check(!(await page.$eval('#settings', (e) => e.hidden)), 'the settings panel opens');
  await setField('tools', JSON.stringify([{type: 'function', function: {name: 'get_weather',
      parameters: {type: 'object', properties: {city: {type: 'string'}}}}}]));
  await page.click('#settings-button');
  await sendMessage('Weather in Paris?');
  check((await replyDone(2)) === 'done', 'reply 2 finished');
  const r2 = await replyInfo(2);
  check(r2.calls.length === 1, 'one tool-call card: ' + JSON.stringify(r2.calls));
  check(r2.calls[0]?.name === 'get_weather', 'the card names get_weather');
  check(r2.calls[0]?.label === 'Tool call get_weather', 'the card is labelled for assistive technology');
  check(r2.calls[0]?.args === JSON.stringify({city: 'Paris'}, null, 2), 'the arguments pretty-printed: ' +
        JSON.stringify(r2.calls[0]?.args));
  check(r2.calls[0]?.hasResultField, 'the card offers a result field');
  check(r2.finish === 'tool_calls', 'finish_reason tool_calls');
  check(!r2.text.includes('tool▁call'), 'no call markers in the text');
  const b2 = chatBodies[1]?.body;
  check(b2 && b2.tools && b2.tools[0].function.name === 'get_weather', 'the request carried the tools');
  check(b2 && b2.stream === true, 'the request streams');

  // 3. The call's result goes back; the answer streams.
  await page.type('.tool-call .tool-result input', 'sunny, 24 °C');
  await page.click('.tool-call .tool-result button');
  check((await replyDone(3)) === 'done', 'reply 3 finished');
  const r3 = await replyInfo(3);
  check(r3.text.includes('It is sunny in Paris.'), 'the answer after the tool result: ' + r3.text);
  const b3 = chatBodies[2]?.body?.messages || [];
  const asst = b3.find((m) => m.role === 'assistant' && m.tool_calls);
  const tool = b3.find((m) => m.role === 'tool');
  check(asst && asst.tool_calls[0].function.name === 'get_weather', 'the call went back in the history');
  check(tool && tool.content === 'sunny, 24 °C' && tool.tool_call_id === asst?.tool_calls[0].id,
        'the tool result answers the call by id: ' + JSON.stringify(b3));
  if (screenshot) {  // the whole conversation so far, the first reply's thinking block opened
    await page.setViewport({width: 1100, height: 1240});
    await page.$eval('#conversation details.thinking', (d) => { d.open = true; });
    await page.evaluate(() => { document.getElementById('conversation').scrollTop = 0; });
    await sleep(100);
    await page.screenshot({path: screenshot});
    await page.$eval('#conversation details.thinking', (d) => { d.open = false; });
    await page.setViewport({width: 1100, height: 860});
  }

  // 4. A long reply, stopped: the stream ends, the partial reply stays, the input works again.
  await recordGrowth();
  await sendMessage('Tell me a long story');
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll('#conversation .message.assistant')].pop();
    return a.dataset.state === 'streaming' && a.querySelector('.content').textContent.length > 80;
  });
  await page.click('#stop');
  check((await replyDone(4, 5000)) === 'stopped', 'reply 4 is marked stopped');
  const atStop = (await replyInfo(4)).text.length;
  await sleep(1500);
  const r4 = await replyInfo(4);
  check(r4.text.length === atStop, `no growth after Stop (${atStop} → ${r4.text.length})`);
  check(r4.text.length > 80 && r4.text.startsWith('Once upon a time'), 'the partial reply is kept');
  check(r4.meta.includes('Stopped'), 'the reply says Stopped: ' + r4.meta);
  const g4 = (await growth()).filter((o) => o.state === 'streaming');
  check(g4.length >= 2, 'the long reply was streaming when stopped');
  const c4 = await controls();
  check(c4.stopHidden && !c4.sendHidden && !c4.sendDisabled && !c4.inputDisabled && c4.busy === 'false',
        'after Stop: Send is back, Stop gone: ' + JSON.stringify(c4));
  check(c4.error === '', 'stopping is not an error: ' + c4.error);
  check(await page.evaluate(() => document.activeElement.id) === 'input', 'the input has the focus again');

  // 5. The conversation goes on; Shift+Enter makes a newline, Enter sends.
  await page.click('#input');
  await page.type('#input', 'Short');
  await page.keyboard.down('Shift');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Shift');
  await page.type('#input', 'please');
  check(await page.$eval('#input', (e) => e.value) === 'Short\nplease', 'Shift+Enter adds a newline');
  check(await assistantCount() === 4, 'Shift+Enter did not send');
  await page.keyboard.press('Enter');
  check((await replyDone(5)) === 'done', 'reply 5 finished after the stopped one');
  const r5 = await replyInfo(5);
  check(r5.text.includes('Done.'), 'reply 5 text');
  // Its <img onerror> and <script> were taken out by DOMPurify: nothing ran.
  check(r5.scripts === 0 && !/onerror|<script/i.test(r5.html), 'no handler or script rendered: ' + r5.html);
  await sleep(200);
  check(await page.evaluate(() => window.__pwned === undefined), 'the reply could not run script');
  const b5 = chatBodies[4]?.body?.messages || [];
  const stopped = b5.filter((m) => m.role === 'assistant').pop();
  check(b5.length >= 2 && b5[b5.length - 1].content === 'Short\nplease', 'the last user message sent as typed');
  check(stopped && stopped.content && stopped.content.startsWith('Once upon a time') &&
        stopped.content.length < 2000, 'the stopped partial reply is in the history');

  // 6. New conversation: empty view, the next request has only the new message.
  await page.click('#new-chat');
  check(await page.$$eval('#conversation .message', (m) => m.length) === 0, 'New chat empties the view');
  check(chatBodies.length === 5, `five chat requests (${chatBodies.length})`);
}

async function keyMode(key) {
  expectedErrors.push(/401/);
  await load();
  // No key stored: /v1/models answers 401 and the page asks for one.
  await page.waitForSelector('#key-dialog[open]');
  check((await page.$eval('#key-dialog-text', (e) => e.textContent)).includes('401'), 'the dialog shows the 401');
  check(await page.$eval('#model-name', (e) => e.textContent) === '(not connected)', 'no model without the key');
  await page.type('#key-input', 'wrong-key');
  await page.click('#key-save');
  await page.waitForSelector('#key-dialog[open]');  // refused again
  check((await page.$eval('#key-dialog-text', (e) => e.textContent)).includes('Incorrect API key'),
        'a wrong key is refused with the server\'s message');
  await page.$eval('#key-input', (e) => { e.value = ''; });
  await page.type('#key-input', key);
  await page.click('#key-save');
  await page.waitForFunction(() => !document.getElementById('key-dialog').open &&
                                   document.getElementById('model-name').textContent !== '(not connected)');
  check(await page.evaluate(() => localStorage.getItem('dsv3.apiKey')) === key, 'the key is kept in localStorage');
  await sendMessage('Hello with a key');
  check((await replyDone(1)) === 'done', 'a reply with the key');
  check((await replyInfo(1)).text.includes('Hello from dsv3.'), 'the reply text');
  check(chatBodies[0]?.auth === 'Bearer ' + key, 'the chat request carried Authorization: Bearer');

  // Reloaded: the stored key is used at once, no dialog.
  await load();
  await page.waitForFunction(() => document.getElementById('model-name').textContent !== '…');
  check(!(await page.$eval('#key-dialog', (e) => e.open)), 'no dialog with a stored key');
  check(await page.$eval('#model-name', (e) => e.textContent) !== '(not connected)', 'connected with the stored key');

  // A key that stops working: the chat request's 401 reopens the dialog and gives the message back.
  await page.evaluate(() => localStorage.setItem('dsv3.apiKey', 'revoked'));
  await sendMessage('Lost key');
  await page.waitForSelector('#key-dialog[open]');
  const c = await controls();
  check(c.error.includes('401'), 'the 401 is shown: ' + c.error);
  check(await page.$eval('#input', (e) => e.value) === 'Lost key', 'the unsent message is back in the input');
  check(await assistantCount() === 0, 'no empty reply left behind');
}

async function settingsMode() {
  expectedErrors.push(/400/);
  await load();
  check(!(await page.$eval('#thinking-row', (e) => e.hidden)), 'a thinking switch for a template with `thinking`');
  await page.click('#settings-button');
  await setField('system-prompt', 'You are terse.');
  await setField('temperature', '0.3');
  await setField('top-p', '0.9');
  await setField('max-tokens', '300');
  await setField('seed', '1234');
  await setField('thinking-toggle', true);
  await sendMessage('Think first');
  check((await replyDone(1)) === 'done', 'reply 1 (thinking on)');
  const b1 = chatBodies[0]?.body || {};
  check(b1.temperature === 0.3 && b1.top_p === 0.9 && b1.max_tokens === 300 && b1.seed === 1234,
        'sampling settings sent: ' + JSON.stringify(b1));
  check(b1.messages?.[0]?.role === 'system' && b1.messages[0].content === 'You are terse.', 'system prompt sent');
  check(b1.chat_template_kwargs?.thinking === true, 'thinking: true sent');
  check(b1.stream_options?.include_usage === true, 'usage asked for');
  const r1 = await replyInfo(1);
  check(r1.thinking && r1.thinking.text.includes('Short thought'), 'thinking on: a thinking block');
  check(r1.text.includes('Answer with thought.'), 'thinking on: the answer');

  // Settings survive a reload (localStorage).
  await load();
  check(await page.$eval('#seed', (e) => e.value) === '1234', 'the seed survives a reload');
  check(await page.$eval('#thinking-toggle', (e) => e.checked), 'the thinking switch survives a reload');
  await setField('thinking-toggle', false);
  await sendMessage('No thinking');
  check((await replyDone(1)) === 'done', 'reply 2 (thinking off)');
  check(chatBodies[1]?.body?.chat_template_kwargs?.thinking === false, 'thinking: false sent');
  const r2 = await replyInfo(1);
  check(r2.thinking === null, 'thinking off: no thinking block');
  check(r2.text.includes('Plain answer.'), 'thinking off: the answer');

  // An error from the server (max_tokens over the context): its message is shown, the text comes back.
  await setField('max-tokens', '100000');
  await sendMessage('Too long');
  await page.waitForFunction(() => !document.getElementById('error').hidden);
  const c = await controls();
  check(c.error.includes('HTTP 400') && /context/i.test(c.error), 'the 400 message is shown: ' + c.error);
  check(await page.$eval('#input', (e) => e.value) === 'Too long', 'the message is back in the input');
  check(await assistantCount() === 1, 'no empty reply for the failed request');
  check(c.stopHidden && !c.sendDisabled, 'ready to send again after the error');
  // Invalid tools JSON: refused in the page, no request made.
  await setField('max-tokens', '');
  await setField('tools', '{not json');
  const before = chatBodies.length;
  await page.$eval('#input', (e) => { e.value = ''; });
  await sendMessage('With bad tools');
  await page.waitForFunction(() => /Tools are not JSON/.test(document.getElementById('error-text').textContent));
  check(chatBodies.length === before, 'bad tools JSON: no request sent');
}

try {
  if (mode === 'chat') await chatMode(arg1, arg2);
  else if (mode === 'key') await keyMode(arg1);
  else if (mode === 'settings') await settingsMode();
  else throw new Error('unknown mode ' + mode);
} catch (e) {
  failures.push('exception: ' + (e.stack || e));
  console.log('FAIL: exception: ' + (e.stack || e));
  try {
    console.log('page: ' + (await page.$eval('#conversation', (e) => e.innerText)).slice(0, 3000));
  } catch { /* the page is gone */ }
}
check(foreign.length === 0, 'nothing fetched from another origin: ' + foreign.join(', '));
check(problems.length === 0, 'no console errors: ' + problems.join(' | '));
await browser.close();
if (failures.length) {
  console.log(`${failures.length} of ${checks} checks failed`);
  process.exit(1);
}
console.log(`${checks} checks passed`);
