// `convoy bench peak`: this machine's fp32 FMA throughput (bf16 where the ISA has it), memory bandwidth
// and clock, measured, beside the theoretical peak (ops/cpu/peak.h).
#include "trainer/bench_peak.h"

#include <cstdio>
#include <thread>

#include "ops/backend.h"
#include "trainer/commands.h"

namespace convoy::trainer {
namespace {

void print_fma(const char* what, const ops::cpu::FmaPeak& f, const ops::cpu::MachinePeak& p, const char* indent) {
  if (!f.available) {
    std::printf("%s%-10s not measured: %s\n", indent, what, f.why_not.c_str());
    return;
  }
  std::printf("%s%-10s %8.1f GFLOP/s measured, %8.1f theoretical (%.1f %%): %d threads x %d FMA units x %.0f flops "
              "an instruction x %.2f GHz; loop: %s\n",
              indent, what, f.measured_gflops, f.theoretical_gflops, 100 * f.share(), p.threads, p.fma_units,
              f.flops_per_instruction, p.ghz, f.loop.c_str());
}

nlohmann::json fma_json(const ops::cpu::FmaPeak& f) {
  if (!f.available) return {{"available", false}, {"why_not", f.why_not}};
  return {{"available", true},
          {"loop", f.loop},
          {"flops_per_instruction", f.flops_per_instruction},
          {"measured_gflops", f.measured_gflops},
          {"theoretical_gflops", f.theoretical_gflops},
          {"share_of_theoretical", f.share()}};
}

struct BenchPeakArgs {
  ops::cpu::PeakOptions options;
  bool json = false;
};

}  // namespace

void print_peak(const ops::cpu::MachinePeak& p, const char* indent) {
  std::printf("%sprocessor  %s (%s), oneDNN ISA %s, %d threads\n", indent, p.cpu.c_str(), p.core.c_str(),
              ops::cpu_isa().c_str(), p.threads);
  std::printf("%sclock      %.2f GHz (%s); FMA units per core: %d (%s)\n", indent, p.ghz,
              p.ghz_measured ? "measured: dependent integer adds on every thread at once" : "--ghz", p.fma_units,
              p.fma_units_from.c_str());
  print_fma("fp32 FMA", p.fp32, p, indent);
  print_fma("bf16 dot", p.bf16, p, indent);
  std::printf("%smemory     %.1f GB/s triad (a = b + s*c, 12 bytes an element), %.1f GB/s read\n", indent,
              p.triad_gbs, p.read_gbs);
}

nlohmann::json peak_json(const ops::cpu::MachinePeak& p) {
  return {{"cpu", p.cpu},
          {"core", p.core},
          {"isa", ops::cpu_isa()},
          {"threads", p.threads},
          {"ghz", p.ghz},
          {"ghz_measured", p.ghz_measured},
          {"fma_units", p.fma_units},
          {"fma_units_from", p.fma_units_from},
          {"fp32", fma_json(p.fp32)},
          {"bf16", fma_json(p.bf16)},
          {"triad_gbs", p.triad_gbs},
          {"read_gbs", p.read_gbs}};
}

void add_bench_peak_command(CLI::App& bench, Action& action) {
  auto a = std::make_shared<BenchPeakArgs>();
  a->options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto* cmd = bench.add_subcommand("peak", "Measure the machine's FMA throughput and memory bandwidth beside its "
                                           "theoretical peak");
  cmd->add_option("--threads", a->options.threads, "Threads, all at once (default: every core)")->capture_default_str();
  cmd->add_option("--seconds", a->options.seconds, "Seconds per timed repeat of each loop")->capture_default_str();
  cmd->add_option("--repeats", a->options.repeats, "Timed repeats; the best counts")->capture_default_str();
  cmd->add_option("--fma-units", a->options.fma_units, "FMA units per core at the loop's width (default: the table's)");
  cmd->add_option("--ghz", a->options.ghz, "Clock for the theoretical peak (default: measured)");
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->callback([a, &action] {
    action = [a] {
      const ops::cpu::MachinePeak p = ops::cpu::measure_peak(a->options);
      if (a->json) {
        nlohmann::json j = peak_json(p);
        j["bench"] = "peak";
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("convoy bench peak\n");
        print_peak(p, "  ");
      }
      return 0;
    };
  });
}

}  // namespace convoy::trainer
