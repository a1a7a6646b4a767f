// `convoy models`: every model with its parameter count and compute at its default input size.
#include <cstdio>

#include "ops/models/zoo.h"
#include "trainer/commands.h"

namespace convoy::trainer {
namespace {

std::string with_commas(int64_t v) {
  const std::string digits = std::to_string(v);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

}  // namespace

void add_models_command(CLI::App& app, Action& action) {
  auto* cmd = app.add_subcommand("models", "List the models: parameters and GFLOPs per image at the default size");
  cmd->callback([&action] {
    action = [] {
      std::printf("%-12s %14s %9s %9s  %-12s %s\n", "model", "parameters", "GMACs", "GFLOPs", "input", "description");
      auto row = [](const ops::ModelInfo& m, const std::string& label, const ops::ModelOptions& o,
                    const std::string& description) {
        auto g = ops::make_model(m.name, o);
        g->setup(nullptr, ops::Shape{1, m.image_size, m.image_size, m.channels});
        double macs = static_cast<double>(g->macs());
        std::string input = std::to_string(m.channels) + "x" + std::to_string(m.image_size) + "x" +
                            std::to_string(m.image_size);
        std::printf("%-12s %14s %9.4g %9.4g  %-12s %s\n", label.c_str(), with_commas(g->num_params()).c_str(),
                    macs / 1e9, 2 * macs / 1e9, input.c_str(), description.c_str());
      };
      for (const auto& m : ops::model_infos()) {
        row(m, m.name, {}, m.description);
        if (m.name == "googlenet") {  // the variant with its auxiliary classifiers (training only)
          ops::ModelOptions aux;
          aux.aux_logits = true;
          row(m, "  +aux", aux, "with model.aux_logits: true (the heads run in training only)");
        }
      }
      std::printf("\nGMACs: multiply-accumulates of convolutions and linear layers per image (what papers usually\n"
                  "call FLOPs, e.g. 4.1 for ResNet-50); GFLOPs = 2 x GMACs. Classes: the model's default.\n");
      return 0;
    };
  });
}

}  // namespace convoy::trainer
