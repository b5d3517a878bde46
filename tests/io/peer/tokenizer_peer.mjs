// Peer side of tests/io/tokenizer_peer_test.cc: encodes and decodes the test cases with transformers.js
// (and renders chat templates with its Jinja engine) so the C++ test can compare results.
//
//   node tokenizer_peer.mjs NODE_DIR INPUT.json OUTPUT.json
//
// NODE_DIR holds node_modules/@huggingface/transformers (npm install --ignore-scripts). INPUT:
//   {"tokenizers": [{"name", "path", "config"}], "cases": [base64 of raw bytes], "chat": [{"template",
//    "bos_token", "eos_token", "messages", "add_generation_prompt"}]}
// Case bytes are turned into a JS string with TextDecoder (invalid UTF-8 -> U+FFFD per maximal subpart),
// exactly what a JS caller would hold. OUTPUT: {"version", "tokenizers": [{"name", "ids": [[...]],
// "decoded": [...], "decoded_skip": [...]}], "chat": [...]}.
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';

const [nodeDir, inputPath, outputPath] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeDir), 'package.json'));
const entry = require.resolve('@huggingface/transformers');
const tf = await import(pathToFileURL(entry).href);
const version = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), '..', 'package.json'))).version;

const input = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
// ignoreBOM keeps a leading U+FEFF in the string (the default would silently drop it).
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const cases = input.cases.map((b64) => decoder.decode(Buffer.from(b64, 'base64')));

const decode = (tok, ids, skip) =>
  ids.length === 0 ? '' : tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });

const out = { version, tokenizers: [], chat: [] };
for (const t of input.tokenizers) {
  const json = JSON.parse(fs.readFileSync(t.path, 'utf8'));
  const config = t.config ? JSON.parse(fs.readFileSync(t.config, 'utf8')) : {};
  const tok = new tf.PreTrainedTokenizer(json, config);
  const ids = cases.map((c) => tok.encode(c, { add_special_tokens: false }));
  out.tokenizers.push({
    name: t.name,
    ids,
    decoded: ids.map((x) => decode(tok, x, false)),
    decoded_skip: ids.map((x) => decode(tok, x, true)),
  });
}
for (const c of input.chat ?? []) {
  const tok = new tf.PreTrainedTokenizer(
    { model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, added_tokens: [], normalizer: null, pre_tokenizer: null,
      post_processor: null, decoder: null },
    { chat_template: c.template, bos_token: c.bos_token, eos_token: c.eos_token },
  );
  out.chat.push(tok.apply_chat_template(c.messages, { tokenize: false, add_generation_prompt: c.add_generation_prompt }));
}
fs.writeFileSync(outputPath, JSON.stringify(out));
