// Structured output against `dsv3 serve` (tests/runtime/structured_output_test.cc), driven by the official
// `openai` and `@anthropic-ai/sdk` SDKs, every output checked by `ajv` (JSON Schema draft 2020-12, with
// ajv-formats), an implementation independent of ours. The model is random: only the grammar makes its
// output valid, so every check below is a check of the constraint.
//
//   node structured_output.mjs MODE BASE_URL API_KEY
//
// MODE: openai-json | openai-tools | anthropic-tools | thinking. Prints "checks passed" at the end; any
// failed check exits 1 naming it.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [mode, base, key] = process.argv.slice(2);
let failures = 0;
function check(cond, what, got) {
  if (!cond) {
    failures++;
    console.error(`FAIL ${what}: got ${JSON.stringify(got)}`);
  }
}
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
function validates(schema, text, what) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    check(false, `${what}: parses as JSON`, text);
    return;
  }
  const ok = ajv.validate(schema, value);
  check(ok, `${what}: validates (${ajv.errorsText()})`, text);
}

// Bounded schemas (every string, array and number has a bound), so a random model finishes inside max_tokens.
const schemas = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 12 },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      retired: { type: 'boolean' },
    },
    required: ['name', 'age'],
    additionalProperties: false,
  },
  choices: {
    type: 'object',
    properties: {
      color: { enum: ['red', 'green', 'blue'] },
      tags: { type: 'array', items: { type: 'string', maxLength: 6 }, minItems: 1, maxItems: 3 },
      version: { const: 'v1' },
      note: { type: ['string', 'null'], maxLength: 8 },
    },
    required: ['color', 'tags', 'version', 'note'],
    additionalProperties: false,
  },
  refs: {
    $defs: {
      point: {
        type: 'object',
        properties: { x: { type: 'integer', minimum: -99, maximum: 99 }, y: { type: 'integer', minimum: -99, maximum: 99 } },
        required: ['x', 'y'],
        additionalProperties: false,
      },
    },
    type: 'object',
    properties: {
      from: { $ref: '#/$defs/point' },
      to: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/point' }] },
      kind: { oneOf: [{ const: 'line' }, { const: 'arc' }] },
    },
    required: ['from', 'to', 'kind'],
    additionalProperties: false,
  },
  patterns: {
    type: 'object',
    properties: {
      code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{2}$' },
      day: { type: 'string', format: 'date' },
      pair: { type: 'array', prefixItems: [{ type: 'integer', minimum: 0, maximum: 9 }, { type: 'boolean' }], items: false },
    },
    required: ['code', 'day', 'pair'],
    additionalProperties: false,
  },
};

const weather = {
  type: 'object',
  properties: { city: { type: 'string', minLength: 1, maxLength: 10 }, unit: { enum: ['C', 'F'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const add = {
  type: 'object',
  properties: { a: { type: 'integer', minimum: 0, maximum: 999 }, b: { type: 'integer', minimum: 0, maximum: 999 } },
  required: ['a', 'b'],
  additionalProperties: false,
};
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weather } },
  { type: 'function', function: { name: 'add', description: 'Adds two numbers', parameters: add } },
];
const toolSchema = { get_weather: weather, add };

const messages = [{ role: 'user', content: 'Answer in JSON.' }];

async function openaiJson() {
  const client = new OpenAI({ baseURL: base, apiKey: key });
  for (const [name, schema] of Object.entries(schemas)) {
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({
        model: 'dsv3',
        messages,
        max_tokens: 400,
        temperature: 1,
        seed,
        response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
      });
      const c = r.choices[0];
      check(c.finish_reason === 'stop', `${name} seed ${seed}: finish_reason stop`, c.finish_reason);
      validates(schema, c.message.content, `${name} seed ${seed}`);
    }
  }
  // Streamed: the deltas, concatenated, are the document.
  const stream = await client.chat.completions.create({
    model: 'dsv3',
    messages,
    max_tokens: 400,
    seed: 7,
    stream: true,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: schemas.person } },
  });
  let text = '';
  let chunks = 0;
  for await (const ch of stream) {
    text += ch.choices[0]?.delta?.content ?? '';
    chunks++;
  }
  check(chunks > 3, 'the JSON streamed in several chunks', chunks);
  validates(schemas.person, text, 'streamed person');
  // json_object: any object. Unbounded, so only a finished one is parsed; at least one must finish.
  let finished = 0;
  for (const seed of [11, 12, 13, 14]) {
    const r = await client.chat.completions.create({
      model: 'dsv3',
      messages,
      max_tokens: 600,
      seed,
      response_format: { type: 'json_object' },
    });
    const c = r.choices[0];
    if (c.finish_reason !== 'stop') continue;
    finished++;
    validates({ type: 'object' }, c.message.content, `json_object seed ${seed}`);
  }
  check(finished > 0, 'some json_object reply finished', finished);
  // Unsupported keywords: a 400 naming the field and the keyword.
  for (const [schema, keyword] of [
    [{ type: 'object', patternProperties: { '^a': { type: 'string' } } }, 'patternProperties'],
    [{ type: 'string', contentEncoding: 'base64' }, 'contentEncoding'],
  ]) {
    try {
      await client.chat.completions.create({
        model: 'dsv3',
        messages,
        response_format: { type: 'json_schema', json_schema: { name: 'bad', schema } },
      });
      check(false, `${keyword} refused`, 'accepted');
    } catch (e) {
      check(e.status === 400 && e.param === 'response_format.json_schema.schema' && e.message.includes(keyword),
        `${keyword} → 400 naming it`, [e.status, e.param, e.message]);
    }
  }
  try {
    await client.chat.completions.create({ model: 'dsv3', messages, response_format: { type: 'xml' } });
    check(false, 'unknown response_format type refused', 'accepted');
  } catch (e) {
    check(e.status === 400 && e.param === 'response_format.type', 'unknown type → 400', [e.status, e.param]);
  }
}

