// transformers.js side of bench/tokenizer_throughput.sh: encode a text file with a tokenizer.json and report
// the best of N runs.   node tokenizer_throughput.mjs NODE_DIR TOKENIZER_DIR TEXT_FILE [RUNS]
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { pathToFileURL } from 'url';

const [nodeDir, tokDir, textFile, runsArg] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeDir), 'package.json'));
const entry = require.resolve('@huggingface/transformers');
const tf = await import(pathToFileURL(entry).href);
const version = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), '..', 'package.json'))).version;
const tok = new tf.PreTrainedTokenizer(
  JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf8')),
  JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer_config.json'), 'utf8')),
);
const bytes = fs.readFileSync(textFile);
const text = bytes.toString('utf8');
const runs = Number(runsArg ?? 3);
let best = Infinity, n = 0;
for (let r = 0; r < runs; ++r) {
  const t0 = process.hrtime.bigint();
  n = tok.encode(text, { add_special_tokens: false }).length;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  best = Math.min(best, dt);
}
console.error(`${bytes.length} bytes -> ${n} tokens in ${best.toFixed(3)} s (${(bytes.length / best / 1e6).toFixed(2)} MB/s, ` +
  `transformers.js ${version}, Node ${process.version}, best of ${runs})`);
