// dsv3 plot --run RUNDIR [--run RUNDIR2 ...] [--label NAME ...] --out PNG [--title T]
// Draws a training run's metrics.jsonl with gnuplot (gnuplot-nox; the pngcairo terminal, or png when
// pngcairo is missing): loss + validation loss, learning rate, per-layer MaxVio_batch, and an expert-load
// heatmap (load / mean load per expert over the steps). With several runs the panels overlay them (loss,
// validation loss, mean MaxVio, LR) for ablations; the heatmap then shows the first run.
// dsv3 plot --indexer --run WARMUP --run SPARSE ... --out PNG: DeepSeek-V3.2's indexer training stages.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/gnuplot.h"
#include "core/error.h"

namespace dsv3::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::vector<std::string> runs, labels;
  std::string out, title;
  bool indexer = false;
};

struct Run {
  std::string label;
  std::vector<nlohmann::json> train, val;
};

Run read_run(const std::string& dir, const std::string& label) {
  const std::string path = dir + "/metrics.jsonl";
  std::ifstream in(path);
  if (!in) fail("{}: cannot open (is {} a training run directory?)", path, dir);
  Run r;
  r.label = label;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: not valid JSON: {}", path, n, e.what());
    }
    const std::string type = j.value("type", "");
    if (type == "train") r.train.push_back(std::move(j));
    if (type == "val") r.val.push_back(std::move(j));
  }
  if (r.train.empty()) fail("{}: no training steps logged yet", path);
  return r;
}

double num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

void write_series(const Run& r, const std::string& dir, size_t k) {
  std::ofstream t(fmt::format("{}/train{}.dat", dir, k));
  t << "# step loss main_ce mtp_ce lr maxvio_mean\n";
  for (const auto& j : r.train) {
    double vio = 0;
    int nv = 0;
    if (j.contains("maxvio"))
      for (const auto& v : j["maxvio"]) vio += v.get<double>(), ++nv;
    t << fmt::format("{} {} {} {} {} {}\n", j.value("step", 0), num(j, "loss"), num(j, "main_ce"), num(j, "mtp_ce"),
                     num(j, "lr"), nv ? vio / nv : NAN);
  }
  std::ofstream v(fmt::format("{}/val{}.dat", dir, k));
  v << "# step val_loss\n";
  for (const auto& j : r.val) v << fmt::format("{} {}\n", j.value("step", 0), num(j, "val_loss"));
}

// Per-layer MaxVio columns and the heatmap grid of the first run. Steps are binned into at most 400 columns.
// Returns the MoE layer ids and the number of experts.
std::pair<std::vector<int64_t>, int64_t> write_balance(const Run& r, const std::string& dir) {
  std::vector<int64_t> layers;
  int64_t experts = 0;
  for (const auto& j : r.train)
    if (j.contains("moe_layers") && !j["moe_layers"].empty()) {
      layers = j["moe_layers"].get<std::vector<int64_t>>();
      experts = int64_t(j["load"][0].size());
      break;
    }
  if (layers.empty()) return {layers, 0};
  std::ofstream mv(dir + "/maxvio.dat");
  for (const auto& j : r.train) {
    if (!j.contains("maxvio") || j["maxvio"].size() != layers.size()) continue;
    mv << j.value("step", 0);
    for (const auto& v : j["maxvio"]) mv << " " << v.get<double>();
    mv << "\n";
  }
  // Heatmap: x = step bin, y = layer-major expert row, z = load / mean load (1 = balanced).
  const size_t rows = layers.size() * size_t(experts);
  const size_t n = r.train.size(), bins = std::min<size_t>(n, 400);
  std::ofstream hm(dir + "/heat.dat");
  for (size_t b = 0; b < bins; ++b) {
    const size_t lo = b * n / bins, hi = std::max(lo + 1, (b + 1) * n / bins);
    std::vector<double> acc(rows, 0.0);
    int cnt = 0;
    for (size_t i = lo; i < hi; ++i) {
      const auto& j = r.train[i];
      if (!j.contains("load") || j["load"].size() != layers.size()) continue;
      for (size_t l = 0; l < layers.size(); ++l) {
        const auto load = j["load"][l].get<std::vector<int64_t>>();
        double sum = 0;
        for (int64_t x : load) sum += double(x);
        const double mean = sum / double(load.size());
        for (size_t e = 0; e < load.size() && e < size_t(experts); ++e)
          acc[l * size_t(experts) + e] += mean > 0 ? double(load[e]) / mean : 0.0;
      }
      ++cnt;
    }
    const double x = 0.5 * (r.train[lo].value("step", 0.0) + r.train[hi - 1].value("step", 0.0));
    for (size_t y = 0; y < rows; ++y) hm << fmt::format("{} {} {}\n", x, y, cnt ? acc[y] / cnt : 0.0);
    hm << "\n";
  }
  return {layers, experts};
}

