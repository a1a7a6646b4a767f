#include "comm/communicator.h"

#include "ops/math/elementwise.h"

namespace convoy::comm {

CheckMode parse_check_mode(const std::string& name) {
  if (name == "step") return CheckMode::step;
  if (name == "collective") return CheckMode::collective;
  CONVOY_FAIL("unknown collective check '" << name << "': use step or collective");
}

Algorithm parse_algorithm(const std::string& name) {
  if (name == "flat") return Algorithm::flat;
  if (name == "hierarchical") return Algorithm::hierarchical;
  CONVOY_FAIL("unknown all-reduce algorithm '" << name << "': use flat or hierarchical");
}

std::string resolve_comm_backend(const std::string& backend, ops::Device device) {
  if (backend == "auto") return device.kind == ops::DeviceKind::cuda ? "nccl" : "mpi";
  if (backend == "mpi" || backend == "nccl") return backend;
  CONVOY_FAIL("unknown communicator '" << backend << "': use auto, mpi or nccl");
}

CommOptions plane_options(const std::string& plane, double timeout_s, std::shared_ptr<StepRecord> record,
                          CheckMode check) {
  CONVOY_CHECK(plane == "data" || plane == "control", "a plane is data or control, not '" << plane << "'");
  CommOptions o;
  o.plane = plane;
  o.timeout_s = timeout_s;
  o.record = std::move(record);
  o.records = plane == "data";
  o.check = check;
  return o;
}

void require_communicator(const std::string& backend, ops::Device device) {
  if (resolve_comm_backend(backend, device) == "mpi") return;
#if defined(CONVOY_CUDA_BACKEND)
  CONVOY_CHECK(device.kind == ops::DeviceKind::cuda,
               "communicator 'nccl' moves GPU memory, but train.device is " << device.str()
                                                                            << ": use comm.backend: mpi (or auto)");
#else
  CONVOY_FAIL("communicator 'nccl': this convoy build has no NCCL communicator (it comes with the CUDA backend: "
              "configure with the CUDA toolkit, cuDNN and NCCL); use comm.backend: mpi (--backend mpi)"
              << (device.is_cpu() ? "" : ", which moves " + device.str() + " memory through host staging buffers"));
#endif
}

void require_algorithm(const std::string& backend, ops::Device device, Algorithm algorithm) {
  CONVOY_CHECK(algorithm == Algorithm::flat || resolve_comm_backend(backend, device) == "mpi",
               "the hierarchical all-reduce is the MPI data plane's; NCCL builds its own hierarchy (rings and trees "
               "over NVLink within a node and the network between nodes): use comm.algorithm: flat with nccl");
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, ops::Device device, const World& world,
                                                const CommOptions& options) {
  require_communicator(backend, device);
  require_algorithm(backend, device, options.algorithm);
#if defined(CONVOY_CUDA_BACKEND)
  if (resolve_comm_backend(backend, device) == "nccl") return make_nccl_communicator(world, device, options);
#endif
  return make_mpi_communicator(world, options);
}

Planes make_planes(const std::string& backend, ops::Device device, const World& world, double timeout_s,
                   CheckMode check, Algorithm algorithm) {
  Planes p;
  p.record = std::make_shared<StepRecord>();
  CommOptions data = plane_options("data", timeout_s, p.record, check);
  data.algorithm = algorithm;
  require_communicator(backend, device);  // before the control plane exists: one rank's message, no stall
  require_algorithm(backend, device, algorithm);
  p.control = make_mpi_communicator(world, plane_options("control", timeout_s, p.record));
  p.data = make_communicator(backend, device, world, data);
  return p;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

uint64_t fingerprint(const char* role, uint64_t id, uint64_t bytes) {
  uint64_t h = 1469598103934665603ull;
  for (const char* p = role; *p; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  h = math::mix64(h ^ math::mix64(id ^ math::mix64(bytes)));
  return h;
}

}  // namespace convoy::comm
