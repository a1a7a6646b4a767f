// Test fixtures for the trainer: a small converted Fashion-MNIST subset (from Debian's
// dataset-fashion-mnist, which tools/setup.sh installs) and configs that train on it in seconds.
#pragma once

#include <string>

namespace convoy::test {

// Converts the first n_train training and n_val test images into shards (once per process and size)
// and returns the folder of shards.
std::string fashion_subset(int n_train, int n_val);

// A fresh temporary directory (removed at process exit is not attempted: ctest's temp space is scratch).
std::string temp_dir(const std::string& name);

// A YAML config training lenet5 on `data_dir`, with extra YAML lines appended (they override keys only
// when given through --set; here they are written as separate sections, so pass whole sections).
std::string small_config(const std::string& data_dir, const std::string& train_extra = "");

}  // namespace convoy::test
