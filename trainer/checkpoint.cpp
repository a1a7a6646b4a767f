#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "datasets/h5.h"
#include "datasets/sha256.h"

namespace convoy::trainer {
namespace fs = std::filesystem;
using datasets::h5::Handle;

namespace {

constexpr int kVersion = 1;
const char* const kGroups[] = {"params", "buffers", "momentum"};

hid_t h5_type(ops::DType t) { return t == ops::DType::i64 ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT; }
hid_t h5_file_type(ops::DType t) { return t == ops::DType::i64 ? H5T_STD_I64LE : H5T_IEEE_F32LE; }

void hash_entry(datasets::Sha256& sha, const std::string& group, const std::string& name, const ops::Tensor& t) {
  std::string key = group + "/" + name;
  sha.update(key.data(), key.size());
  sha.update(t.data(), t.bytes());
}

std::vector<hsize_t> dims_of(const ops::Shape& s) { return std::vector<hsize_t>(s.begin(), s.end()); }

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  CONVOY_CHECK(fd >= 0, "cannot open " << path << " to flush it to disk");
  int rc = ::fsync(fd);
  ::close(fd);
  CONVOY_CHECK(rc == 0, "fsync of " << path << " failed: the disk may be full or failing");
}

int64_t int_attr(hid_t f, const char* name, const std::string& path) {
  return datasets::h5::read_int_attribute(f, name, path);
}

// Reads one named entry of `group` into a host tensor of the entry's shape and dtype.
ops::Tensor read_entry(hid_t file, const std::string& group, const ops::ArenaEntry& e, const std::string& path) {
  std::string name = group + "/" + e.name;
  CONVOY_CHECK(datasets::h5::has_object(file, group) && datasets::h5::has_object(file, name),
               path << " has no " << name << ": it was not written for this model (" << e.shape.str() << ")");
  std::vector<hsize_t> dims = datasets::h5::dataset_dims(file, name, path);
  CONVOY_CHECK(static_cast<int>(dims.size()) == e.shape.rank() && std::equal(dims.begin(), dims.end(), e.shape.begin()),
               path << ": " << name << " has shape " << ops::Shape(dims.begin(), dims.end()).str()
                    << " but the model's is " << e.shape.str() << " (a different model or class count?)");
  ops::Tensor t = ops::Tensor::zeros_host(e.shape, e.dtype);
  datasets::h5::read_dataset(file, name, h5_type(e.dtype), t.data(), path);
  return t;
}

}  // namespace

CheckpointStore::CheckpointStore(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}

std::vector<std::string> CheckpointStore::list() const {
  std::vector<std::string> files;
  if (!fs::is_directory(dir_)) return files;
  for (const auto& de : fs::directory_iterator(dir_)) {
    std::string n = de.path().filename().string();
    if (n.starts_with("checkpoint-") && n.ends_with(".h5")) files.push_back(de.path().string());
  }
  std::sort(files.rbegin(), files.rend());  // zero-padded step numbers: newest first
  return files;
}

