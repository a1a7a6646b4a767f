#include "ops/graph.h"

#include <cmath>
#include <cstring>
#include <random>

namespace convoy::ops {

const std::string& Graph::add(const std::string& name, std::unique_ptr<Layer> layer, std::vector<std::string> inputs) {
  CONVOY_CHECK(!set_up_, "layer '" << name << "' added after set-up");
  CONVOY_CHECK(!name.empty() && name != kInput, "a layer needs a name other than '" << kInput << "'");
  CONVOY_CHECK(find(name) == -2, "two layers are both named '" << name << "'");
  CONVOY_CHECK(!inputs.empty(), "layer '" << name << "' has no inputs");
  Node n;
  n.name = name;
  n.layer = std::move(layer);
  for (const auto& in : inputs) {
    int idx = find(in);
    CONVOY_CHECK(idx != -2, "layer '" << name << "' reads '" << in << "', which no earlier layer produces");
    n.inputs.push_back(idx);
  }
  nodes_.push_back(std::move(n));
  output_ = static_cast<int>(nodes_.size()) - 1;
  return nodes_.back().name;
}

void Graph::set_output(const std::string& edge) {
  int idx = find(edge);
  CONVOY_CHECK(idx >= 0, "graph output '" << edge << "' is not a layer");
  output_ = idx;
}

void Graph::add_output(const std::string& name, const std::string& edge, float loss_weight) {
  CONVOY_CHECK(!set_up_, "graph output '" << name << "' added after set-up");
  CONVOY_CHECK(!name.empty(), "an extra graph output needs a name");
  for (const Extra& e : extras_) CONVOY_CHECK(e.name != name, "two graph outputs are both named '" << name << "'");
  const int idx = find(edge);
  CONVOY_CHECK(idx >= 0, "graph output '" << name << "' reads '" << edge << "', which is not a layer");
  CONVOY_CHECK(loss_weight > 0.f && std::isfinite(loss_weight),
               "graph output '" << name << "': the loss weight must be positive, got " << loss_weight);
  extras_.push_back(Extra{name, idx, loss_weight, {}, {}});
}

const Tensor& Graph::extra_output(size_t k) const {
  CONVOY_CHECK(k < extras_.size(), "graph '" << name_ << "' has " << extras_.size() << " extra outputs, not " << k + 1);
  return compute_ == DType::f32 ? nodes_[static_cast<size_t>(extras_[k].node)].out : extras_[k].out_f32;
}

Tensor& Graph::extra_output_grad(size_t k) {
  CONVOY_CHECK(k < extras_.size(), "graph '" << name_ << "' has " << extras_.size() << " extra outputs, not " << k + 1);
  CONVOY_CHECK(backend_, "graph '" << name_ << "' has no backend");
  return compute_ == DType::f32 ? nodes_[static_cast<size_t>(extras_[k].node)].dout : extras_[k].grad_f32;
}

int Graph::find(const std::string& edge) const {
  if (edge == kInput) return -1;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == edge) return static_cast<int>(i);
  return -2;
}

// A ReLU whose input is produced by a layer that can apply it itself, and read by nothing else, is
// folded into that layer: same results, one pass over memory less each way.
void Graph::fuse_relus() {
  std::vector<int> consumers(nodes_.size(), 0);
  for (const Node& n : nodes_)
    for (int in : n.inputs)
      if (in >= 0) ++consumers[static_cast<size_t>(in)];
  std::vector<bool> is_output(nodes_.size(), false);  // a producer whose output is read as it is
  is_output[static_cast<size_t>(output_)] = true;
  for (const Extra& e : extras_) is_output[static_cast<size_t>(e.node)] = true;
  std::vector<int> remap(nodes_.size());  // old index -> index in `kept` (a fused ReLU maps to its producer)
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (n.layer->type() == "ReLU" && n.inputs.size() == 1) {
      int p = n.inputs[0];
      if (p >= 0 && consumers[static_cast<size_t>(p)] == 1 && !is_output[static_cast<size_t>(p)] &&
          kept[static_cast<size_t>(remap[static_cast<size_t>(p)])].layer->absorb_relu()) {
        remap[i] = remap[static_cast<size_t>(p)];
        continue;
      }
    }
    for (int& in : n.inputs)
      if (in >= 0) in = remap[static_cast<size_t>(in)];
    remap[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(n));
  }
  output_ = remap[static_cast<size_t>(output_)];
  for (Extra& e : extras_) e.node = remap[static_cast<size_t>(e.node)];
  nodes_ = std::move(kept);
}

