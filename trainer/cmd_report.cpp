// `convoy report RUNS... --out DIR`: the scaling-efficiency report of launch/scaling.sh's run folders
// (trainer/report.h) as report.json and report.md, with plots that tools/report_plots.py draws with
// matplotlib (PNG and SVG).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/stop.h"
#include "trainer/commands.h"
#include "trainer/projection.h"
#include "trainer/report.h"

#ifndef CONVOY_TOOLS_DIR
#define CONVOY_TOOLS_DIR "tools"
#endif

namespace convoy::trainer {
namespace {

namespace fs = std::filesystem;

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out, project, profile;
  bool no_plots = false;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  CONVOY_CHECK(f, "cannot write " << path << ": check that the folder is writable");
  f << text;
  CONVOY_CHECK(f.good(), "writing " << path << " failed: is the disk full?");
}

int run_report(const ReportArgs& a) {
  CONVOY_CHECK(!a.runs.empty() || !a.project.empty(),
               "convoy report needs run folders (launch/scaling.sh writes them), --project CLUSTER.yaml, or both");
  std::vector<RunSummary> runs;
  for (const std::string& dir : a.runs) runs.push_back(read_run(dir));
  const bool have_runs = !runs.empty();
  nlohmann::json report = have_runs ? make_report(std::move(runs)) : nlohmann::json{{"runs", nlohmann::json::array()}};
  std::string extra_md;
  if (!a.project.empty()) {
    const Cluster cluster = read_cluster(a.project);
    // The profile: --profile, else the cluster file's, else the report's one-rank bench run.
    std::string profile = !a.profile.empty() ? a.profile : cluster.profile;
    if (profile.empty() && have_runs && report["runs"][0]["ranks"] == 1) profile = report["runs"][0]["dir"].get<std::string>() + "/bench.json";
    CONVOY_CHECK(!profile.empty() && fs::exists(profile),
                 "the projection needs a one-worker profile (convoy bench train --profile --json): give --profile FILE, "
                 "compute.profile in " << a.project << ", or a 1-rank bench run among the runs"
                                       << (profile.empty() ? "" : "; " + profile + " does not exist"));
    const Profile p = read_profile(profile, cluster.images_per_s_per_worker, cluster.batch_per_worker);
    report["projection"] = projection_json(cluster, p);
    extra_md += projection_markdown(report["projection"]);
    if (have_runs && cluster.images_per_s_per_worker == 0) {  // the profile is this machine's: the runs check the model
      report["validation"] = validation_json(cluster, p, report["runs"]);
      extra_md += validation_markdown(report["validation"]);
    }
  }
  fs::create_directories(a.out);
  write_file(a.out + "/report.json", report.dump(1) + "\n");
  std::vector<std::string> plots;
  if (have_runs && !a.no_plots) {
    const char* env = std::getenv("CONVOY_TOOLS_DIR");
    const std::string script = std::string(env ? env : CONVOY_TOOLS_DIR) + "/report_plots.py";
    CONVOY_CHECK(fs::exists(script), "the plotting script " << script << " is missing: set CONVOY_TOOLS_DIR to "
                                                            "convoy's tools/ folder, or pass --no-plots");
    const std::vector<std::string> argv{"/usr/bin/python3", script, a.out + "/report.json", a.out};
    const std::string cmd = argv[0] + " " + shell_quote(argv[1]) + " " + shell_quote(argv[2]) + " " + shell_quote(argv[3]);
    CONVOY_CHECK(run_program(argv) == 0,
                 "drawing the plots failed (" << cmd << "): it needs python3-matplotlib (tools/setup.sh installs "
                                              "it); --no-plots writes the report without them");
    for (const char* name : {"throughput.png", "efficiency.png", "breakdown.png", "buckets.png"})
      if (fs::exists(a.out + "/" + name)) plots.emplace_back(name);
  }
  write_file(a.out + "/report.md", (have_runs ? report_markdown(report, plots) : "# Projection report\n") + extra_md);
  std::printf("convoy report: %zu runs -> %s/report.md, report.json%s\n", report["runs"].size(), a.out.c_str(),
              plots.empty() ? "" : (", " + std::to_string(plots.size()) + " plots (PNG and SVG)").c_str());
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand("report", "Scaling-efficiency report of launch/scaling.sh's run folders");
  cmd->add_option("runs", a->runs, "Run folders (one per rank count: DIR/n1 DIR/n2 ...)")->check(CLI::ExistingDirectory);
  cmd->add_option("--out", a->out, "Folder for report.md, report.json and the plots")->required();
  cmd->add_flag("--no-plots", a->no_plots, "Write the report without plots (no matplotlib needed)");
  cmd->add_option("--project", a->project, "Project to a cluster (CLUSTER.yaml, docs/scaling.md) and validate against the runs")
      ->check(CLI::ExistingFile);
  cmd->add_option("--profile", a->profile, "The one-worker profile for --project (convoy bench train --profile --json)")
      ->check(CLI::ExistingFile);
  cmd->callback([a, &action] { action = [a] { return run_report(*a); }; });
}

}  // namespace convoy::trainer
