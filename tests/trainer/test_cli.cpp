// The convoy binary the way a user types it: train one epoch, evaluate, resume; a preemption signal;
// config errors before any training. Training runs on every device of the build (cpu, and the strict
// device that proves no host code reads device memory).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/stop.h"
#include "ops/backend.h"
#include "tests/trainer/fixtures.h"
#include "trainer/checkpoint.h"
#include "trainer/trainer.h"

namespace convoy::test {
namespace {
namespace fs = std::filesystem;

struct CmdResult {
  int code;
  std::string output;
};

CmdResult run(const std::string& args) {
  std::string cmd = std::string(CONVOY_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string write_config(const std::string& dir, const std::string& yaml) {
  std::string path = dir + "/exp.yaml";
  std::ofstream(path) << yaml;
  return path;
}

// Lines containing needle; a needle starting with two spaces must match the start of the line.
int count_lines(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    n += needle.starts_with("  ") ? line.starts_with(needle) : line.find(needle) != std::string::npos;
  return n;
}

class CliOnDevice : public ::testing::TestWithParam<std::string> {
 protected:
  std::string device_set() const { return " --set train.device=" + GetParam(); }
};

TEST_P(CliOnDevice, TrainEvaluateResume) {
  std::string dir = temp_dir("cli-" + GetParam());
  std::string data = fashion_subset(512, 128);
  std::string cfg = write_config(dir, small_config(data));
  CmdResult r = run("train --config " + cfg + " --out " + dir + "/run --set train.epochs=1" + device_set());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("test accuracy: top-1"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/run/config.yaml"));
  EXPECT_EQ(count_lines(dir + "/run/metrics.jsonl", "\"type\":\"epoch\""), 1);
  EXPECT_GE(count_lines(dir + "/run/metrics.jsonl", "\"type\":\"step\""), 3);  // 16 steps, interval 5
  EXPECT_EQ(count_lines(dir + "/run/config.yaml", "  epochs: 1"), 1);  // the --set override, resolved

  auto ckpts = trainer::CheckpointStore(dir + "/run/checkpoints", 5).list();
  ASSERT_EQ(ckpts.size(), 1u);
  CmdResult e = run("eval --config " + cfg + " --checkpoint " + ckpts[0] + device_set());
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_NE(e.output.find("top-1"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("on 128 images"), std::string::npos) << e.output;

  // Resuming with two epochs configured continues at epoch 2 and trains only it.
  CmdResult c = run("train --config " + cfg + " --out " + dir + "/run --set train.epochs=2 --resume auto" + device_set());
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("resumed from"), std::string::npos) << c.output;
  EXPECT_EQ(c.output.find("epoch 1 step"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("epoch 2 step 16/16"), std::string::npos) << c.output;
  EXPECT_EQ(count_lines(dir + "/run/metrics.jsonl", "\"type\":\"epoch\""), 2);
}

TEST_P(CliOnDevice, SigtermCheckpointsAndExitsWithTheDocumentedCode) {
  std::string dir = temp_dir("sigterm-" + GetParam());
  std::string data = fashion_subset(8192, 64);  // 256 steps per epoch: the signal comes well inside the first
  std::string cfg = write_config(dir, small_config(data));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string out = dir + "/run", device = "train.device=" + GetParam();
    execl(CONVOY_BINARY, CONVOY_BINARY, "train", "--config", cfg.c_str(), "--out", out.c_str(), "--set",
          "train.epochs=50", "--set", "log.interval=1", "--set", device.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for training to be under way, then preempt it.
  const std::string metrics = dir + "/run/metrics.jsonl";
  for (int i = 0; i < 3000 && count_lines(metrics, "\"type\":\"step\"") < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(count_lines(metrics, "\"type\":\"step\""), 3) << "training never started";
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), trainer::kExitPreempted);
  auto ckpts = trainer::CheckpointStore(dir + "/run/checkpoints", 5).list();
  ASSERT_EQ(ckpts.size(), 1u);
  trainer::CheckpointContents c = trainer::verify_checkpoint(ckpts[0]);
  EXPECT_GT(c.state.global_step, 0);
  EXPECT_EQ(c.state.epoch, 0);  // mid-epoch
  EXPECT_GT(c.state.step_in_epoch, 0);
  // The checkpoint resumes: one more epoch to finish from where it stopped.
  CmdResult r = run("train --config " + cfg + " --out " + dir + "/run --set train.epochs=1 --resume auto" +
                    device_set());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + ckpts[0]), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Devices, CliOnDevice, ::testing::Values("cpu", "cpu-strict"),
                         [](const auto& info) { return info.param == "cpu" ? std::string("cpu") : "cpu_strict"; });

// The peak and a profiled step measured in one run: every convolution and inner product gets its
// GFLOP/s and share of the peak, and the shares follow from the times, the MACs and the peak.
// convoy blocks SIGTERM and SIGUSR1 in every thread (common/stop.h). A child inherits that mask (bash
// keeps it; Debian's dash clears it, so std::system hid this here) and could not be stopped; run_program's
// children start with them unblocked.
TEST(Cli, ChildProgramsStartWithTheStopSignalsUnblocked) {
  sigset_t stops, before;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &stops, &before), 0);
  const std::string file = ::testing::TempDir() + "/sigblk.txt";
  const std::vector<std::string> argv{"/bin/bash", "-c", "grep ^SigBlk: /proc/self/status > " + file};
  auto blocked_in_child = [&](bool inherit) {
    if (inherit) {  // a plain posix_spawn, for contrast: the test can tell the two apart
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      pid_t pid = 0;
      EXPECT_EQ(posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ), 0);
      int status = -1;
      waitpid(pid, &status, 0);
      EXPECT_EQ(status, 0);
    } else {
      EXPECT_EQ(convoy::run_program(argv), 0);
    }
    std::ifstream in(file);
    std::string key, hex;
    in >> key >> hex;
    const unsigned long long mask = std::stoull(hex, nullptr, 16);
    return ((mask >> (SIGTERM - 1)) & 1) + ((mask >> (SIGUSR1 - 1)) & 1);
  };
  EXPECT_EQ(blocked_in_child(false), 0u);
  EXPECT_EQ(blocked_in_child(true), 2u);
  EXPECT_NE(convoy::run_program({"/bin/sh", "-c", "exit 3"}), 0);
  EXPECT_EQ(convoy::run_program({"/nonexistent/program"}), -1);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

TEST(Cli, BenchPeakAndAProfiledStepGiveSharesOfTheMeasuredPeak) {
  CmdResult r = run("bench peak --threads 1 --seconds 0.05 --repeats 1 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto peak = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(peak["isa"], ops::cpu_isa());
  EXPECT_GT(peak["fp32"]["measured_gflops"].get<double>(), 0);
  EXPECT_EQ(peak["bf16"]["available"].get<bool>(), ops::cpu_has_bf16());

  r = run("bench train --model lenet5 --batch 32 --steps 3 --warmup 1 --threads 1 --profile --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  const double peak_gflops = j["peak_gflops"].get<double>();
  EXPECT_GT(peak_gflops, 0);
  int weighted = 0;
  double flops = 0;
  for (const auto& l : j["layers"]) {
    const int64_t macs = l["macs"].get<int64_t>();
    if (macs == 0) {
      EXPECT_FALSE(l.contains("fwd_gflops")) << l.dump();
      continue;
    }
    ++weighted;
    // conv1 reads the input, whose gradient nobody needs: its backward is the weight gradient alone.
    const double bwd_flops = 2.0 * macs * (l["name"] == "conv1" ? 1 : 2);
    flops += 2.0 * macs + bwd_flops;
    EXPECT_NEAR(l["fwd_gflops"].get<double>(), 2.0 * macs / (l["fwd_ms"].get<double>() / 1e3) / 1e9,
                1e-6 * l["fwd_gflops"].get<double>())
        << l.dump();
    EXPECT_NEAR(l["bwd_gflops"].get<double>(), bwd_flops / (l["bwd_ms"].get<double>() / 1e3) / 1e9,
                1e-6 * l["bwd_gflops"].get<double>())
        << l.dump();
    EXPECT_NEAR(l["fwd_share_of_peak"].get<double>(), l["fwd_gflops"].get<double>() / peak_gflops, 1e-9);
  }
  EXPECT_EQ(weighted, 5);  // LeNet-5: two convolutions, three inner products
  EXPECT_NEAR(j["step_gflops"].get<double>(), flops / (j["ms_median"].get<double>() / 1e3) / 1e9,
              1e-6 * j["step_gflops"].get<double>());
  EXPECT_NEAR(j["step_share_of_peak"].get<double>(), j["step_gflops"].get<double>() / peak_gflops, 1e-9);
  EXPECT_GT(j["conv"]["share_of_peak"].get<double>(), 0);

  r = run("bench peak --ghz -1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("--ghz must not be negative"), std::string::npos) << r.output;
}

TEST(Cli, ADeviceOrCommunicatorThisBuildLacksIsRefusedWithWhatToDo) {
  std::string dir = temp_dir("cli-cuda");
  std::string cfg = write_config(dir, small_config(fashion_subset(512, 128)));
  CmdResult r = run("train --config " + cfg + " --out " + dir + "/run --set train.device=cuda");
  if (ops::cuda_devices() == 0) {  // with a GPU, cuda trains: nothing to refuse
    EXPECT_EQ(r.code, 1);
    // A build with the CUDA backend has no GPU to drive here; one without says it has no backend.
    EXPECT_NE(r.output.find(ops::has_cuda_backend() ? "train.device: device 'cuda': no GPU is visible"
                                                    : "train.device: device 'cuda': this convoy build has no CUDA "
                                                      "backend"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("train on device cpu"), std::string::npos) << r.output;
  }
  r = run("train --config " + cfg + " --out " + dir + "/run --set comm.backend=nccl");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(ops::has_cuda_backend()
                              ? "comm.backend: communicator 'nccl' moves GPU memory, but train.device is cpu"
                              : "comm.backend: communicator 'nccl': this convoy build has no NCCL communicator"),
            std::string::npos)
      << r.output;
  r = run("train --config " + cfg + " --out " + dir + "/run --set train.device=tpu");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("train.device must be cpu, cuda or cpu-strict, got 'tpu'"), std::string::npos) << r.output;
}

TEST(Cli, ConfigErrorsStopBeforeTraining) {
  std::string dir = temp_dir("cli-errors");
  std::string data = fashion_subset(512, 128);
  std::string cfg = write_config(dir, small_config(data) + "extra:\n  key: 1\n");
  CmdResult r = run("train --config " + cfg + " --out " + dir + "/run");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("unknown key 'extra'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(cfg), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/run/metrics.jsonl"));
  cfg = write_config(dir, small_config(data));
  r = run("train --config " + cfg + " --out " + dir + "/run --set train.base_lr=-1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("train.base_lr must be positive, got -1"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace convoy::test