void Graph::mark_extra_only() {
  std::vector<bool> main(nodes_.size(), false);
  main[static_cast<size_t>(output_)] = true;
  for (size_t i = nodes_.size(); i-- > 0;)
    if (main[i])
      for (int in : nodes_[i].inputs)
        if (in >= 0) main[static_cast<size_t>(in)] = true;
  for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i].extra_only = !extras_.empty() && !main[i];
}

namespace {
class Declarations final : public ParamSink {
 public:
  Declarations(ArenaLayout& params, ArenaLayout& buffers, const std::string& prefix, std::vector<size_t>& pidx,
               std::vector<size_t>& bidx)
      : params_(params), buffers_(buffers), prefix_(prefix), pidx_(pidx), bidx_(bidx) {}
  void param(const std::string& suffix, const Shape& shape, ParamRole role, InitKind init, int64_t fan_in,
             int64_t fan_out, std::shared_ptr<const PackedLayout> packing) override {
    ArenaEntry e;
    e.name = prefix_ + "." + suffix;
    e.shape = shape;
    e.role = role;
    e.init = init;
    e.fan_in = fan_in;
    e.fan_out = fan_out;
    e.packing = std::move(packing);
    pidx_.push_back(params_.add(std::move(e)));
  }
  void buffer(const std::string& suffix, const Shape& shape, DType dtype, InitKind init) override {
    ArenaEntry e;
    e.name = prefix_ + "." + suffix;
    e.shape = shape;
    e.dtype = dtype;
    e.role = ParamRole::buffer;
    e.init = init;
    bidx_.push_back(buffers_.add(std::move(e)));
  }

 private:
  ArenaLayout &params_, &buffers_;
  const std::string& prefix_;
  std::vector<size_t>&pidx_, &bidx_;
};
}  // namespace

void Graph::set_emulated_storage(DType storage) {
  CONVOY_CHECK(!set_up_, "graph '" << name_ << "': the emulated storage is chosen before setup()");
  CONVOY_CHECK(storage == DType::f32 || storage == DType::f16 || storage == DType::bf16,
               "emulated storage is f16 or bf16 (or f32: none), not " << dtype_name(storage));
  CONVOY_CHECK(storage == DType::f32 || compute_ == DType::f32,
               "graph '" << name_ << "': emulated " << dtype_name(storage) << " storage and native "
                         << dtype_name(compute_) << " compute exclude each other");
  storage_ = storage;
}

void Graph::set_compute_dtype(DType dtype) {
  CONVOY_CHECK(!set_up_, "graph '" << name_ << "': the compute dtype is chosen before setup()");
  CONVOY_CHECK(dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16,
               "the compute dtype is f32, f16 or bf16, not " << dtype_name(dtype));
  CONVOY_CHECK(dtype == DType::f32 || storage_ == DType::f32,
               "graph '" << name_ << "': native " << dtype_name(dtype) << " compute and emulated "
                         << dtype_name(storage_) << " storage exclude each other");
  compute_ = dtype;
}

Tensor Graph::compute_view(size_t param) const {
  const ArenaEntry& e = param_layout_.entry(param);
  const size_t scale = dtype_size(DType::f32) / dtype_size(compute_);
  const Shape shape = e.packing ? Shape{static_cast<int64_t>(e.bytes / dtype_size(DType::f32))} : e.shape;
  return compute_weights_.view(e.offset / scale, shape, compute_);
}

bool Graph::rounds(size_t param) const {
  if (storage_ == DType::f32 && compute_ == DType::f32) return false;
  const ParamRole r = param_layout_.entry(param).role;
  return r == ParamRole::weight || r == ParamRole::bias;
}