void CheckpointStore::check_writable(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  CONVOY_CHECK(!ec, what << " " << dir << " cannot be created: " << ec.message()
                         << "; nothing was trained: choose another --out");
  const std::string probe = (fs::path(dir) / (".convoy-write-test-" + std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = errno;
  CONVOY_CHECK(fd >= 0, what << " " << dir << " is not writable (" << std::strerror(err)
                             << "): its checkpoints could not be saved; nothing was trained: choose another --out");
  const bool ok = ::write(fd, "convoy", 6) == 6 && ::fsync(fd) == 0;
  const int werr = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  CONVOY_CHECK(ok, what << " " << dir << " does not take writes (" << std::strerror(werr)
                        << "); nothing was trained: choose another --out");
}

uint64_t CheckpointStore::checkpoint_bytes(const ops::Graph& graph) {
  uint64_t bytes = 1 << 20;  // attributes, the config, HDF5's own structures
  for (const ops::ArenaLayout* layout : {&graph.param_layout(), &graph.param_layout(), &graph.buffer_layout()})
    for (const auto& e : layout->entries())  // stored as fp32, or int64 (counters)
      bytes += static_cast<uint64_t>(e.shape.numel()) * (e.dtype == ops::DType::i64 ? 8 : 4) + 4096;
  return bytes;
}

namespace {

// Free bytes for an unprivileged writer on the file system holding `dir`.
uint64_t free_bytes(const std::string& dir) {
  struct statvfs st {};
  CONVOY_CHECK(::statvfs(dir.c_str(), &st) == 0, "cannot query the free space of " << dir << ": " << std::strerror(errno));
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

std::string megabytes(uint64_t bytes) { return std::to_string((bytes + 999999) / 1000000) + " MB"; }

}  // namespace

std::string CheckpointStore::save(const ops::Graph& graph, const ops::Arena& momentum, const TrainingState& s,
                                  const std::string& config_yaml) const {
  fs::create_directories(dir_);
  char name[64];
  std::snprintf(name, sizeof name, "checkpoint-%010lld.h5", static_cast<long long>(s.global_step));
  const std::string final_path = (fs::path(dir_) / name).string(), tmp = final_path + ".tmp";
  // A writer killed mid-save leaves its temporary file; only rank 0 writes, so none is in use now.
  for (const auto& de : fs::directory_iterator(dir_)) {
    const std::string n = de.path().filename().string();
    if (n.starts_with("checkpoint-") && n.ends_with(".h5.tmp")) fs::remove(de.path());
  }
  const uint64_t need = checkpoint_bytes(graph), have = free_bytes(dir_);
  CONVOY_CHECK(have >= need, "not enough space for the checkpoint " << final_path << ": it needs about "
                                                                    << megabytes(need) << " and " << dir_ << " has "
                                                                    << megabytes(have)
                                                                    << " free; the previous checkpoints are intact. "
                                                                       "Free some space, lower checkpoint.keep, or "
                                                                       "train into another --out");
  try {
    write_checkpoint_file(graph, momentum, s, config_yaml, tmp);
    fsync_path(tmp, false);
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    CONVOY_FAIL("cannot write the checkpoint " << final_path << " (" << megabytes(need) << "; " << megabytes(free_bytes(dir_))
                                               << " free in " << dir_ << " now): "
                                               << (dynamic_cast<const Error*>(&e) ? static_cast<const Error&>(e).message()
                                                                                   : std::string(e.what()))
                                               << "; the previous checkpoints are intact");
  }
  fs::rename(tmp, final_path);
  fsync_path(dir_, true);
  auto files = list();
  for (size_t i = static_cast<size_t>(keep_); i < files.size(); ++i) fs::remove(files[i]);
  return final_path;
}

void CheckpointStore::write_checkpoint_file(const ops::Graph& graph, const ops::Arena& momentum, const TrainingState& s,
                                            const std::string& config_yaml, const std::string& tmp) {
  datasets::Sha256 sha;
  {
    Handle f = datasets::h5::create_file(tmp);
    auto write_group = [&](const char* group, const ops::ArenaLayout& layout, const ops::Arena& arena) {
      Handle g(H5Gcreate2(f.get(), group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      CONVOY_CHECK(g.valid(), "cannot create group " << group << " in " << tmp);
      // The checksum runs over names in sorted order: the order HDF5 lists them in when verifying.
      std::vector<std::pair<std::string, ops::Tensor>> items;
      for (size_t i = 0; i < layout.entries().size(); ++i) {
        const ops::ArenaEntry& e = layout.entry(i);
        ops::Tensor host = graph.export_entry(arena, i);
        datasets::h5::write_dataset(g.get(), e.name, h5_file_type(e.dtype), h5_type(e.dtype), dims_of(e.shape),
                                    host.data());
        items.emplace_back(e.name, std::move(host));
      }
      std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [name, host] : items) hash_entry(sha, group, name, host);
    };
    auto& g = const_cast<ops::Graph&>(graph);  // arena accessors are non-const; nothing is modified
    write_group(kGroups[0], graph.param_layout(), g.params());
    write_group(kGroups[1], graph.buffer_layout(), g.buffers());
    write_group(kGroups[2], graph.param_layout(), momentum);
    using namespace datasets::h5;
    write_string_attribute(f.get(), "format", "convoy-checkpoint");
    write_int_attribute(f.get(), "version", kVersion);
    write_string_attribute(f.get(), "model", graph.name());
    write_int_attribute(f.get(), "epoch", s.epoch);
    write_int_attribute(f.get(), "step_in_epoch", s.step_in_epoch);
    write_int_attribute(f.get(), "global_step", s.global_step);
    write_int_attribute(f.get(), "graph_step", static_cast<int64_t>(s.graph_step));
    write_int_attribute(f.get(), "seed", static_cast<int64_t>(s.seed));
    write_int_attribute(f.get(), "loss_scaling", s.loss_scaling ? 1 : 0);
    write_double_array_attribute(f.get(), "loss_scale", {s.loss_scale});
    write_int_attribute(f.get(), "loss_scale_good_steps", s.loss_scale_good_steps);
    write_int_attribute(f.get(), "loss_scale_skipped", s.loss_scale_skipped);
    write_string_attribute(f.get(), "config", config_yaml);
    write_string_attribute(f.get(), "sha256", sha.hex_digest());
    CONVOY_CHECK(H5Fflush(f.get(), H5F_SCOPE_GLOBAL) >= 0, "cannot flush " << tmp << ": is the disk full?");
  }
}

std::optional<std::string> CheckpointStore::newest_valid(const std::function<void(const std::string&)>& warn) const {
  for (const auto& path : list()) {
    try {
      verify_checkpoint(path);
      return path;
    } catch (const Error& e) {
      warn("passing over damaged checkpoint " + path + ": " + e.message());
    }
  }
  return std::nullopt;
}

namespace {

// Opens the file and checks its format; then reads every dataset, in name order per group, and compares
// the checksum with the stored one.
CheckpointContents read_and_verify(const std::string& path, Handle& f) {
  try {
    f = datasets::h5::open_file_readonly(path);
  } catch (const Error&) {
    CONVOY_FAIL(path << " cannot be opened as HDF5: it is truncated or not a convoy checkpoint");
  }
  using namespace datasets::h5;
  CONVOY_CHECK(has_attribute(f.get(), "format") && read_string_attribute(f.get(), "format", path) == "convoy-checkpoint",
               path << " is not a convoy checkpoint (no format = convoy-checkpoint attribute)"
                    << (has_object(f.get(), "params") ? "; it has /params, as a weights file from "
                                                        "tools/torchvision_to_h5.py has: evaluate it with "
                                                        "`convoy eval --weights`, or train from it with "
                                                        "model.init_from"
                                                      : ""));
  const int64_t version = int_attr(f.get(), "version", path);
  CONVOY_CHECK(version == kVersion,
               path << " is checkpoint format version " << version << "; this convoy reads version " << kVersion);
  const uint64_t file_bytes = fs::file_size(path);
  datasets::Sha256 sha;
  for (const char* group : kGroups) {
    CONVOY_CHECK(has_object(f.get(), group), path << " has no /" << group << " group: the file is damaged");
    Handle g(H5Gopen2(f.get(), group, H5P_DEFAULT));
    H5G_info_t info;
    CONVOY_CHECK(g.valid() && H5Gget_info(g.get(), &info) >= 0, path << ": cannot read /" << group);
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      char buf[1024];
      ssize_t len = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, sizeof buf, H5P_DEFAULT);
      CONVOY_CHECK(len > 0 && static_cast<size_t>(len) < sizeof buf, path << ": cannot list /" << group);
      const std::string name(buf, static_cast<size_t>(len));
      std::vector<hsize_t> dims = dataset_dims(g.get(), name, path);
      Handle d = open_dataset(g.get(), name, path);
      Handle type(H5Dget_type(d.get()));
      const bool integer = H5Tget_class(type.get()) == H5T_INTEGER;
      // The shape comes from the file: before allocating, its size must fit in 64 bits and in the file
      // (convoy writes every dataset contiguous and uncompressed). fuzz_checkpoint found 2^58 x 84.
      uint64_t bytes = integer ? 8 : 4;
      for (hsize_t dim : dims)
        CONVOY_CHECK(!__builtin_mul_overflow(bytes, dim, &bytes) && bytes <= file_bytes,
                     path << ": /" << group << "/" << name << " claims a shape of more than the file's "
                          << file_bytes << " bytes: the file is damaged");
      ops::Tensor t = ops::Tensor::zeros_host(ops::Shape(dims.begin(), dims.end()), integer ? ops::DType::i64
                                                                                            : ops::DType::f32);
      CONVOY_CHECK(H5Dread(d.get(), integer ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           t.data()) >= 0,
                   path << ": /" << group << "/" << name << " cannot be read: the file is damaged");
      hash_entry(sha, group, name, t);
    }
  }
  CONVOY_CHECK(has_attribute(f.get(), "sha256"), path << " has no sha256 attribute: the file is incomplete");
  const std::string stored = read_string_attribute(f.get(), "sha256", path), actual = sha.hex_digest();
  CONVOY_CHECK(stored == actual, path << " is damaged: its data hashes to " << actual.substr(0, 16)
                                      << "..., not the stored " << stored.substr(0, 16) << "...");
  CheckpointContents c;
  c.path = path;
  c.model = read_string_attribute(f.get(), "model", path);
  c.config_yaml = read_string_attribute(f.get(), "config", path);
  c.state.epoch = int_attr(f.get(), "epoch", path);
  c.state.step_in_epoch = int_attr(f.get(), "step_in_epoch", path);
  c.state.global_step = int_attr(f.get(), "global_step", path);
  c.state.graph_step = static_cast<uint64_t>(int_attr(f.get(), "graph_step", path));
  c.state.seed = static_cast<uint64_t>(int_attr(f.get(), "seed", path));
  c.state.loss_scale = read_double_array_attribute(f.get(), "loss_scale", path).at(0);
  c.state.loss_scale_good_steps = int_attr(f.get(), "loss_scale_good_steps", path);
  // Checkpoints written before mixed precision have neither: they come from fp32 runs.
  if (has_attribute(f.get(), "loss_scaling")) c.state.loss_scaling = int_attr(f.get(), "loss_scaling", path) != 0;
  if (has_attribute(f.get(), "loss_scale_skipped"))
    c.state.loss_scale_skipped = int_attr(f.get(), "loss_scale_skipped", path);
  return c;
}

// Visits /params, /momentum (when given) and /buffers in the graph's layout order: the order the contained
// child reads and ships the tensors in, and the order this process imports them in.
template <typename F>  // f(group, arena, index, entry)
void for_each_entry(ops::Graph& graph, const ops::Arena* momentum, F f) {
  const auto& params = graph.param_layout();
  for (size_t i = 0; i < params.entries().size(); ++i) {
    f("params", graph.params(), i, params.entry(i));
    if (momentum) f("momentum", *momentum, i, params.entry(i));
  }
  const auto& buffers = graph.buffer_layout();
  for (size_t i = 0; i < buffers.entries().size(); ++i) f("buffers", graph.buffers(), i, buffers.entry(i));
}

// In the child: reads every entry the graph has (checking name and shape) and appends its bytes.
void ship_groups(hid_t f, const std::string& path, ops::Graph& graph, const ops::Arena* momentum,
                 datasets::h5::Bytes& out) {
  for_each_entry(graph, momentum, [&](const char* group, const ops::Arena&, size_t, const ops::ArenaEntry& e) {
    const ops::Tensor t = read_entry(f, group, e, path);
    out.put_raw(t.data(), t.bytes());
  });
}

// In this process: imports what ship_groups sent.
void import_groups(datasets::h5::Bytes& in, ops::Graph& graph, const ops::Arena* momentum) {
  for_each_entry(graph, momentum, [&](const char*, const ops::Arena& arena, size_t i, const ops::ArenaEntry& e) {
    ops::Tensor t = ops::Tensor::zeros_host(e.shape, e.dtype);
    in.get_raw(t.data(), t.bytes());
    graph.import_entry(arena, i, std::move(t));
  });
}

void put_contents(datasets::h5::Bytes& out, const CheckpointContents& c) {
  out.put(c.state), out.put(c.config_yaml), out.put(c.model), out.put(c.path);
}

CheckpointContents get_contents(datasets::h5::Bytes& in) {
  CheckpointContents c;
  in.get(c.state), in.get(c.config_yaml), in.get(c.model), in.get(c.path);
  return c;
}

Handle open_weights(const std::string& path) {
  try {
    return datasets::h5::open_file_readonly(path);
  } catch (const Error&) {
    CONVOY_FAIL(path << " cannot be opened as HDF5 (model.init_from): check the path");
  }
}

// The child's part of load_checkpoint: verifies, checks the model, ships the state and the tensors.
void ship_checkpoint(const std::string& path, ops::Graph& graph, const ops::Arena* momentum,
                     datasets::h5::Bytes& out) {
  Handle f;
  const CheckpointContents c = read_and_verify(path, f);
  CONVOY_CHECK(c.model == graph.name(), path << " holds a " << c.model << ", not a " << graph.name());
  put_contents(out, c);
  ship_groups(f.get(), path, graph, momentum, out);
}

}  // namespace

// Checkpoints and weight files may come from anywhere (a copy, a download): HDF5 reads them only in a
// child process (datasets::h5::contain), which turns its crashes and endless loops into errors and
// ships back what it read. This process never runs HDF5 on them, so HDF5's memory errors on a damaged
// file (which differ from one process to the next) cannot reach it.
CheckpointContents verify_checkpoint(const std::string& path) {
  datasets::h5::Bytes in(datasets::h5::contain(path, [&] {
    Handle f;
    datasets::h5::Bytes out;
    put_contents(out, read_and_verify(path, f));
    return out.take();
  }));
  return get_contents(in);
}

CheckpointContents load_checkpoint(const std::string& path, ops::Graph& graph, const ops::Arena* momentum) {
  datasets::h5::Bytes in(datasets::h5::contain(path, [&] {
    datasets::h5::Bytes out;
    ship_checkpoint(path, graph, momentum, out);
    return out.take();
  }));
  CheckpointContents c = get_contents(in);
  import_groups(in, graph, momentum);
  return c;
}

void load_weights(const std::string& path, ops::Graph& graph) {
  datasets::h5::Bytes in(datasets::h5::contain(path, [&] {
    datasets::h5::Bytes out;
    ship_groups(open_weights(path).get(), path, graph, nullptr, out);
    return out.take();
  }));
  import_groups(in, graph, nullptr);
}

void load_any_weights(const std::string& path, ops::Graph& graph) {
  datasets::h5::Bytes in(datasets::h5::contain(path, [&] {
    Handle f;
    try {
      f = datasets::h5::open_file_readonly(path);
    } catch (const Error&) {
      CONVOY_FAIL(path << " cannot be opened as HDF5: check the path");
    }
    datasets::h5::Bytes out;
    const bool checkpoint = datasets::h5::has_attribute(f.get(), "format");
    f.reset();
    out.put(checkpoint);
    if (checkpoint)
      ship_checkpoint(path, graph, nullptr, out);
    else
      ship_groups(open_weights(path).get(), path, graph, nullptr, out);
    return out.take();
  }));
  bool checkpoint = false;
  in.get(checkpoint);
  if (checkpoint) (void)get_contents(in);
  import_groups(in, graph, nullptr);
}

}  // namespace convoy::trainer