function checkCalls(calls, what) {
  check(Array.isArray(calls) && calls.length >= 1, `${what}: tool calls`, calls);
  for (const call of calls ?? []) {
    const schema = toolSchema[call.function.name];
    check(schema !== undefined, `${what}: a known tool`, call.function.name);
    if (schema) validates(schema, call.function.arguments, `${what}: ${call.function.name} arguments`);
  }
}

async function openaiTools() {
  const client = new OpenAI({ baseURL: base, apiKey: key });
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model: 'dsv3', messages, max_tokens: 500, seed, tools, tool_choice: 'required',
    });
    const c = r.choices[0];
    check(c.finish_reason === 'tool_calls', `required seed ${seed}: finish_reason tool_calls`, c.finish_reason);
    checkCalls(c.message.tool_calls, `required seed ${seed}`);
  }
  for (const seed of [4, 5]) {
    const r = await client.chat.completions.create({
      model: 'dsv3', messages, max_tokens: 500, seed, tools, parallel_tool_calls: false,
      tool_choice: { type: 'function', function: { name: 'add' } },
    });
    const calls = r.choices[0].message.tool_calls;
    check(calls?.length === 1 && calls[0].function.name === 'add', `named seed ${seed}: one call of add`, calls);
    checkCalls(calls, `named seed ${seed}`);
  }
  // Streamed: the SDK's accumulated calls validate.
  const stream = client.chat.completions.stream({
    model: 'dsv3', messages, max_tokens: 500, seed: 9, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  const done = await stream.finalChatCompletion();
  checkCalls(done.choices[0].message.tool_calls, 'streamed named call');
  try {
    await client.chat.completions.create({
      model: 'dsv3', messages, tool_choice: 'required',
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', dependentSchemas: {} } } }],
    });
    check(false, 'unsupported tool schema refused', 'accepted');
  } catch (e) {
    check(e.status === 400 && e.param === 'tools[0].function.parameters' && e.message.includes('dependentSchemas'),
      'unsupported tool schema → 400 naming it', [e.status, e.param, e.message]);
  }
}

async function anthropicTools() {
  const client = new Anthropic({ baseURL: base, apiKey: key });
  const atools = [
    { name: 'get_weather', description: 'Weather of a city', input_schema: weather },
    { name: 'add', description: 'Adds two numbers', input_schema: add },
  ];
  for (const [choice, seed] of [[{ type: 'any' }, 1], [{ type: 'tool', name: 'add' }, 2]]) {
    const m = await client.messages.create({
      model: 'dsv3', max_tokens: 500, messages, tools: atools, tool_choice: choice,
    });
    const uses = m.content.filter((b) => b.type === 'tool_use');
    check(m.stop_reason === 'tool_use' && uses.length >= 1, `anthropic ${choice.type}: tool_use`, m);
    if (choice.name) check(uses.every((u) => u.name === choice.name), `anthropic tool ${choice.name}`, uses);
    for (const u of uses) {
      const ok = ajv.validate(toolSchema[u.name], u.input);
      check(ok, `anthropic ${u.name} input validates (${ajv.errorsText()})`, u.input);
    }
  }
}

// R1's template opens <think>: the scripted reply closes the reasoning, then the grammar holds the rest.
async function thinking() {
  const client = new OpenAI({ baseURL: base, apiKey: key });
  const r = await client.chat.completions.create({
    model: 'dsv3', messages, max_tokens: 400, seed: 5,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: schemas.person } },
  });
  const m = r.choices[0].message;
  check(m.reasoning_content === 'Let me think.', 'reasoning is free (the script wrote it)', m.reasoning_content);
  validates(schemas.person, m.content, 'after </think>');
}

const modes = { 'openai-json': openaiJson, 'openai-tools': openaiTools, 'anthropic-tools': anthropicTools, thinking };
try {
  await modes[mode]();
} catch (e) {
  failures++;
  console.error(`FAIL ${mode} threw: ${e.stack ?? e}`);
}
if (failures) {
  console.error(`${failures} checks failed`);
  process.exit(1);
}
console.log('checks passed');
