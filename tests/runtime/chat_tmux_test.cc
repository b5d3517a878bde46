// `dsv3 chat` driven as a person drives it: in a real terminal (a detached tmux session), keys typed one
// line at a time, the screen read back with capture-pane. Checks the prompt shown on a terminal, that every
// turn gets a streamed reply, that greedy replies repeat after /reset, and that /exit ends the program.
// Skips with a message when tmux is absent (scripts/setup.sh installs it).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "test_models.h"

namespace dsv3 {
namespace {

using namespace dsv3::testing_models;

std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

class Tmux {
 public:
  explicit Tmux(std::string name) : name_(std::move(name)) {}
  ~Tmux() { run("tmux kill-session -t " + name_); }
  bool start(const std::string& command) {
    int st = 0;
    run("tmux new-session -d -x 200 -y 50 -s " + name_ + " '" + command + "; echo __EXIT_$?__; sleep 30'", &st);
    return st == 0;
  }
  void type_line(const std::string& text) { run("tmux send-keys -t " + name_ + " -l '" + text + "'"), enter(); }
  void enter() { run("tmux send-keys -t " + name_ + " Enter"); }
  std::string screen() { return run("tmux capture-pane -p -J -S -1000 -t " + name_); }
  // Waits until the screen shows `needle` at least `times` times; returns the screen.
  std::string wait_for(const std::string& needle, int times = 1, double seconds = 60) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::string s;
    while (std::chrono::steady_clock::now() < until) {
      s = screen();
      int count = 0;
      for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++count;
      if (count >= times) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "timed out waiting for '" << needle << "' x" << times << "; screen:\n" << s;
    return s;
  }

 private:
  std::string name_;
};

TEST(ChatInTerminal, TurnsResetAndExit) {
  int st = 0;
  run("command -v tmux", &st);
  if (st != 0) GTEST_SKIP() << "tmux is not installed (scripts/setup.sh installs it)";
  const std::string dir = write_chat_model(temp_dir("chat_tmux"), 0.5, 8);
  Tmux t("dsv3chat" + std::to_string(::getpid()));
  ASSERT_TRUE(t.start(std::string(DSV3_BIN) + " chat --model " + dir + " -n 12 --temp 0 --ignore-eos"));

  t.wait_for("> ");  // the prompt: it is a terminal
  t.type_line("Hello there, who are you?");
  std::string s = t.wait_for("> ", 2);  // a reply was streamed, then the prompt came back
  const size_t q1 = s.find("Hello there, who are you?");
  ASSERT_NE(q1, std::string::npos) << s;
  const size_t p2 = s.find("> ", q1);
  ASSERT_NE(p2, std::string::npos) << s;
  const std::string reply1 = s.substr(q1 + 25, p2 - (q1 + 25));
  EXPECT_NE(reply1.find_first_not_of(" \n"), std::string::npos) << "empty first reply; screen:\n" << s;

  t.type_line("And what do you say to that?");
  t.wait_for("> ", 3);
  t.type_line("/reset");
  s = t.wait_for("(conversation cleared)");
  t.type_line("Hello there, who are you?");
  s = t.wait_for("> ", 5);
  // Greedy decoding of the same first turn after /reset prints the same reply.
  const size_t q2 = s.rfind("Hello there, who are you?");
  const size_t p5 = s.find("> ", q2);
  ASSERT_TRUE(q2 != std::string::npos && p5 != std::string::npos) << s;
  EXPECT_EQ(s.substr(q2 + 25, p5 - (q2 + 25)), reply1) << s;

  t.type_line("/exit");
  s = t.wait_for("__EXIT_");
  EXPECT_NE(s.find("__EXIT_0__"), std::string::npos) << s;
}

}  // namespace
}  // namespace dsv3
