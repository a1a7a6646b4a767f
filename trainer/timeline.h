// A Chrome-trace timeline of one rank (open it in Perfetto or chrome://tracing): data waits, every
// layer's forward and backward, every gradient bucket's all-reduce with its bytes and bandwidth, and the
// optimizer. Written when the run ends (or is preempted) to FILE.rank<R>.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/graph.h"

namespace convoy::trainer {

class Timeline final : public ops::Graph::Observer {
 public:
  // Tracks: the main thread and the communication thread.
  enum Track { main_thread = 0, comm_thread = 1 };

  Timeline(std::string path, int rank, const ops::Graph& graph);
  void begin(size_t layer, bool backward) override;
  void end(size_t layer, bool backward) override;
  // A finished span [start, start + seconds) on the shared clock (common/timer.h).
  void span(const std::string& name, const char* category, double start, double seconds, Track track,
            const std::string& args_json = "");
  void write() const;
  const std::string& path() const { return path_; }

 private:
  struct Event {
    std::string name;
    const char* category;
    double start, seconds;
    Track track;
    std::string args;
  };
  std::string path_;
  int rank_;
  const ops::Graph& graph_;
  double origin_;
  std::vector<double> open_;  // per layer: when its current pass began
  std::vector<Event> events_;
  static constexpr size_t kMaxEvents = 2'000'000;
};

}  // namespace convoy::trainer