void Graph::round(Tensor& t) {
  if (storage_ != DType::f32 && t.dtype() == DType::f32) backend_->round_to(backend_->context(), t, t, storage_);
}

void Graph::setup(Backend* backend, const Shape& input, bool fuse) {
  CONVOY_CHECK(!set_up_, "graph '" << name_ << "' is already set up");
  CONVOY_CHECK(!nodes_.empty(), "graph '" << name_ << "' has no layers");
  CONVOY_CHECK(input.rank() == 4 || input.rank() == 2, "the graph input must be (N, H, W, C) or (N, C), got "
                                                           << input.str());
  for (const Extra& e : extras_)
    CONVOY_CHECK(e.node != output_, "graph output '" << e.name << "' is the main output '"
                                                     << nodes_[static_cast<size_t>(output_)].name << "' too");
  if (fuse) fuse_relus();
  mark_extra_only();
  backend_ = backend;
  input_shape_ = input;
  std::vector<Shape> in_shapes;
  for (Node& n : nodes_) {
    in_shapes.clear();
    for (int in : n.inputs) in_shapes.push_back(in < 0 ? input : nodes_[static_cast<size_t>(in)].shape);
    try {
      n.layer->set_dtype(compute_);
      n.layer->use_cross_rank_sum(ranks_);
      n.shape = n.layer->infer(in_shapes);
      if (backend) n.layer->build(*backend);
    } catch (const Error& e) {
      throw Error("layer '" + n.name + "' (" + std::string(n.layer->type()) + "): " + e.message(), e.where(),
                  e.expr());
    }
    Declarations sink(param_layout_, buffer_layout_, n.name, n.params, n.buffers);
    n.layer->declare(sink);
  }
  set_up_ = true;
  if (!backend) return;

  Allocator& alloc = backend->allocator();
  params_ = Arena(param_layout_, alloc);
  grads_ = Arena(param_layout_, alloc);
  buffers_ = Arena(buffer_layout_, alloc);
  if (storage_ != DType::f32) {
    compute_params_ = Arena(param_layout_, alloc);
    rounded_input_ = Tensor::empty(input, DType::f32, alloc);
  }
  if (compute_ != DType::f32) {
    const int64_t elems = params_.flat().numel();
    compute_weights_ = Tensor::empty(Shape{elems}, compute_, alloc);
    compute_input_ = Tensor::empty(input, compute_, alloc);
  }
  for (Node& n : nodes_) {
    std::vector<Tensor> p, g, b;
    for (size_t i : n.params) {
      if (!rounds(i))
        p.push_back(params_.view(i));
      else
        p.push_back(compute_ != DType::f32 ? compute_view(i) : compute_params_.view(i));
      g.push_back(grads_.view(i));
    }
    for (size_t i : n.buffers) b.push_back(buffers_.view(i));
    n.layer->bind(std::move(p), std::move(g), std::move(b));
    n.out = Tensor::empty(n.shape, compute_, alloc);
    n.dout = Tensor::empty(n.shape, compute_, alloc);
  }
  if (compute_ != DType::f32) {
    output_f32_ = Tensor::empty(output_shape(), DType::f32, alloc);
    output_grad_f32_ = Tensor::empty(output_shape(), DType::f32, alloc);
    for (Extra& e : extras_) {
      const Shape& shape = nodes_[static_cast<size_t>(e.node)].shape;
      e.out_f32 = Tensor::empty(shape, DType::f32, alloc);
      e.grad_f32 = Tensor::empty(shape, DType::f32, alloc);
    }
  }
  if (want_input_grad_) input_grad_ = Tensor::empty(input, compute_, alloc);
  plan_gradients();
}

