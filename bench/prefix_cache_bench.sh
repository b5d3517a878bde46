#!/usr/bin/env bash
# Prefix cache (docs/PERF.md "Prefix cache", docs/serving.md "Prefix cache"): time to first token of
# `dsv3 serve` for a request whose 2,000-token prefix is new, then for a request sharing that prefix (a
# different 16-token tail), in interleaved rounds (each round a fresh random prefix), on the `small` preset
# (../shared/bench/llamacpp/make_dsv3_model.py --preset small: 245 M parameters, BF16; written here by
# `dsv3 init` from the same config). TTFT = the wall time of a non-streaming /v1/completions request with
# max_tokens 1 (prefill + one sampled token + HTTP), measured by the client.
#
#   bench/prefix_cache_bench.sh [--bin BUILD/dsv3] [--work DIR] [--rounds N] [--prefix TOKENS] [serve flags...]
#
# Prints one row per round and the medians; extra arguments go to `dsv3 serve` (e.g. --cache-mem 0 to see
# the repeat without the cache, --prefill-chunk N). Set OMP_NUM_THREADS to pin the thread count.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../build/dsv3}
WORK=${WORK:-/tmp/dsv3_prefix_bench}
ROUNDS=7
PREFIX=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --prefix) PREFIX=$2; shift 2 ;;
    *) break ;;
  esac
done
mkdir -p "$WORK"
MODEL=$WORK/small
if [ ! -f "$MODEL/config.json" ]; then
  cat > "$WORK/small_config.json" <<'JSON'
{"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_act": "silu",
 "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
 "rope_scaling": {"type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096, "beta_fast": 32,
                  "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
 "max_position_embeddings": 163840, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true,
 "routed_scaling_factor": 2.5, "attention_bias": false, "tie_word_embeddings": false,
 "num_nextn_predict_layers": 0, "moe_layer_freq": 1, "initializer_range": 0.02, "torch_dtype": "bfloat16",
 "bos_token_id": 0, "eos_token_id": 1,
 "vocab_size": 16384, "hidden_size": 1024, "intermediate_size": 2048, "moe_intermediate_size": 128,
 "num_hidden_layers": 8, "first_k_dense_replace": 1, "num_attention_heads": 16, "num_key_value_heads": 16,
 "q_lora_rank": 384, "kv_lora_rank": 256, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64,
 "n_routed_experts": 64, "num_experts_per_tok": 6, "n_shared_experts": 2, "n_group": 8, "topk_group": 4}
JSON
  "$BIN" init --config "$WORK/small_config.json" --out "$MODEL" --seed 1 >/dev/null
fi
LOG=$WORK/serve.log
"$BIN" serve --model "$MODEL" --port 0 --ctx 4096 "$@" 2> "$LOG" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
PORT=""
for _ in $(seq 1 600); do
  PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$LOG" | head -1)
  [ -n "$PORT" ] && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "the server did not start" >&2; cat "$LOG" >&2; exit 1; }
echo "dsv3 serve $* on port $PORT; $(nproc) CPUs, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}" >&2
python3 - "$PORT" "$ROUNDS" "$PREFIX" <<'PY'
import http.client, json, random, statistics, sys, time
port, rounds, prefix_len = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def ttft(ids):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": ids, "max_tokens": 1, "temperature": 0})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        sys.exit(f"HTTP {r.status}: {data[:300]!r}")
    return dt, json.loads(data)["usage"]["prompt_tokens_details"]["cached_tokens"]

ttft(list(range(2, 66)))  # warm-up (first-touch of the weights)
first, repeat = [], []
print(f"| round | first request (ms) | repeat (ms) | cached tokens of the repeat | ratio |")
print(f"|---|---|---|---|---|")
for r in range(rounds):
    rng = random.Random(1000 + r)
    prefix = [rng.randrange(2, 16384) for _ in range(prefix_len)]
    a, ca = ttft(prefix + [rng.randrange(2, 16384) for _ in range(16)])
    b, cb = ttft(prefix + [rng.randrange(2, 16384) for _ in range(16)])
    first.append(a)
    repeat.append(b)
    print(f"| {r} | {a * 1e3:.1f} | {b * 1e3:.1f} | {cb} (first: {ca}) | {a / b:.1f}x |")
mf, mr = statistics.median(first), statistics.median(repeat)
print(f"| **median** | **{mf * 1e3:.1f}** | **{mr * 1e3:.1f}** | | **{mf / mr:.1f}x** |")
PY
echo "server metrics:" >&2
python3 - "$PORT" >&2 <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("GET", "/metrics")
for line in c.getresponse().read().decode().splitlines():
    if line.startswith("dsv3_prefix_cache"):
        print("  " + line)
PY
