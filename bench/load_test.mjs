// Load test of a running `dsv3 serve` on loopback (Node 20, no dependencies):
//   node bench/load_test.mjs --url http://127.0.0.1:PORT [--api-key KEY] [--clients 32] [--requests 500]
//                            [--max-tokens 8] [--pid SERVER_PID] [--json]
// `clients` concurrent clients each send `requests` requests back to back, cycling through chat and text
// completions, streaming and not, with their own seeds. Every response is checked (status 200, the
// OpenAI shape, usage counts, "data: [DONE]" for streams); anything else counts as an error. With --pid the
// server's resident memory (VmRSS) is sampled every 250 ms. Prints a summary (JSON with --json) and exits
// non-zero when any request failed.
import { readFileSync } from 'node:fs';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], next = process.argv[i + 1];
  if (!a.startsWith('--')) continue;
  if (next === undefined || next.startsWith('--')) args[a.slice(2)] = 'true';
  else {
    args[a.slice(2)] = next;
    i++;
  }
}
const url = args.url ?? 'http://127.0.0.1:8080';
const apiKey = args['api-key'] ?? '';
const clients = Number(args.clients ?? 32);
const requests = Number(args.requests ?? 500);
const maxTokens = Number(args['max-tokens'] ?? 8);
const pid = args.pid ? Number(args.pid) : null;

function rssKiB() {
  if (!pid) return null;
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const rss = [];
const sampler = pid ? setInterval(() => rss.push([Date.now(), rssKiB()]), 250) : null;
const headers = { 'Content-Type': 'application/json', ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}) };
const prompts = ['Hello there!', 'Once upon a time', 'The quick brown fox', 'Numbers: 1, 2, 3', 'To be or not to be'];

let ok = 0, errors = 0, tokens = 0;
const errorSamples = [];
const latencies = [];

async function one(c, i) {
  const chat = (c + i) % 2 === 0, stream = ((c + i) >> 1) % 2 === 0;
  const prompt = prompts[(c * 7 + i) % prompts.length];
  const body = {
    model: 'load', max_tokens: maxTokens, temperature: 0.8, seed: c * 100003 + i, stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
    ...(chat ? { messages: [{ role: 'user', content: prompt }] } : { prompt }),
  };
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/${chat ? 'chat/completions' : 'completions'}`, {
    method: 'POST', headers, body: JSON.stringify(body),
  });
  const text = await res.text();
  latencies.push(performance.now() - t0);
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  let usage;
  if (stream) {
    const events = text.split('\n\n').filter((e) => e.length);
    if (events.at(-1) !== 'data: [DONE]') throw new Error('stream did not end with [DONE]');
    let finish = null;
    for (const e of events.slice(0, -1)) {
      if (!e.startsWith('data: ')) throw new Error(`bad SSE event ${e.slice(0, 80)}`);
      const j = JSON.parse(e.slice(6));
      if (j.error) throw new Error(`error event: ${j.error.message}`);
      if (j.usage) usage = j.usage;
      if (j.choices?.[0]?.finish_reason) finish = j.choices[0].finish_reason;
    }
    if (!finish) throw new Error('no finish_reason');
  } else {
    const j = JSON.parse(text);
    const ch = j.choices?.[0];
    if (!ch || (chat ? typeof ch.message?.content !== 'string' : typeof ch.text !== 'string')) throw new Error('bad body');
    usage = j.usage;
  }
  if (!usage || usage.completion_tokens < 1 || usage.completion_tokens > maxTokens) throw new Error('bad usage');
  tokens += usage.completion_tokens;
}

async function client(c) {
  for (let i = 0; i < requests; i++) {
    try {
      await one(c, i);
      ok++;
    } catch (e) {
      errors++;
      if (errorSamples.length < 5) errorSamples.push(String(e.message ?? e));
    }
  }
}

const rssStart = rssKiB();
const t0 = performance.now();
await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
const seconds = (performance.now() - t0) / 1000;
if (sampler) clearInterval(sampler);
const rssEnd = rssKiB();
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0;
// Memory after the first 10% of the run (warm: threads, caches and allocator pools exist) vs. the end.
const warm = rss.length ? rss[Math.floor(rss.length / 10)][1] : null;
const peak = rss.length ? Math.max(...rss.map((r) => r[1] ?? 0)) : null;
const summary = {
  clients, requests_per_client: requests, max_tokens: maxTokens, requests: ok + errors, ok, errors,
  seconds: +seconds.toFixed(2), requests_per_s: +((ok + errors) / seconds).toFixed(1),
  completion_tokens: tokens, completion_tokens_per_s: +(tokens / seconds).toFixed(1),
  latency_ms: { p50: +pct(0.5).toFixed(1), p90: +pct(0.9).toFixed(1), p99: +pct(0.99).toFixed(1), max: +pct(1).toFixed(1) },
  rss_kib: pid ? { start: rssStart, after_warmup: warm, peak, end: rssEnd } : null,
  error_samples: errorSamples,
};
if (args.json) console.log(JSON.stringify(summary));
else console.log(JSON.stringify(summary, null, 2));
process.exit(errors ? 1 : 0);