// Each activation's gradient is the sum over the layers that read it: walking backward, the first
// reader to run overwrites it and the others accumulate. The caller writes the output's gradient.
void Graph::plan_gradients() {
  std::vector<bool> written(nodes_.size(), false);
  written[static_cast<size_t>(output_)] = true;
  for (const Extra& e : extras_) written[static_cast<size_t>(e.node)] = true;  // callers write these too
  bool input_written = false;
  for (size_t i = nodes_.size(); i-- > 0;) {
    Node& n = nodes_[i];
    n.x.assign(n.inputs.size(), nullptr);
    n.dx.assign(n.inputs.size(), nullptr);
    n.accumulate = std::make_unique<bool[]>(n.inputs.size());
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      int in = n.inputs[k];
      n.x[k] = in < 0 ? &input_ : &nodes_[static_cast<size_t>(in)].out;
      if (in < 0) {  // the data: a gradient only when asked for
        if (want_input_grad_) {
          n.dx[k] = &input_grad_;
          n.accumulate[k] = input_written;
          input_written = true;
        }
        continue;
      }
      n.dx[k] = &nodes_[static_cast<size_t>(in)].dout;
      n.accumulate[k] = written[static_cast<size_t>(in)];
      written[static_cast<size_t>(in)] = true;
    }
  }
  share_sum_gradients();
}

// A sum hands its output gradient unchanged to both inputs a and b. When it is the first writer of both
// gradients, a has no other reader, and b's other readers all run backward after a's producer (they have
// lower indices), the two gradients can be one buffer: the sum writes it once, a's producer reads it as it
// is, and then b's other readers accumulate into it before b's producer reads the total. In a ResNet block,
// a is the residual branch's last BN and b the block input (or, with a projection, its BN): each block's
// backward copies one activation-sized gradient less, and the graph holds one such buffer less. No sum
// changes its operands or order, so the gradients stay bit for bit what they were.
void Graph::share_sum_gradients() {
  std::vector<std::vector<int>> readers(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (int in : nodes_[i].inputs)
      if (in >= 0) readers[static_cast<size_t>(in)].push_back(static_cast<int>(i));
  // Whether `only` is read by `sum` alone, and every other reader of `other` comes before `only`.
  auto can_share = [&](int sum, int only, int other) {
    const auto& ro = readers[static_cast<size_t>(only)];
    if (ro.size() != 1 || ro[0] != sum) return false;
    for (int r : readers[static_cast<size_t>(other)])
      if (r != sum && r >= only) return false;
    return true;
  };
  for (size_t i = nodes_.size(); i-- > 0;) {
    Node& n = nodes_[i];
    if (!n.layer->same_gradient_to_every_input() || n.inputs.size() != 2) continue;
    const int a = n.inputs[0], b = n.inputs[1];
    // Both first written here (x + x accumulates its second): neither is a later sum's input that shared.
    if (a < 0 || b < 0 || n.accumulate[0] || n.accumulate[1]) continue;
    const int sum = static_cast<int>(i);
    int only, other;
    if (can_share(sum, a, b))
      only = a, other = b;
    else if (can_share(sum, b, a))
      only = b, other = a;
    else
      continue;
    nodes_[static_cast<size_t>(other)].dout = nodes_[static_cast<size_t>(only)].dout;
  }
}

// A kernel's error, with the layer it came from.
[[noreturn]] static void rethrow_in_layer(const std::string& layer, std::string_view type, const char* pass,
                                         const Error& e) {
  throw Error("layer '" + layer + "' (" + std::string(type) + ", " + pass + "): " + e.message(), e.where(),
              e.expr());
}

const Tensor& Graph::forward(const Tensor& input) {
  CONVOY_CHECK(backend_, "graph '" << name_ << "' was set up without a backend: it can only report shapes");
  CONVOY_CHECK(input.shape() == input_shape_, "graph '" << name_ << "' was set up for input " << input_shape_.str()
                                                        << ", got " << input.shape().str());
  CONVOY_CHECK(input.device() == backend_->device(),
               "graph '" << name_ << "': the input lives on " << input.device().str() << ", but layer '"
                         << nodes_.front().name << "' runs on " << backend_->device().str()
                         << ": move the batch there with Backend::copy first");
  input_ = input;
  if (storage_ != DType::f32) {
    ExecContext& ctx = backend_->context();
    backend_->round_to(ctx, input, rounded_input_, storage_);
    input_ = rounded_input_;
    // The compute copies of the (just updated) master weights; padding and BN entries come along unused.
    const Tensor master = params_.flat();
    Tensor compute = compute_params_.flat();
    backend_->round_to(ctx, master, compute, storage_);
  }
  if (compute_ != DType::f32) {
    ExecContext& ctx = backend_->context();
    backend_->cast(ctx, input, compute_input_);
    input_ = compute_input_;
    // The compute copies of the (just updated) master weights; BN entries and padding come along unused.
    backend_->cast(ctx, params_.flat(), compute_weights_);
  }
  RunContext rc{backend_->context(), training_, seed_, step_};
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (n.extra_only && !training_) continue;
    if (observer_) observer_->begin(i, false);
    try {
      n.layer->forward(rc, n.x, n.out);
      round(n.out);
    } catch (const Error& e) {
      rethrow_in_layer(n.name, n.layer->type(), "forward", e);
    }
    if (observer_) observer_->end(i, false);
  }
  if (training_) ++step_;
  const Tensor& out = nodes_[static_cast<size_t>(output_)].out;
  if (compute_ == DType::f32) return out;
  if (training_)
    for (Extra& e : extras_) backend_->cast(backend_->context(), nodes_[static_cast<size_t>(e.node)].out, e.out_f32);
  backend_->cast(backend_->context(), out, output_f32_);
  return output_f32_;
}

