// The convoy subcommands; each registers itself on the CLI11 app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace convoy::trainer {

// A subcommand's action: runs after parsing, returns the process exit code.
using Action = std::function<int()>;

void add_models_command(CLI::App& app, Action& action);
void add_train_commands(CLI::App& app, Action& action);  // train, eval
void add_bench_train_command(CLI::App& bench, Action& action);
void add_convert_command(CLI::App& app, Action& action);
void add_inspect_command(CLI::App& app, Action& action);
void add_bench_data_command(CLI::App& bench, Action& action);
void add_bench_peak_command(CLI::App& bench, Action& action);
void add_bench_allreduce_command(CLI::App& bench, Action& action);
void add_report_command(CLI::App& app, Action& action);

}  // namespace convoy::trainer
