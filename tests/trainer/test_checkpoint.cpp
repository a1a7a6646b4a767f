// Checkpoints: exact round trips, damage detection, pruning, and resumption that is bit-identical to an
// uninterrupted run in deterministic mode.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <hdf5.h>

#include "datasets/h5.h"
#include "tests/trainer/fixtures.h"
#include "trainer/checkpoint.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {
namespace fs = std::filesystem;

std::string data_dir() { return test::fashion_subset(256, 64); }

Config small(const std::vector<std::string>& overrides = {}) {
  return parse_config(test::small_config(data_dir()), "small.yaml", overrides);
}

// Every parameter, buffer and (unless told otherwise) momentum value of the trainer, as raw bytes (host
// copies: the trainer may run on a device the host cannot read).
std::vector<std::string> state_bytes(Trainer& t, bool with_momentum = true) {
  std::vector<std::string> out;
  ops::Graph& g = t.graph();
  auto add = [&](const ops::Arena& arena, size_t i) {
    ops::Tensor h = g.export_entry(arena, i);
    out.emplace_back(static_cast<const char*>(h.data()), h.bytes());
  };
  for (size_t i = 0; i < g.param_layout().entries().size(); ++i) add(g.params(), i);
  for (size_t i = 0; i < g.buffer_layout().entries().size(); ++i) add(g.buffers(), i);
  if (with_momentum)
    for (size_t i = 0; i < g.param_layout().entries().size(); ++i) add(t.optimizer().momentum(), i);
  return out;
}

TEST(Checkpoint, RoundTripIsExact) {
  std::string dir = test::temp_dir("roundtrip");
  Config c = small({"train.epochs=1"});
  Trainer a(c, dir + "/a");
  ASSERT_EQ(a.train(""), 0);
  auto files = a.checkpoints().list();
  ASSERT_EQ(files.size(), 1u);
  CheckpointContents cc = verify_checkpoint(files[0]);
  EXPECT_EQ(cc.state.epoch, 1);
  EXPECT_EQ(cc.state.step_in_epoch, 0);
  EXPECT_EQ(cc.state.global_step, 8);  // 256 / 32
  EXPECT_EQ(cc.model, "lenet5");
  EXPECT_EQ(cc.config_yaml, c.to_yaml());

  Trainer b(c, dir + "/b");  // fresh weights (same seed: identical init, so change them first)
  b.graph().write("fc3.bias", ops::Tensor::zeros_host(ops::Shape{10}));
  EXPECT_NE(state_bytes(a), state_bytes(b));
  // The checkpoint holds the momentum too: loading it as a resume does brings everything back.
  load_checkpoint(files[0], b.graph(), &b.optimizer().momentum());
  EXPECT_EQ(state_bytes(a), state_bytes(b));
  // load_weights_from (convoy eval) takes weights and buffers only: the momentum stays fresh (zero).
  Trainer e(c, dir + "/e");
  e.load_weights_from(files[0]);
  EXPECT_NE(state_bytes(a), state_bytes(e));
}

TEST(Checkpoint, DamagedAndTruncatedFilesAreRecognizedAndPassedOver) {
  std::string dir = test::temp_dir("damage");
  Config c = small({"train.epochs=2"});
  Trainer t(c, dir);
  ASSERT_EQ(t.train(""), 0);
  auto files = t.checkpoints().list();  // newest first: after epoch 2, after epoch 1
  ASSERT_EQ(files.size(), 2u);

  // Flip one byte inside the data of /params/fc1.weight.
  haddr_t offset;
  {
    hid_t f = H5Fopen(files[0].c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "params/fc1.weight", H5P_DEFAULT);
    offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_NE(offset, HADDR_UNDEF);
  {
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset + 1001));
    char ch;
    f.read(&ch, 1);
    ch = static_cast<char>(ch ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(offset + 1001));
    f.write(&ch, 1);
  }
  try {
    verify_checkpoint(files[0]);
    FAIL() << "a flipped byte went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(files[0]), std::string::npos) << e.message();
  }
  std::vector<std::string> warnings;
  auto chosen = t.checkpoints().newest_valid([&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(chosen);
  EXPECT_EQ(*chosen, files[1]);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("passing over damaged checkpoint " + files[0]), std::string::npos) << warnings[0];

  // Truncate the older one too: nothing valid is left.
  fs::resize_file(files[1], fs::file_size(files[1]) / 3);
  EXPECT_THROW(verify_checkpoint(files[1]), Error);
  EXPECT_FALSE(t.checkpoints().newest_valid([](const std::string&) {}));
}

