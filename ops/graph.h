// Graph: layers in topological order with named edges (an edge is named after the layer that produces
// it; "input" is the graph's input). Forward runs in order, backward in reverse, and a hook runs after
// each layer's backward (that is where gradient all-reduce starts). Parameters, their gradients and
// the buffers each live in one arena, named as torchvision names them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/arena.h"
#include "ops/backend.h"
#include "ops/layer.h"

namespace convoy::ops {

class Graph {
 public:
  static constexpr const char* kInput = "input";

  explicit Graph(std::string name = "") : name_(std::move(name)) {}
  // Arenas point at the graph's layouts: a graph stays where it was built (models come as unique_ptr).
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // --- building ---
  // Adds a layer reading the named edges; returns the name of its output edge (the layer's name).
  const std::string& add(const std::string& name, std::unique_ptr<Layer> layer, std::vector<std::string> inputs);
  // The graph's output edge (default: the last layer added).
  void set_output(const std::string& edge);
  // A named extra output (GoogLeNet's auxiliary classifiers): the layer `edge`, whose logits join the
  // training loss with `loss_weight`. After a training forward() callers read it with extra_output(k) and
  // write its loss gradient into extra_output_grad(k) before backward(); in evaluation the layers that
  // feed only extra outputs do not run, as torchvision skips its auxiliary heads.
  void add_output(const std::string& name, const std::string& edge, float loss_weight);

  // --- set-up ---
  // Infers shapes for an (N, H, W, C) input, fuses ReLUs into the layer before them where it changes no
  // result (fuse = true), and with a backend builds every kernel plan and allocates arenas, activations
  // and gradients. Without a backend only shapes, parameter declarations and MACs are computed.
  void setup(Backend* backend, const Shape& input, bool fuse = true);
  // Emulates storage in `storage` (f16 or bf16; f32: none, the default) on an fp32 backend, before setup():
  // the input, every activation and activation gradient is rounded to it at every layer boundary, and
  // convolution and linear weights and biases are used through rounded copies of the fp32 master weights
  // (refreshed at every forward), whose gradients are rounded as a kernel storing them would. BN's γ, β and
  // statistics stay fp32, as in mixed-precision training. It is the CPU reference of GPU fp16 training:
  // a numerics check, not a speed-up.
  void set_emulated_storage(DType storage);
  DType emulated_storage() const { return storage_; }
  // Native mixed precision (bf16 on a CPU with bf16 arithmetic), before setup(): every layer's kernels run
  // in `dtype`, and activations and activation gradients are stored in it; convolution and linear weights
  // and biases are used through `dtype` copies of the fp32 master weights (cast at every forward), while
  // their gradients, BN's γ, β and statistics stay fp32. The graph's input, output and output gradient
  // stay f32 tensors (cast at the edges), so callers see no difference. Not with emulated storage.
  void set_compute_dtype(DType dtype);
  // SyncBN, before setup(): every batch norm layer computes its training statistics (and its backward's
  // sums) over all ranks through `ranks` (not owned; it outlives the graph). With one rank it changes nothing.
  void set_cross_rank_sum(CrossRankSum* ranks) { ranks_ = ranks; }
  DType compute_dtype() const { return compute_; }
  // Also compute the gradient with respect to the graph's input (for tests and input attribution);
  // call before setup().
  void set_input_grad(bool on) { want_input_grad_ = on; }
  const Tensor& input_grad() const { return input_grad_; }  // in the compute dtype
  // Fills parameters and buffers as PyTorch initializes them (per layer's InitKind), from `seed`.
  void init_params(uint64_t seed);

  // --- running ---
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }
  void set_dropout_seed(uint64_t seed) { seed_ = seed; }
  // Training forward passes so far; dropout masks are a function of (seed, step), so setting it
  // reproduces a step's masks (resume, gradient checks).
  void set_step(uint64_t step) { step_ = step; }
  uint64_t step() const { return step_; }
  // input: (N, H, W, C) on the backend's device (a view of the loader's batch is fine).
  const Tensor& forward(const Tensor& input);
  // The gradient of the loss with respect to the output: write it here, then call backward().
  Tensor& output_grad();
  void backward();
  // Called after each layer's backward with the layer's index (its parameter gradients are final then).
  void set_backward_hook(std::function<void(size_t layer)> hook) { hook_ = std::move(hook); }
  // Observes every layer's forward and backward (timelines, profiles); null to stop.
  class Observer {
   public:
    virtual ~Observer() = default;
    virtual void begin(size_t layer, bool backward) = 0;
    virtual void end(size_t layer, bool backward) = 0;
  };
  void set_observer(Observer* observer) { observer_ = observer; }