Tensor& Graph::output_grad() {
  CONVOY_CHECK(backend_, "graph '" << name_ << "' has no backend");
  return compute_ == DType::f32 ? nodes_[static_cast<size_t>(output_)].dout : output_grad_f32_;
}

void Graph::backward() {
  CONVOY_CHECK(training_, "backward() needs the graph in training mode (it was in evaluation mode)");
  // The dropout masks of this backward are those of the forward just run.
  RunContext rc{backend_->context(), training_, seed_, step_ - 1};
  round(nodes_[static_cast<size_t>(output_)].dout);  // the loss gradients, as a half tensor holds them
  for (const Extra& e : extras_) round(nodes_[static_cast<size_t>(e.node)].dout);
  if (compute_ != DType::f32) {
    backend_->cast(rc.ctx, output_grad_f32_, nodes_[static_cast<size_t>(output_)].dout);
    for (Extra& e : extras_) backend_->cast(rc.ctx, e.grad_f32, nodes_[static_cast<size_t>(e.node)].dout);
  }
  for (size_t i = nodes_.size(); i-- > 0;) {
    Node& n = nodes_[i];
    if (observer_) observer_->begin(i, true);
    try {
      n.layer->backward(rc, n.x, n.out, n.dout, n.dx, std::span<const bool>(n.accumulate.get(), n.inputs.size()));
      if (storage_ != DType::f32) {
        for (Tensor* dx : n.dx)
          if (dx) round(*dx);
        for (size_t p : n.params)
          if (rounds(p)) {
            Tensor g = grads_.view(p);
            round(g);
          }
      }
    } catch (const Error& e) {
      rethrow_in_layer(n.name, n.layer->type(), "backward", e);
    }
    if (observer_) observer_->end(i, true);
    if (hook_) hook_(i);
  }
}

const Shape& Graph::output_shape() const { return nodes_[static_cast<size_t>(output_)].shape; }

int64_t Graph::macs() const {
  int64_t m = 0;
  for (const Node& n : nodes_) m += n.layer->macs();
  return m;
}

std::vector<std::string> Graph::implementations() const {
  std::vector<std::string> v;
  for (const Node& n : nodes_)
    for (const auto& s : n.layer->implementations()) v.push_back(n.name + ": " + s);
  return v;
}

Backend& Graph::backend() const {
  CONVOY_CHECK(backend_, "graph '" << name_ << "' was set up without a backend");
  return *backend_;
}

std::pair<const Arena*, size_t> Graph::locate(const std::string& name) const {
  if (param_layout_.contains(name)) return {&params_, param_layout_.index_of(name)};
  if (buffer_layout_.contains(name)) return {&buffers_, buffer_layout_.index_of(name)};
  CONVOY_FAIL("model '" << name_ << "' has no parameter or buffer named '" << name << "'");
}

