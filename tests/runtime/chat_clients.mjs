// The official SDKs against `dsv3 serve` (tests/runtime/chat_clients_test.cc): tool calls, reasoning and the
// Anthropic Messages API. The server runs a random model whose replies are forced, in order, by a sampling
// constraint (`--script-replies`, kReplies in the test), so every check below knows the text the model
// produced and looks at what the server made of it.
//
//   node chat_clients.mjs MODE BASE_URL API_KEY
//
// MODE: openai-tools | openai-reasoning | anthropic | anthropic-thinking. Prints "checks passed" at the end;
// any failed check exits 1 naming it.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const [mode, base, key] = process.argv.slice(2);
let failures = 0;
function check(cond, what, got) {
  if (!cond) {
    failures++;
    console.error(`FAIL ${what}: got ${JSON.stringify(got)}`);
  }
}

const weatherSchema = {
  type: 'object',
  properties: { city: { type: 'string' } },
  required: ['city'],
};
const noMarkers = (s) => typeof s !== 'string' || !/[｜]|<\|tool|<think>|<\/think>/.test(s);

async function openaiTools() {
  const client = new OpenAI({ baseURL: base, apiKey: key });
  // 1. runTools: the SDK's tool loop — a call, our function runs, its result goes back, the final answer.
  const seen = [];
  const runner = client.chat.completions.runTools({
    model: 'dsv3',
    max_tokens: 400,
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Current weather of a city',
          parameters: weatherSchema,
          parse: JSON.parse,
          function: (args) => {
            seen.push(args);
            return 'sunny, 21 C';
          },
        },
      },
    ],
  });
  const final = await runner.finalContent();
  check(seen.length === 1 && seen[0].city === 'Paris', 'runTools called get_weather({city: "Paris"})', seen);
  check(final === 'It is sunny in Paris.', 'runTools final content', final);
  const msgs = runner.messages;
  const toolMsg = msgs.find((m) => m.role === 'tool');
  const callMsg = msgs.find((m) => m.role === 'assistant' && m.tool_calls);
  check(callMsg && callMsg.content === null, 'the call message has null content', callMsg);
  check(toolMsg && callMsg && toolMsg.tool_call_id === callMsg.tool_calls[0].id, 'tool_call_id round trip', toolMsg);
  check(/^call_[0-9a-f]{24}$/.test(callMsg?.tool_calls?.[0]?.id ?? ''), 'call id shape', callMsg?.tool_calls);

  // 2. Streaming, through the SDK's accumulator (chat.completions.stream → finalChatCompletion).
  const stream = client.chat.completions.stream({
    model: 'dsv3',
    max_tokens: 400,
    messages: [{ role: 'user', content: 'And in Paris again?' }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherSchema } }],
  });
  let contentDeltas = '';
  let sawToolDelta = false;
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    if (d.content) contentDeltas += d.content;
    if (d.tool_calls) sawToolDelta = true;
  }
  const done = await stream.finalChatCompletion();
  const c = done.choices[0];
  check(c.finish_reason === 'tool_calls', 'stream finish_reason', c.finish_reason);
  check(sawToolDelta, 'stream carried delta.tool_calls', sawToolDelta);
  check(noMarkers(contentDeltas) && noMarkers(c.message.content), 'no markers leak into streamed content', contentDeltas);
  const tc = c.message.tool_calls ?? [];
  check(tc.length === 1 && tc[0].function.name === 'get_weather', 'stream tool call name', tc);
  check(tc.length === 1 && JSON.parse(tc[0].function.arguments).city === 'Paris', 'stream tool call arguments', tc);

  // 3. Parallel calls: two in one reply; parallel_tool_calls false keeps the first.
  const both = await client.chat.completions.create({
    model: 'dsv3',
    max_tokens: 400,
    messages: [{ role: 'user', content: 'Paris and Tokyo?' }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherSchema } }],
  });
  const calls = both.choices[0].message.tool_calls ?? [];
  check(calls.length === 2, 'two parallel calls', calls);
  check(calls.map((x) => JSON.parse(x.function.arguments).city).join() === 'Paris,東京', 'parallel arguments', calls);
  check(calls.length === 2 && calls[0].id !== calls[1].id, 'distinct call ids', calls);
  const one = await client.chat.completions.create({
    model: 'dsv3',
    max_tokens: 400,
    parallel_tool_calls: false,
    messages: [{ role: 'user', content: 'Paris and Tokyo?' }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherSchema } }],
  });
  check((one.choices[0].message.tool_calls ?? []).length === 1, 'parallel_tool_calls false: one call', one.choices[0]);

  // 4. tool_choice none: the same reply is plain content (the markers are not parsed).
  const none = await client.chat.completions.create({
    model: 'dsv3',
    max_tokens: 400,
    tool_choice: 'none',
    messages: [{ role: 'user', content: 'Paris?' }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherSchema } }],
  });
  const nm = none.choices[0];
  check(!nm.message.tool_calls && nm.finish_reason === 'stop', 'tool_choice none: no calls', nm);
  // 5. A named tool that is not in `tools` is a 400 naming the field.
  try {
    await client.chat.completions.create({
      model: 'dsv3',
      messages: [{ role: 'user', content: 'x' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: weatherSchema } }],
      tool_choice: { type: 'function', function: { name: 'nope' } },
    });
    check(false, 'unknown tool_choice name refused', 'accepted');
  } catch (e) {
    check(e.status === 400 && e.param === 'tool_choice.function.name', 'unknown tool_choice name → 400', e.message);
  }
}