// --indexer: DeepSeek-V3.2's indexer training (docs/dsa-training.md). The runs are stages of one training (the
// dense warm-up, then sparse training), drawn one after another: run k's steps follow run k-1's last step.
// Panels: the recall of the dense attention mass by the indexer's top-k (mean over layers, and per layer), the
// indexer's KL loss (mean over layers), and the main-head CE.
int run_indexer(const std::vector<Run>& runs, const Options& o) {
  char tmpl[] = "/tmp/dsv3_plot_XXXXXX";
  if (!mkdtemp(tmpl)) fail("cannot create a temporary directory: {}", std::strerror(errno));
  const std::string dir = tmpl;
  int64_t offset = 0;
  size_t layers = 0;
  std::vector<int64_t> ends;
  for (size_t k = 0; k < runs.size(); ++k) {
    std::ofstream t(fmt::format("{}/ix{}.dat", dir, k));
    t << "# step recall_mean kl_mean main_ce recall_per_layer...\n";
    int64_t last = offset;
    for (const auto& j : runs[k].train) {
      if (!j.contains("index_recall")) continue;
      const auto rec = j["index_recall"].get<std::vector<double>>();
      const auto kl = j["indexer_kl"].get<std::vector<double>>();
      layers = std::max(layers, rec.size());
      double klm = 0;
      for (double v : kl) klm += v / double(kl.size());
      last = offset + j.value("step", int64_t(0));
      t << fmt::format("{} {} {} {}", last, num(j, "index_recall_mean"), klm, num(j, "main_ce"));
      for (double v : rec) t << " " << v;
      t << "\n";
    }
    if (last == offset) fail("{}: no indexer metrics (index_recall) in its metrics.jsonl", o.runs[k]);
    offset = last;
    ends.push_back(last);
  }
  std::string g =
      "set terminal " + png_terminal(1500, 1000) + "\nset output " + gp_string(fs::absolute(o.out).string()) + "\n";
  g += "set datafile missing 'nan'\nset key outside right noenhanced\nset termoption noenhanced\nset grid\n";
  g += "set multiplot layout 3,1 title " + gp_string(o.title.empty() ? "lightning indexer training" : o.title) +
       " noenhanced\nset xlabel 'step'\n";
  for (size_t k = 0; k + 1 < ends.size(); ++k)
    g += fmt::format("set arrow from {0},graph 0 to {0},graph 1 nohead dt 2 lc 'gray'\n", ends[k]);
  auto plot = [&](const std::string& title, const std::string& cols, bool per_layer) {
    g += "set title " + gp_string(title) + "\n";
    std::string p = "plot ";
    for (size_t k = 0; k < runs.size(); ++k) {
      p += fmt::format("{}'{}/ix{}.dat' using 1:{} with lines lw 2 title {}", k ? ", " : "", dir, k, cols,
                       gp_string(runs[k].label));
      if (per_layer)  // one colour per layer across the stages, named once
        for (size_t l = 0; l < layers; ++l)
          p += fmt::format(", '{}/ix{}.dat' using 1:{} with lines lw 1 dt 3 lc {} {}", dir, k, 5 + l, 3 + l,
                           k == 0 ? "title " + gp_string(fmt::format("layer {}", l)) : std::string("notitle"));
    }
    g += p + "\n";
  };
  plot("top-k recall of the dense attention mass (rows that drop keys)", "2", true);
  plot("indexer KL loss (mean over layers)", "3", false);
  plot("main-head cross-entropy", "4", false);
  g += "unset multiplot\n";
  run_gnuplot(g, dir);
  fs::remove_all(dir);
  std::printf("%s\n", o.out.c_str());
  return 0;
}