// A dataset whose shape claims more than the file holds (fuzz_checkpoint found 2^58 + 1 x 84, whose
// element count overflows int64: UB before the fix) is an error naming the file and the dataset, before
// anything is allocated. Chunked storage lets such a dataset exist in a small file.
TEST(Checkpoint, AShapeLargerThanTheFileIsAnError) {
  const std::string path = test::temp_dir("huge") + "/checkpoint-0000000001.h5";
  for (hsize_t rows : {(hsize_t{1} << 58) + 1, hsize_t{1} << 30}) {
    {
      datasets::h5::Handle file = datasets::h5::create_file(path);
      const hid_t f = file.get();
      datasets::h5::write_string_attribute(f, "format", "convoy-checkpoint");
      datasets::h5::write_int_attribute(f, "version", 1);
      hid_t g = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      const hsize_t dims[2] = {rows, 84}, chunk[2] = {1, 84};
      hid_t space = H5Screate_simple(2, dims, nullptr), dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_chunk(dcpl, 2, chunk);
      hid_t d = H5Dcreate2(g, "fc1.weight", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      ASSERT_GE(d, 0);
      H5Dclose(d);
      H5Pclose(dcpl), H5Sclose(space), H5Gclose(g);
    }
    try {
      verify_checkpoint(path);
      FAIL() << "a shape of " << rows << " x 84 was accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(path + ": /params/fc1.weight claims a shape of more than the file's"), std::string::npos)
          << e.message();
    }
  }
}

TEST(Checkpoint, OnlyTheNewestKAreKept) {
  std::string dir = test::temp_dir("keep");
  Config c = small({"train.epochs=3", "checkpoint.keep=2"});
  Trainer t(c, dir);
  ASSERT_EQ(t.train(""), 0);
  auto files = t.checkpoints().list();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_NE(files[0].find("checkpoint-0000000024.h5"), std::string::npos) << files[0];
  EXPECT_NE(files[1].find("checkpoint-0000000016.h5"), std::string::npos) << files[1];
  for (const auto& de : fs::directory_iterator(dir + "/checkpoints"))
    EXPECT_FALSE(de.path().string().ends_with(".tmp")) << "a temporary file was left: " << de.path();
}

// Deterministic mode (one thread): two epochs straight equal one epoch and a bit, a stop, a resume from
// the checkpoint in a new Trainer (which starts its epoch at the checkpoint's batch without replaying
// the ones before), and the rest — bit for bit, on every device.
class ResumeOnDevice : public ::testing::TestWithParam<std::string> {};

TEST_P(ResumeOnDevice, IsBitIdenticalToAnUninterruptedRun) {
  std::string dir = test::temp_dir("resume-" + GetParam());
  Config c = small({"train.epochs=2", "train.deterministic=true", "model.name=resnet8", "train.device=" + GetParam()});
  std::vector<std::string> straight;
  {
    Trainer t(c, dir + "/straight");
    ASSERT_EQ(t.train(""), 0);
    straight = state_bytes(t);
  }
  for (int64_t stop : {8, 11}) {  // at the epoch boundary, and mid-epoch
    std::string run = dir + "/stopped-at-" + std::to_string(stop);
    {
      Trainer t(c, run);
      t.set_stop_at_step(stop);
      ASSERT_EQ(t.train(""), kExitPreempted);
    }
    Trainer t(c, run);
    ASSERT_EQ(t.train("auto"), 0);
    EXPECT_TRUE(state_bytes(t) == straight) << "resuming at step " << stop << " changed the result";
  }
}

// The same with 2 accumulated micro-batches per step and emulated fp16, whose loss scaler (with a short
// window, so that its scale moves) resumes from the checkpoint exactly.
TEST(Checkpoint, ResumeWithAccumulationAndLossScalingIsBitIdentical) {
  std::string dir = test::temp_dir("resume-accumulate");
  Config c = small({"train.epochs=2", "train.deterministic=true", "model.name=resnet8", "train.accumulate_steps=2",
                    "train.precision=fp16", "train.loss_scale_window=3"});
  std::vector<std::string> straight;
  TrainingState end;
  {
    Trainer t(c, dir + "/straight");
    ASSERT_EQ(t.train(""), 0);
    straight = state_bytes(t);
    end = verify_checkpoint(t.checkpoints().list().at(0)).state;  // the newest: after the last epoch
  }
  // The scale moved both ways (doubled every 3 clean steps, halved on overflows), so resuming it matters.
  EXPECT_TRUE(end.loss_scaling);
  EXPECT_GT(end.loss_scale_skipped, 0);
  EXPECT_NE(end.loss_scale, 65536.0);
  for (int64_t stop : {8, 5}) {  // at the epoch boundary (8 steps of 2 micro-batches), and mid-epoch
    std::string run = dir + "/stopped-at-" + std::to_string(stop);
    {
      Trainer t(c, run);
      t.set_stop_at_step(stop);
      ASSERT_EQ(t.train(""), kExitPreempted);
    }
    Trainer t(c, run);
    ASSERT_EQ(t.train("auto"), 0);
    EXPECT_TRUE(state_bytes(t) == straight) << "resuming at step " << stop << " changed the result";
    const TrainingState s = verify_checkpoint(t.checkpoints().list().at(0)).state;
    EXPECT_EQ(s.loss_scale, end.loss_scale) << "resuming at step " << stop;
    EXPECT_EQ(s.loss_scale_good_steps, end.loss_scale_good_steps);
    EXPECT_EQ(s.loss_scale_skipped, end.loss_scale_skipped);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, ResumeOnDevice, ::testing::Values("cpu", "cpu-strict"),
                         [](const auto& info) { return info.param == "cpu" ? std::string("cpu") : "cpu_strict"; });

TEST(Checkpoint, InitFromLoadsTorchvisionNamedWeights) {
  std::string dir = test::temp_dir("init-from");
  Config c = small({"train.epochs=1"});
  Trainer a(c, dir + "/a");
  ASSERT_EQ(a.train(""), 0);
  std::string file = a.checkpoints().list().at(0);
  Trainer b(parse_config(test::small_config(data_dir()), "small.yaml", {"model.init_from=" + file}), dir + "/b");
  EXPECT_EQ(state_bytes(a, false), state_bytes(b, false));  // weights and buffers; the optimizer starts fresh
  // A model whose shapes differ is refused with the name of the first mismatch.
  try {
    Trainer bad(parse_config(test::small_config(data_dir()), "small.yaml",
                             {"model.init_from=" + file, "model.num_classes=12"}),
                dir + "/bad");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("fc3.weight has shape (10, 84) but the model's is (12, 84)"), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace convoy::trainer