async function openaiReasoning() {
  const client = new OpenAI({ baseURL: base, apiKey: key });
  const r = await client.chat.completions.create({
    model: 'dsv3',
    max_tokens: 300,
    messages: [{ role: 'user', content: 'Say hello.' }],
  });
  const m = r.choices[0].message;
  check(m.reasoning_content === 'The user wants a greeting.', 'reasoning_content', m);
  check(m.content === 'Hello there!', 'content after </think>', m);
  const stream = await client.chat.completions.create({
    model: 'dsv3',
    max_tokens: 300,
    stream: true,
    messages: [{ role: 'user', content: 'Say hello.' }],
  });
  let reasoning = '';
  let content = '';
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    if (d.reasoning_content) reasoning += d.reasoning_content;
    if (d.content) content += d.content;
  }
  check(reasoning === 'The user wants a greeting.', 'delta.reasoning_content', reasoning);
  check(content === 'Hello there!', 'delta.content', content);
}

async function anthropic() {
  const client = new Anthropic({ baseURL: base, apiKey: key });
  // Non-streaming.
  const m = await client.messages.create({
    model: 'dsv3',
    max_tokens: 300,
    system: 'You are terse.',
    messages: [{ role: 'user', content: 'Hi' }],
  });
  check(m.type === 'message' && m.role === 'assistant' && /^msg_/.test(m.id), 'message shape', m);
  check(m.content.length === 1 && m.content[0].type === 'text' && m.content[0].text === 'Hello from dsv3.', 'text', m);
  check(m.stop_reason === 'end_turn' && m.usage.input_tokens > 0 && m.usage.output_tokens > 0, 'stop/usage', m);
  // Streaming, through the SDK's accumulator.
  const events = [];
  const s = client.messages.stream({ model: 'dsv3', max_tokens: 300, messages: [{ role: 'user', content: 'Hi' }] });
  s.on('streamEvent', (e) => events.push(e.type));
  const f = await s.finalMessage();
  check(f.content[0]?.text === 'Hello from dsv3.', 'streamed text', f);
  check(events[0] === 'message_start' && events.at(-1) === 'message_stop', 'event order', events);
  // Tool round trip: tool_use → tool_result → the answer.
  const tools = [{ name: 'get_weather', description: 'Current weather of a city', input_schema: weatherSchema }];
  const first = await client.messages.create({
    model: 'dsv3',
    max_tokens: 400,
    tools,
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
  });
  const use = first.content.find((b) => b.type === 'tool_use');
  check(first.stop_reason === 'tool_use', 'stop_reason tool_use', first);
  check(use && use.name === 'get_weather' && use.input.city === 'Paris', 'tool_use block', first.content);
  const second = await client.messages.create({
    model: 'dsv3',
    max_tokens: 400,
    tools,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use?.id ?? 'x', content: 'sunny, 21 C' }] },
    ],
  });
  check(second.content[0]?.text === 'It is sunny in Paris.', 'answer after tool_result', second.content);
  // The same call streamed: input_json_delta accumulated by the SDK into the block's input.
  const st = client.messages.stream({
    model: 'dsv3',
    max_tokens: 400,
    tools,
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
  });
  const sm = await st.finalMessage();
  const su = sm.content.find((b) => b.type === 'tool_use');
  check(sm.stop_reason === 'tool_use' && su?.input?.city === 'Paris', 'streamed tool_use input', sm.content);
  // A bad request: Anthropic's error shape through the SDK.
  try {
    await client.messages.create({ model: 'dsv3', messages: [{ role: 'user', content: 'x' }] });
    check(false, 'missing max_tokens refused', 'accepted');
  } catch (e) {
    check(e.status === 400 && e.error?.type === 'error', 'missing max_tokens → 400 error object', e.error);
  }
}

async function anthropicThinking() {
  const client = new Anthropic({ baseURL: base, apiKey: key });
  const s = client.messages.stream({
    model: 'dsv3',
    max_tokens: 2000,
    thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: 'Say hello.' }],
  });
  let thinking = '';
  s.on('thinking', (delta) => (thinking += delta));
  const m = await s.finalMessage();
  check(thinking === 'The user wants a greeting.', 'thinking deltas', thinking);
  check(m.content[0]?.type === 'thinking' && m.content[0].thinking === 'The user wants a greeting.', 'thinking block', m);
  check(m.content[1]?.type === 'text' && m.content[1].text === 'Hello there!', 'text block after thinking', m);
}

const modes = {
  'openai-tools': openaiTools,
  'openai-reasoning': openaiReasoning,
  anthropic,
  'anthropic-thinking': anthropicThinking,
};
if (!modes[mode]) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
try {
  await modes[mode]();
} catch (e) {
  failures++;
  console.error('FAIL exception:', e?.stack ?? e);
}
if (failures) process.exit(1);
console.log('checks passed');