Tensor Graph::read(const std::string& name) const {
  auto [arena, i] = locate(name);
  return export_entry(*arena, i);
}

Tensor Graph::read_grad(const std::string& name) const {
  CONVOY_CHECK(param_layout_.contains(name), "model '" << name_ << "' has no parameter named '" << name << "'");
  return export_entry(grads_, param_layout_.index_of(name));
}

Tensor Graph::export_entry(const Arena& arena, size_t i) const {
  const ArenaEntry& e = arena.layout().entry(i);
  Tensor host = Tensor::zeros_host(e.shape, e.dtype);
  Backend& be = backend();
  if (e.packing) {
    e.packing->unpack(be.context(), arena.view(i), host);
  } else {
    be.copy(be.context(), arena.view(i), host);
    be.context().synchronize();
  }
  return host;
}

void Graph::write(const std::string& name, const Tensor& host) {
  auto [arena, i] = locate(name);
  import_entry(*arena, i, host);
}

void Graph::import_entry(const Arena& arena, size_t i, const Tensor& host) {
  const ArenaEntry& e = arena.layout().entry(i);
  CONVOY_CHECK(host.shape().numel() == e.shape.numel() && host.dtype() == e.dtype,
               "'" << e.name << "' is " << e.shape.str() << " " << dtype_name(e.dtype) << ", got "
                   << host.shape().str() << " " << dtype_name(host.dtype()));
  Backend& be = backend();
  Tensor dst = arena.view(i);
  if (e.packing) {
    e.packing->pack(be.context(), host.reshaped(e.shape), dst);
  } else {
    be.copy(be.context(), host.reshaped(e.shape), dst);
    be.context().synchronize();  // the host tensor may go away when this returns
  }
}

namespace {
// Portable draws (the standard distributions differ between library versions).
double uniform(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1.0p-53; }
double normal(std::mt19937_64& g) {
  double u1 = uniform(g), u2 = uniform(g);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
}
}  // namespace

void Graph::init_params(uint64_t seed) {
  // Fresh device memory is not zeroed (a GPU's caching allocator hands out old blocks): padding between
  // entries would otherwise differ from rank to rank and enter the startup checksum.
  for (Arena* a : {&params_, &buffers_}) {
    Tensor flat = a->flat();
    if (flat.numel()) backend().fill(backend().context(), flat, 0.0);
  }
  std::mt19937_64 gen(seed);
  auto fill = [&](const ArenaLayout& layout) {
    for (const ArenaEntry& e : layout.entries()) {
      Tensor host = Tensor::zeros_host(e.shape, e.dtype);
      if (e.dtype == DType::f32) {
        float* p = host.host<float>();
        const int64_t n = e.numel();
        switch (e.init) {
          case InitKind::zeros: break;
          case InitKind::ones:
            for (int64_t i = 0; i < n; ++i) p[i] = 1.f;
            break;
          case InitKind::kaiming_normal_fan_out:
          case InitKind::kaiming_normal_fan_in:
          case InitKind::normal_0_01: {
            const double std = e.init == InitKind::normal_0_01 ? 0.01
                               : std::sqrt(2.0 / static_cast<double>(e.init == InitKind::kaiming_normal_fan_in
                                                                         ? e.fan_in
                                                                         : e.fan_out));
            for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(normal(gen) * std);
            break;
          }
          case InitKind::xavier_uniform: {
            const double bound = std::sqrt(6.0 / static_cast<double>(e.fan_in + e.fan_out));
            for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>((2.0 * uniform(gen) - 1.0) * bound);
            break;
          }
          case InitKind::kaiming_uniform_a_sqrt5:
          case InitKind::uniform_fan_in: {
            double bound = 1.0 / std::sqrt(static_cast<double>(e.fan_in));
            for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>((2.0 * uniform(gen) - 1.0) * bound);
            break;
          }
        }
      }
      write(e.name, host);
    }
  };
  fill(param_layout_);
  fill(buffer_layout_);
  // Gradients start at zero (padding of packed layouts included) so that sums over the arena are exact.
  Tensor g = grads_.flat();
  backend().fill(backend().context(), g, 0.0);
}

}  // namespace convoy::ops