int run(const Options& o) {
  require_gnuplot();
  if (!o.labels.empty() && o.labels.size() != o.runs.size())
    fail("give one --label per --run ({} runs, {} labels)", o.runs.size(), o.labels.size());
  std::vector<Run> runs;
  for (size_t i = 0; i < o.runs.size(); ++i)
    runs.push_back(read_run(o.runs[i], o.labels.empty() ? fs::path(o.runs[i]).filename().string() : o.labels[i]));

  if (o.indexer) return run_indexer(runs, o);
  char tmpl[] = "/tmp/dsv3_plot_XXXXXX";
  if (!mkdtemp(tmpl)) fail("cannot create a temporary directory: {}", std::strerror(errno));
  const std::string dir = tmpl;
  for (size_t k = 0; k < runs.size(); ++k) write_series(runs[k], dir, k);
  const auto [layers, experts] = write_balance(runs[0], dir);
  const bool multi = runs.size() > 1;

  const std::string term = png_terminal(1600, 1100);
  std::string g;
  g += "set terminal " + term + "\nset output " + gp_string(fs::absolute(o.out).string()) + "\n";
  g += "set datafile missing 'nan'\nset key top right noenhanced\nset termoption noenhanced\nset grid\n";
  const std::string title = !o.title.empty() ? o.title
                            : multi          ? "training runs"
                                             : "training run " + fs::path(o.runs[0]).filename().string();
  g += "set multiplot layout 2,2 title " + gp_string(title) + " noenhanced\n";
  // (1) loss
  g += "set title 'loss (train: total and main-head CE; val: main-head CE)'\nset xlabel 'step'\n";
  std::string p = "plot ";
  for (size_t k = 0; k < runs.size(); ++k) {
    const std::string lab = multi ? runs[k].label + " " : "";
    if (k) p += ", ";
    if (!multi) p += fmt::format("'{}/train{}.dat' using 1:2 with lines lw 1 title 'train loss', ", dir, k);
    // Overlaid runs: the noisy per-step train CE as a smooth trend, so the runs stay distinguishable.
    p += fmt::format("'{}/train{}.dat' using 1:3 {} title {}", dir, k,
                     multi ? "smooth bezier with lines lw 1 dt 2" : "with lines lw 1",
                     gp_string(lab + (multi ? "train main CE (smoothed)" : "train main CE")));
    if (!runs[k].val.empty())
      p += fmt::format(", '{}/val{}.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.6 title {}", dir, k,
                       gp_string(lab + "val loss"));
  }
  g += p + "\n";
  // (2) learning rate
  g += "set title 'learning rate'\nset format y '%.1e'\n";
  p = "plot ";
  for (size_t k = 0; k < runs.size(); ++k)
    p += fmt::format("{}'{}/train{}.dat' using 1:5 with lines lw 2 title {}", k ? ", " : "", dir, k,
                     gp_string(multi ? runs[k].label : "lr"));
  g += p + "\nset format y '%g'\n";
  // (3) MaxVio
  g += "set title 'MaxVio (batch) = (max load - mean load) / mean load'\n";
  if (multi) {
    p = "plot ";
    for (size_t k = 0; k < runs.size(); ++k)
      p += fmt::format("{}'{}/train{}.dat' using 1:6 with lines lw 1 title {}", k ? ", " : "", dir, k,
                       gp_string(runs[k].label + " (mean over layers)"));
    g += p + "\n";
  } else if (!layers.empty()) {
    p = "plot ";
    for (size_t l = 0; l < layers.size(); ++l)
      p += fmt::format("{}'{}/maxvio.dat' using 1:{} with lines lw 1 title 'layer {}'", l ? ", " : "", dir, l + 2,
                       layers[l]);
    g += p + "\n";
  } else {
    g += "unset key\nset label 1 'dense model: no experts' at graph 0.5,0.5 center\nplot 2 notitle\nunset label 1\n";
  }
  // (4) heatmap
  if (!layers.empty()) {
    g += fmt::format("set title {}\n",
                     gp_string("expert load / mean load" + (multi ? " (" + runs[0].label + ")" : std::string())));
    g += "set ylabel 'layer-major expert'\nset cblabel 'load / mean'\nset palette defined (0 'navy', 1 'white', 2 "
         "'red', 4 'dark-red')\n";
    g += "set cbrange [0:3]\n";
    std::string ytics = "set ytics (";
    for (size_t l = 0; l < layers.size(); ++l)
      ytics +=
          fmt::format("{}'L{}' {}", l ? ", " : "", layers[l], double(l * size_t(experts)) + double(experts - 1) / 2);
    g += ytics + ")\n";
    g += fmt::format("set yrange [-0.5:{}]\n", double(layers.size() * size_t(experts)) - 0.5);
    g += "set autoscale xfix\n";
    g += fmt::format("plot '{}/heat.dat' using 1:2:3 with image notitle\n", dir);
  }
  g += "unset multiplot\n";
  run_gnuplot(g, dir);
  fs::remove_all(dir);
  std::printf("%s\n", o.out.c_str());
  return 0;
}

Registrar reg("plot", "Plot a training run (loss, val loss, LR, MaxVio, expert-load heatmap) to a PNG",
              [](CLI::App& app) {
                auto o = std::make_shared<Options>();
                app.add_option("--run", o->runs, "Run directory (repeat to overlay runs)")->required();
                app.add_option("--label", o->labels, "Legend name of each --run (default: directory name)");
                app.add_option("--out", o->out, "Output PNG")->required();
                app.add_option("--title", o->title, "Figure title");
                app.add_flag("--indexer", o->indexer,
                             "V3.2 indexer training: top-k recall, indexer KL and main CE; the runs are consecutive "
                             "stages");
                return [o] { return run(*o); };
              });

}  // namespace
}  // namespace dsv3::cli
