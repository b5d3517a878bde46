// Validates documents against JSON schemas with ajv (draft 2020-12, ajv-formats in "full" mode), for the
// grammar differential tests (tests/io/grammar/ajv_peer_test.cc, tests/runtime/grammar_constraint_test.cc).
// usage: node ajv_check.cjs NODE_DIR INPUT.json  — INPUT: [{"schema": {...}, "docs": ["text", ...]}, ...]
// prints: [[true, false, ...], ...] — per doc: JSON.parse succeeds and ajv validates it.
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');
const req = createRequire(path.join(path.resolve(process.argv[2]), 'package.json'));
const Ajv2020 = req('ajv/dist/2020').default;
const addFormats = req('ajv-formats').default;
const input = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const out = input.map(({ schema, docs }) => {
  const ajv = new Ajv2020({ strict: false, allErrors: false });
  addFormats(ajv, { mode: 'full' });
  const validate = ajv.compile(schema);
  return docs.map((d) => {
    let v;
    try {
      v = JSON.parse(d);
    } catch (e) {
      return false;
    }
    return validate(v) === true;
  });
});
process.stdout.write(JSON.stringify(out));
