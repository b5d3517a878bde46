#include "train/fp8_recipe.h"

#include "core/error.h"

namespace dsv3::train {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32:
      return "fp32";
    case Precision::BF16:
      return "bf16";
    case Precision::FP8:
      return "fp8";
  }
  return "?";
}

Precision parse_precision(std::string_view s, const std::string& what) {
  if (s == "fp32") return Precision::FP32;
  if (s == "bf16") return Precision::BF16;
  if (s == "fp8") return Precision::FP8;
  fail("{}: precision '{}' is not one of fp32, bf16, fp8", what, s);
}

const char* fp8_scale_format_name(Fp8ScaleFormat f) { return f == Fp8ScaleFormat::UE8M0 ? "ue8m0" : "fp32"; }

}  // namespace dsv3::train
