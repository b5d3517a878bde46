// MTP speculative decoding (DeepSeek-V3 §2.2 / §5.4.3: the MTP module as a draft model; acceptance by
// speculative rejection sampling, Leviathan et al. 2023 "Fast Inference from Transformers via Speculative
// Decoding", Chen et al. 2023). One decode step over a batch of sequences:
//   1. draft: the MTP module consumes each sequence's pending rows (h[i], t[i+1]) — the last pairs h[n-1]
//      with the pending token t[n] — and its last row's logits give q1, the draft d1 ~ q1 (arg-max when
//      greedy). Depth j > 1 chains the module on its own output hidden state: row (x_{j-1}, d_{j-1}) at the
//      next position gives q_j, d_j. Those chained rows are not the true rows (the main model's hidden state
//      is not known yet), so the MTP cache is truncated back after drafting. Only module 0 is used, as
//      DeepSeek-V3 ships one; further modules would need caches of their own filled at every position.
//   2. verify: the main model runs [t[n], d1..dk] as one chunk per sequence (all sequences in one batched
//      forward, every row's logits) → p0..pk.
//   3. accept d_j with probability min(1, p_{j-1}(d_j) / q_j(d_j)); at the first rejection draw from
//      norm(max(0, p_{j-1} − q_j)) instead and stop; if all k are accepted draw a bonus token from p_k.
//      p and q are the sampler's processed distributions (penalties with the drafts as tentative history,
//      temperature, top-k/p, min-p), so the output distribution is exactly the non-speculative sampler's.
//      Greedy: p and q are one-hot, which reduces the rule to "accept while the draft equals the arg-max".
//   4. roll back: the main cache is truncated past the accepted tokens; the hidden states of the kept
//      positions become the MTP's next pending rows.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/sequence.h"

namespace dsv3 {
class Model;
}

namespace dsv3::runtime {

struct SpecVerdict {
  int64_t accepted = 0;  // drafts kept (a prefix)
  int32_t next = 0;      // the token after them: the correction at the first rejection, or the bonus token
};

// Step 3 for one sequence. drafts [k], q [k] distributions [vocab] the drafts were drawn from,
// target_logits [k+1, vocab] raw main-model logits of the verified rows. Uses the sampler's history
// (the drafts are passed as tentative history, nothing is pushed) and its random stream.
SpecVerdict verify_drafts(Sampler& sampler, std::span<const int32_t> drafts, std::span<const std::vector<float>> q,
                          const float* target_logits);

// Steps 1–4 over the sequences (all decoding, not done); emits the accepted tokens through Sequence::emit.
// `depth` is the engine's draft depth; each sequence drafts fewer when fewer tokens remain to its limit.
struct SpecStepStats {
  int64_t drafted = 0, accepted = 0, emitted = 0;
};
SpecStepStats speculative_step(Model& model, std::span<Sequence* const> seqs, int64_t depth);

}  // namespace dsv3::runtime
