// Drives a running `dsv3 serve` with the official `openai` npm client (run by server_test.cc):
//   node server_client.mjs BASE_URL API_KEY
// Prints one line per check and exits non-zero on the first failure.
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const model = 'test';
let checks = 0;
async function check(name, fn) {
  try {
    await fn();
    checks++;
    console.log(`ok   ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  }
}
async function expectError(fn, status, param, code) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert.equal(e.status, status, `status ${e.status}: ${e.message}`);
    assert.equal(typeof e.error?.message, 'string');
    assert.equal(typeof e.error?.type, 'string');
    if (param !== undefined) assert.equal(e.param, param);
    if (code !== undefined) assert.equal(e.code, code);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello there! How are you?' }];

await check('models.list', async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].object, 'model');
});

let chatText;
await check('chat, non-streaming', async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 24, seed: 7, temperature: 0.9 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 5);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  chatText = r.choices[0].message.content;
});

await check('chat, streaming equals non-streaming for a seed; usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 24, seed: 7, temperature: 0.9, stream: true, stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null, chunks = 0, role = null;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, 'chat.completion.chunk');
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    const ch = c.choices[0];
    if (ch.delta.role) role = ch.delta.role;
    if (ch.delta.content) text += ch.delta.content;
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.ok(chunks >= 3);
  assert.equal(text, chatText);
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens >= 1 && usage.prompt_tokens > 5);
});

await check('seed reproducibility', async () => {
  const a = await client.chat.completions.create({ model, messages, max_tokens: 16, seed: 123, temperature: 1.0 });
  const b = await client.chat.completions.create({ model, messages, max_tokens: 16, seed: 123, temperature: 1.0 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  let differs = false;
  for (const seed of [124, 125, 126, 127]) {
    const c = await client.chat.completions.create({ model, messages, max_tokens: 16, seed, temperature: 1.0 });
    if (c.choices[0].message.content !== a.choices[0].message.content) differs = true;
  }
  assert.ok(differs, 'five seeds gave the same text');
});

let complText;
await check('completions, non-streaming and streaming', async () => {
  const body = { model, prompt: 'Once upon a time', max_tokens: 20, seed: 3, temperature: 0.8, ignore_eos: true };
  const r = await client.completions.create(body);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 20);
  complText = r.choices[0].text;
  const s = await client.completions.create({ ...body, stream: true });
  let text = '', finish = null;
  for await (const c of s) {
    if (c.choices.length) {
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
  }
  assert.equal(text, complText);
  assert.equal(finish, 'length');
});

await check('completions with token ids', async () => {
  const r = await client.completions.create({ model, prompt: [0, 40, 41, 42], max_tokens: 5, temperature: 0, ignore_eos: true });
  assert.equal(r.usage.prompt_tokens, 4);
  assert.equal(r.usage.completion_tokens, 5);
});

await check('stop strings cut the text (non-streaming and streaming)', async () => {
  const body = { model, prompt: 'Once upon a time', max_tokens: 20, seed: 3, temperature: 0.8, ignore_eos: true };
  // Choose a stop string from the middle of the known completion.
  const chars = Array.from(complText);
  assert.ok(chars.length >= 8, `completion too short: ${JSON.stringify(complText)}`);
  const stop = chars.slice(4, 7).join('');
  const expected = complText.slice(0, complText.indexOf(stop));
  const r = await client.completions.create({ ...body, stop: [stop, 'zzzz-never'] });
  assert.equal(r.choices[0].text, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await client.completions.create({ ...body, stop, stream: true });
  let text = '', finish = null;
  for await (const c of s) {
    if (c.choices.length) {
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
  }
  assert.equal(text, expected);
  assert.equal(finish, 'stop');
});

await check('logprobs', async () => {
  const r = await client.chat.completions.create({
    model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2, ignore_eos: true,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 6);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    assert.equal(t.logprob, t.top_logprobs[0].logprob);  // greedy picks the most probable
  }
});

await check('concurrent requests match sequential ones (continuous batching)', async () => {
  const prompts = ['Hello', 'The cat sat', 'Numbers: 1, 2', 'To be or not', 'She sells', 'All work and', 'Questions', 'Once'];
  const req = (p) => client.completions.create({ model, prompt: p, max_tokens: 12, temperature: 0, ignore_eos: true });
  const sequential = [];
  for (const p of prompts) sequential.push((await req(p)).choices[0].text);
  const parallel = await Promise.all(prompts.map(req));
  assert.deepEqual(parallel.map((r) => r.choices[0].text), sequential);
});

await check('400 errors in OpenAI shape', async () => {
  await expectError(() => client.chat.completions.create({ model, messages, n: 2 }), 400, 'n');
  await expectError(() => client.chat.completions.create({ model, messages, temperature: 5 }), 400, 'temperature');
  await expectError(() => client.chat.completions.create({ model, messages: 'hi' }), 400, 'messages');
  await expectError(() => client.chat.completions.create({ model, messages, max_tokens: 'many' }), 400, 'max_tokens');
  await expectError(() => client.chat.completions.create({ model, messages, stop: 5 }), 400, 'stop');
  await expectError(() => client.completions.create({ model, prompt: 'x'.repeat(5000) }), 400, 'prompt',
                    'context_length_exceeded');
  await expectError(() => client.completions.create({ model, prompt: 'hi', max_tokens: 100000 }), 400, 'max_tokens',
                    'context_length_exceeded');
  const res = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST', headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' }, body: '{"messages": [',
  });
  assert.equal(res.status, 400);
  const j = await res.json();
  assert.equal(j.error.type, 'invalid_request_error');
  assert.ok('param' in j.error && 'code' in j.error);
});

await check('401 with a wrong API key', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  const e = await expectError(() => bad.models.list(), 401);
  assert.equal(e.code, 'invalid_api_key');
  await expectError(() => bad.chat.completions.create({ model, messages }), 401);
});

console.log(`all ${checks} checks passed`);
