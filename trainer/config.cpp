#include "trainer/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>

#include "common/error.h"
#include "ops/models/zoo.h"

namespace convoy::trainer {
namespace {

// Walks one YAML mapping section, reading known keys into fields and remembering them, so that
// every key left over can be reported as unknown.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& source, const std::set<std::string>& overridden)
      : node_(node), path_(std::move(path)), source_(source), overridden_(overridden) {
    if (node_ && !node_.IsNull() && !node_.IsMap())
      fail(node_, path_ + " must be a mapping of keys to values");
  }

  template <typename T>
  void read(const std::string& key, T& field) {
    seen_.insert(key);
    if (!node_ || !node_.IsMap()) return;
    YAML::Node v = node_[key];
    if (!v || v.IsNull()) return;
    try {
      field = v.as<T>();
    } catch (const YAML::Exception&) {
      fail(v, where(key) + " must be " + type_name<T>() + ", got '" + describe(v) + "'");
    }
  }

  Section section(const std::string& key) {
    seen_.insert(key);
    return Section(node_ && node_.IsMap() ? node_[key] : YAML::Node(), where(key), source_, overridden_);
  }

  void reject_unknown() const {
    if (!node_ || !node_.IsMap()) return;
    std::string known;
    for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (!it->first.IsScalar()) fail(it->first, "a key in " + (path_.empty() ? std::string("the config") : path_) +
                                                     " must be a plain name, not a list or a mapping");
      std::string key = it->first.as<std::string>();
      if (seen_.count(key)) continue;
      std::string full = where(key);
      if (overridden_.count(full))
        CONVOY_FAIL("--set " << full << ": there is no key '" << full << "' (keys of " << path_ << ": " << known << ")");
      fail(it->first, "unknown key '" + full + "' (keys of " + path_ + ": " + known + ")");
    }
  }

  std::string where(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& what) const {
    if (at.Mark().line >= 0) CONVOY_FAIL(source_ << ":" << at.Mark().line + 1 << ": " << what);
    CONVOY_FAIL(source_ << ": " << what);
  }

 private:
  template <typename T>
  static std::string type_name() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else return "a list of numbers";
  }
  static std::string describe(const YAML::Node& v) {
    if (v.IsScalar()) return v.Scalar();
    std::ostringstream os;
    os << v;
    return os.str();
  }

  YAML::Node node_;
  std::string path_;
  const std::string& source_;
  const std::set<std::string>& overridden_;
  std::set<std::string> seen_;
};

// Applies "a.b.c=value" to the tree; the value is parsed as YAML (numbers, booleans, lists).
void apply_override(YAML::Node& root, const std::string& assignment, std::set<std::string>& overridden) {
  auto eq = assignment.find('=');
  CONVOY_CHECK(eq != std::string::npos && eq > 0,
               "--set " << assignment << ": expected key=value, for example --set train.base_lr=0.2");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) {
    CONVOY_CHECK(!p.empty(), "--set " << assignment << ": the key has an empty part");
    parts.push_back(p);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    CONVOY_FAIL("--set " << assignment << ": the value is not valid YAML (" << e.msg << ")");
  }
  // yaml-cpp nodes are handles: walk down by reassigning a handle, creating maps on the way.
  std::function<void(YAML::Node, size_t)> set = [&](YAML::Node node, size_t i) {
    if (i + 1 == parts.size()) {
      node[parts[i]] = parsed;
      return;
    }
    if (!node[parts[i]] || !node[parts[i]].IsMap()) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    set(node[parts[i]], i + 1);
  };
  set(root, 0);
  overridden.insert(key);
}