  // Extra outputs, in the order added: f32 like the main output, whatever the compute dtype.
  size_t num_extra_outputs() const { return extras_.size(); }
  const std::string& extra_output_name(size_t k) const { return extras_.at(k).name; }
  float extra_output_loss_weight(size_t k) const { return extras_.at(k).loss_weight; }
  const Tensor& extra_output(size_t k) const;  // valid after a training forward()
  Tensor& extra_output_grad(size_t k);

  // --- introspection ---
  const std::string& name() const { return name_; }
  size_t num_layers() const { return nodes_.size(); }
  const std::string& layer_name(size_t i) const { return nodes_[i].name; }
  const Layer& layer(size_t i) const { return *nodes_[i].layer; }
  const Shape& layer_output_shape(size_t i) const { return nodes_[i].shape; }
  // Indices into param_layout() of the parameters layer i owns.
  const std::vector<size_t>& layer_params(size_t i) const { return nodes_[i].params; }
  // Whether layer i's backward computes the gradient of its input k (after setup(); not for the layer that
  // reads the graph's input, unless set_input_grad).
  bool computes_input_grad(size_t i, size_t k = 0) const { return nodes_[i].dx.at(k) != nullptr; }
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const;
  int64_t num_params() const { return param_layout_.total_numel(); }
  int64_t macs() const;  // per forward pass of the set-up batch
  std::vector<std::string> implementations() const;  // "layer: implementation" per kernel primitive

  const ArenaLayout& param_layout() const { return param_layout_; }
  const ArenaLayout& buffer_layout() const { return buffer_layout_; }
  Arena& params() { return params_; }
  Arena& grads() { return grads_; }
  Arena& buffers() { return buffers_; }
  Backend& backend() const;

  // A parameter or buffer by name, in its plain (PyTorch) layout, as a host tensor; and back.
  Tensor read(const std::string& name) const;
  Tensor read_grad(const std::string& name) const;  // a parameter's gradient, plain layout
  // Entry i of any arena with this graph's parameter or buffer layout (momentum, say), to and from a
  // host tensor in the plain layout.
  Tensor export_entry(const Arena& arena, size_t i) const;
  void import_entry(const Arena& arena, size_t i, const Tensor& host);
  // An activation (layer output) and its gradient, as the backend holds them (in the compute dtype).
  const Tensor& activation(size_t layer) const { return nodes_[layer].out; }
  const Tensor& activation_grad(size_t layer) const { return nodes_[layer].dout; }
  void write(const std::string& name, const Tensor& host);

 private:
  struct Node {
    std::string name;
    std::unique_ptr<Layer> layer;
    std::vector<int> inputs;  // producer node indices; -1 is the graph input
    Shape shape;
    Tensor out, dout;
    std::vector<size_t> params, buffers;
    // Precomputed for the step loop, so it never allocates.
    std::vector<const Tensor*> x;
    std::vector<Tensor*> dx;
    std::unique_ptr<bool[]> accumulate;
    bool extra_only = false;  // feeds only extra outputs: skipped in evaluation
  };
  struct Extra {
    std::string name;
    int node;
    float loss_weight;
    Tensor out_f32, grad_f32;  // mixed precision: the f32 copies callers see
  };

  int find(const std::string& edge) const;  // node index, -1 for the input
  bool rounds(size_t param) const;          // used through a compute copy (emulated storage, mixed precision)
  void round(Tensor& t);                    // in place to the emulated storage (nothing in f32)
  void fuse_relus();
  void mark_extra_only();  // Node::extra_only, from what the main output reads
  void plan_gradients();
  void share_sum_gradients();  // one gradient buffer for a sum's two inputs where that is safe
  // The arena and entry index that hold a named parameter or buffer.
  std::pair<const Arena*, size_t> locate(const std::string& name) const;

  std::string name_;
  std::vector<Node> nodes_;
  int output_ = -1;
  std::vector<Extra> extras_;
  Backend* backend_ = nullptr;
  Shape input_shape_;
  Tensor input_, input_grad_;
  bool want_input_grad_ = false;
  bool set_up_ = false, training_ = true;
  uint64_t seed_ = 0, step_ = 0;
  ArenaLayout param_layout_, buffer_layout_;
  Arena params_, grads_, buffers_;
  DType storage_ = DType::f32;
  DType compute_ = DType::f32;
  CrossRankSum* ranks_ = nullptr;
  Arena compute_params_;  // the rounded copies of weights and biases (emulated storage only)
  Tensor rounded_input_;
  // Mixed precision: the whole parameter arena cast to the compute dtype (element k of the f32 arena is
  // element k here, so entry i starts at half its byte offset); the input in the compute dtype; the f32
  // output and output gradient callers see.
  Tensor compute_weights_, compute_input_, output_f32_, output_grad_f32_;
  Tensor compute_view(size_t param) const;
  std::function<void(size_t)> hook_;
  Observer* observer_ = nullptr;
};

}  // namespace convoy::ops
