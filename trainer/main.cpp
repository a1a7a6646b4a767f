// The convoy binary: one executable, subcommands. Library code throws convoy::Error; this is the one
// place that turns errors into exit codes.
#include <cstdio>

#include "common/error.h"
#include "common/log.h"
#include "common/stop.h"
#include "trainer/commands.h"

int main(int argc, char** argv) {
  convoy::take_stop_signals_synchronously();  // before any thread starts: see common/stop.h
  CLI::App app{"convoy: data-parallel training of convolutional networks (oneDNN + MPI on CPUs)"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  convoy::trainer::Action action;
  convoy::trainer::add_models_command(app, action);
  convoy::trainer::add_train_commands(app, action);
  convoy::trainer::add_convert_command(app, action);
  convoy::trainer::add_inspect_command(app, action);
  convoy::trainer::add_report_command(app, action);
  CLI::App* bench = app.add_subcommand("bench", "Measure speed: training steps, data pipeline, all-reduce, the machine's peak");
  bench->require_subcommand(1);
  convoy::trainer::add_bench_train_command(*bench, action);
  convoy::trainer::add_bench_data_command(*bench, action);
  convoy::trainer::add_bench_peak_command(*bench, action);
  convoy::trainer::add_bench_allreduce_command(*bench, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  convoy::set_up_logging(-1, verbose);
  try {
    return action ? action() : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convoy: error: %s\n", e.what());
    convoy::exit_after_error();
  }
}