// Every key of the config, once, in order: parsing (Reader) and the resolved YAML (Emitter) both walk
// this list, so a new field is added in one line here plus its default and check.
template <typename C, typename V>
void visit(C& c, V& v) {
  v.section("model");
  v.field("name", c.model.name);
  v.field("num_classes", c.model.num_classes);
  v.field("in_channels", c.model.in_channels);
  v.field("zero_gamma", c.model.zero_gamma);
  v.field("init_from", c.model.init_from);
  v.field("sync_bn", c.model.sync_bn);
  v.field("width", c.model.width);
  v.field("stem_stride", c.model.stem_stride);
  v.field("aux_logits", c.model.aux_logits);
  v.section("data");
  v.field("dir", c.data.dir);
  v.field("train_split", c.data.train_split);
  v.field("val_split", c.data.val_split);
  v.field("image_size", c.data.image_size);
  v.field("eval_resize", c.data.eval_resize);
  v.field("threads", c.data.threads);
  v.field("prefetch", c.data.prefetch);
  v.field("shuffle_window", c.data.shuffle_window);
  v.field("flip", c.data.flip);
  v.field("raw_pad", c.data.raw_pad);
  v.field("resize_raw", c.data.resize_raw);
  v.field("jitter", c.data.jitter);
  v.field("lighting", c.data.lighting);
  v.field("drop_last", c.data.drop_last);
  v.field("on_error", c.data.on_error);
  v.section("train");
  v.field("epochs", c.train.epochs);
  v.field("batch_size", c.train.batch_size);
  v.field("base_lr", c.train.base_lr);
  v.field("lr_reference_batch", c.train.lr_reference_batch);
  v.field("warmup_epochs", c.train.warmup_epochs);
  v.field("schedule", c.train.schedule);
  v.field("milestones", c.train.milestones);
  v.field("lr_decay", c.train.lr_decay);
  v.field("momentum", c.train.momentum);
  v.field("nesterov", c.train.nesterov);
  v.field("weight_decay", c.train.weight_decay);
  v.field("no_bias_decay", c.train.no_bias_decay);
  v.field("label_smoothing", c.train.label_smoothing);
  v.field("mixup_alpha", c.train.mixup_alpha);
  v.field("teacher", c.train.teacher);
  v.field("teacher_model", c.train.teacher_model);
  v.field("distill_temperature", c.train.distill_temperature);
  v.field("precision", c.train.precision);
  v.field("loss_scale_init", c.train.loss_scale_init);
  v.field("loss_scale_window", c.train.loss_scale_window);
  v.field("accumulate_steps", c.train.accumulate_steps);
  v.field("optimizer", c.train.optimizer);
  v.field("lars_trust", c.train.lars_trust);
  v.field("device", c.train.device);
  v.field("deterministic", c.train.deterministic);
  v.field("tf32", c.train.tf32);
  v.field("seed", c.train.seed);
  v.field("threads", c.train.threads);
  v.section("eval");
  v.field("every_epochs", c.eval.every_epochs);
  v.field("flip", c.eval.flip);
  v.section("checkpoint");
  v.field("every_epochs", c.checkpoint.every_epochs);
  v.field("every_steps", c.checkpoint.every_steps);
  v.field("keep", c.checkpoint.keep);
  v.section("comm");
  v.field("timeout_s", c.comm.timeout_s);
  v.field("bucket_mb", c.comm.bucket_mb);
  v.field("first_bucket_mb", c.comm.first_bucket_mb);
  v.field("wire", c.comm.wire);
  v.field("backend", c.comm.backend);
  v.field("check", c.comm.check);
  v.field("algorithm", c.comm.algorithm);
  v.field("verify_every", c.comm.verify_every);
  v.section("log");
  v.field("interval", c.log.interval);
  v.end();
}

class Reader {
 public:
  Reader(const YAML::Node& root, const std::string& source, const std::set<std::string>& overridden)
      : top_(root, "", source, overridden) {}
  void section(const char* name) {
    if (current_) current_->reject_unknown();
    current_.emplace(top_.section(name));
  }
  template <typename T>
  void field(const char* key, T& value) {
    current_->read(key, value);
  }
  void end() {
    if (current_) current_->reject_unknown();
    top_.reject_unknown();
  }

 private:
  Section top_;
  std::optional<Section> current_;
};

class Emitter {
 public:
  Emitter() { e_ << YAML::BeginMap; }
  void section(const char* name) {
    if (open_) e_ << YAML::EndMap;
    e_ << YAML::Key << name << YAML::Value << YAML::BeginMap;
    open_ = true;
  }
  template <typename T>
  void field(const char* key, const T& value) {
    e_ << YAML::Key << key << YAML::Value;
    if constexpr (std::is_same_v<T, std::vector<double>>)
      e_ << YAML::Flow << value;
    else
      e_ << value;
  }
  void end() {
    if (open_) e_ << YAML::EndMap;
    e_ << YAML::EndMap;
  }
  std::string yaml() const { return std::string(e_.c_str()) + "\n"; }

 private:
  YAML::Emitter e_;
  bool open_ = false;
};

template <typename T>
void check_range(bool ok, const Config& c, const std::string& key, const T& value, const std::string& rule) {
  if (!ok) CONVOY_FAIL(c.source << ": " << key << " " << rule << ", got " << value);
}

void validate(const Config& c) {
  // model
  try {
    ops::model_info(c.model.name);
  } catch (const Error& e) {
    CONVOY_FAIL(c.source << ": model.name: " << e.message());
  }
  check_range(c.model.num_classes >= 0, c, "model.num_classes", c.model.num_classes, "must not be negative");
  check_range(c.model.in_channels >= 0, c, "model.in_channels", c.model.in_channels, "must not be negative");
  if (!c.model.init_from.empty())
    check_range(std::filesystem::is_regular_file(c.model.init_from), c, "model.init_from", c.model.init_from,
                "must name an existing HDF5 file");
  // data
  check_range(!c.data.dir.empty(), c, "data.dir", "''", "must name the folder of converted shards");
  check_range(std::filesystem::is_directory(c.data.dir), c, "data.dir", "'" + c.data.dir + "'",
              "must be an existing folder of converted shards (convoy convert ...)");
  check_range(std::filesystem::is_regular_file(std::filesystem::path(c.data.dir) / "index.json"), c, "data.dir",
              "'" + c.data.dir + "'", "must hold an index.json (convert the data with convoy convert first)");
  check_range(c.data.image_size > 0, c, "data.image_size", c.data.image_size, "must be positive");
  check_range(c.data.eval_resize >= c.data.image_size, c, "data.eval_resize", c.data.eval_resize,
              "must be at least data.image_size");
  check_range(c.data.threads >= 0, c, "data.threads", c.data.threads, "must not be negative");
  check_range(c.data.prefetch >= 2, c, "data.prefetch", c.data.prefetch, "must be at least 2");
  check_range(c.data.shuffle_window >= 0, c, "data.shuffle_window", c.data.shuffle_window, "must not be negative");
  check_range(c.data.flip >= 0 && c.data.flip <= 1, c, "data.flip", c.data.flip, "must be a probability in [0, 1]");
  check_range(c.data.raw_pad >= 0, c, "data.raw_pad", c.data.raw_pad, "must not be negative");
  check_range(c.data.jitter >= 0 && c.data.jitter < 1, c, "data.jitter", c.data.jitter, "must be in [0, 1)");
  check_range(c.data.lighting >= 0, c, "data.lighting", c.data.lighting, "must not be negative");
  check_range(c.data.on_error == "fail" || c.data.on_error == "skip", c, "data.on_error", "'" + c.data.on_error + "'",
              "must be fail (stop at a damaged record, naming it) or skip (replace it and count it)");
  // train
  const TrainConfig& t = c.train;
  check_range(t.epochs > 0, c, "train.epochs", t.epochs, "must be positive");
  check_range(t.batch_size > 0, c, "train.batch_size", t.batch_size, "must be positive");
  check_range(t.base_lr > 0, c, "train.base_lr", t.base_lr, "must be positive");
  check_range(t.lr_reference_batch > 0, c, "train.lr_reference_batch", t.lr_reference_batch, "must be positive");
  check_range(t.warmup_epochs >= 0 && t.warmup_epochs <= static_cast<double>(t.epochs), c, "train.warmup_epochs",
              t.warmup_epochs, "must be in [0, train.epochs]");
  check_range(t.schedule == "step" || t.schedule == "cosine", c, "train.schedule", "'" + t.schedule + "'",
              "must be step or cosine");
  // Milestones past the last epoch are never reached (as in PyTorch's MultiStepLR), so the defaults
  // (30, 60, 80 of 90) stay valid for shorter runs.
  for (size_t i = 0; t.schedule == "step" && i < t.milestones.size(); ++i) {
    check_range(t.milestones[i] > 0, c, "train.milestones", t.milestones[i], "must be positive");
    if (i) check_range(t.milestones[i] > t.milestones[i - 1], c, "train.milestones", t.milestones[i],
                       "must increase");
  }
  check_range(t.lr_decay > 0 && t.lr_decay <= 1, c, "train.lr_decay", t.lr_decay, "must be in (0, 1]");
  check_range(t.momentum >= 0 && t.momentum < 1, c, "train.momentum", t.momentum, "must be in [0, 1)");
  check_range(t.weight_decay >= 0, c, "train.weight_decay", t.weight_decay, "must not be negative");
  check_range(t.label_smoothing >= 0 && t.label_smoothing < 1, c, "train.label_smoothing", t.label_smoothing,
              "must be in [0, 1)");
  check_range(t.mixup_alpha >= 0 && t.mixup_alpha <= 100, c, "train.mixup_alpha", t.mixup_alpha,
              "must be in [0, 100] (0: no mixup; the paper uses 0.2)");
  check_range(t.teacher_model.empty() || !t.teacher.empty(), c, "train.teacher_model", "'" + t.teacher_model + "'",
              "needs train.teacher (the teacher's weights)");
  check_range(t.distill_temperature > 0, c, "train.distill_temperature", t.distill_temperature, "must be positive");
  check_range(t.precision == "fp32" || t.precision == "bf16" || t.precision == "fp16" || t.precision == "auto", c,
              "train.precision", "'" + t.precision + "'", "must be fp32, bf16, fp16 or auto");
  check_range(t.loss_scale_init >= 1 && t.loss_scale_init <= 16777216, c, "train.loss_scale_init",
              std::to_string(t.loss_scale_init), "must be in [1, 2^24]");
  check_range(t.loss_scale_window >= 1, c, "train.loss_scale_window", std::to_string(t.loss_scale_window),
              "must be at least 1");
  check_range(t.accumulate_steps >= 1, c, "train.accumulate_steps", std::to_string(t.accumulate_steps),
              "must be at least 1");
  check_range(t.optimizer == "sgd" || t.optimizer == "lars", c, "train.optimizer", "'" + t.optimizer + "'",
              "must be sgd or lars");
  check_range(t.lars_trust > 0, c, "train.lars_trust", std::to_string(t.lars_trust), "must be positive");
  check_range(t.device == "cpu" || t.device == "cuda" || t.device == "cpu-strict", c, "train.device",
              "'" + t.device + "'", "must be cpu, cuda or cpu-strict");
  check_range(t.threads >= 0, c, "train.threads", t.threads, "must not be negative");
  // eval, checkpoint, log
  check_range(c.eval.every_epochs >= 0, c, "eval.every_epochs", c.eval.every_epochs, "must not be negative");
  check_range(c.checkpoint.every_epochs >= 0, c, "checkpoint.every_epochs", c.checkpoint.every_epochs,
              "must not be negative");
  check_range(c.checkpoint.keep >= 1, c, "checkpoint.keep", c.checkpoint.keep, "must be at least 1");
  check_range(c.checkpoint.every_steps >= 0, c, "checkpoint.every_steps", c.checkpoint.every_steps,
              "must not be negative (0: only at epoch ends)");
  check_range(c.comm.timeout_s > 0, c, "comm.timeout_s", c.comm.timeout_s, "must be positive");
  check_range(c.comm.bucket_mb > 0, c, "comm.bucket_mb", c.comm.bucket_mb, "must be positive");
  check_range(c.comm.first_bucket_mb > 0, c, "comm.first_bucket_mb", c.comm.first_bucket_mb, "must be positive");
  check_range(c.comm.wire == "f32" || c.comm.wire == "bf16" || c.comm.wire == "f16", c, "comm.wire",
              "'" + c.comm.wire + "'", "must be f32, bf16 or f16");
  check_range(c.comm.backend == "auto" || c.comm.backend == "mpi" || c.comm.backend == "nccl", c, "comm.backend",
              "'" + c.comm.backend + "'", "must be auto, mpi or nccl");
  check_range(c.comm.check == "step" || c.comm.check == "collective", c, "comm.check", "'" + c.comm.check + "'",
              "must be step or collective");
  check_range(c.comm.algorithm == "flat" || c.comm.algorithm == "hierarchical", c, "comm.algorithm",
              "'" + c.comm.algorithm + "'", "must be flat or hierarchical");
  check_range(c.comm.verify_every >= 0, c, "comm.verify_every", c.comm.verify_every,
              "must not be negative (0: never compare the ranks' weights)");
  check_range(c.log.interval > 0, c, "log.interval", c.log.interval, "must be positive");
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    CONVOY_FAIL(source << ":" << e.mark.line + 1 << ": not valid YAML: " << e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  CONVOY_CHECK(root.IsMap(), source << ": the config must be a mapping with sections model, data, train, ...");
  std::set<std::string> overridden;
  for (const auto& o : overrides) apply_override(root, o, overridden);

  Config c;
  c.source = source;
  Reader reader(root, source, overridden);
  try {
    visit(c, reader);
  } catch (const YAML::Exception& e) {  // a node yaml-cpp cannot convert (a mapping as a key: fuzz_config)
    CONVOY_FAIL(source << ":" << e.mark.line + 1 << ": " << e.msg << " (a key or value of a kind the config does not take)");
  }
  validate(c);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  CONVOY_CHECK(in, "cannot read the config file '" << path << "': check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

std::string Config::to_yaml() const {
  Emitter emitter;
  visit(*this, emitter);
  return emitter.yaml();
}

std::string Config::hash() const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char ch : to_yaml()) h = (h ^ ch) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void Config::validate_for_world(int world_size) const {
  CONVOY_CHECK(train.batch_size % world_size == 0,
               source << ": train.batch_size " << train.batch_size << " does not split evenly over " << world_size
                      << " ranks: use a multiple of " << world_size);
  const int64_t parts = world_size * train.accumulate_steps;
  CONVOY_CHECK(train.batch_size % parts == 0,
               source << ": train.batch_size " << train.batch_size << " does not split into " << world_size
                      << " ranks x " << train.accumulate_steps << " micro-batches (train.accumulate_steps): use a "
                      << "multiple of " << parts);
}

}  // namespace convoy::trainer
