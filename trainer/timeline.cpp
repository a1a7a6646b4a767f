#include "trainer/timeline.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/timer.h"

namespace convoy::trainer {

Timeline::Timeline(std::string path, int rank, const ops::Graph& graph)
    : path_(std::move(path)), rank_(rank), graph_(graph), origin_(now_seconds()), open_(graph.num_layers(), 0.0) {
  events_.reserve(1 << 16);
}

void Timeline::begin(size_t layer, bool) { open_[layer] = now_seconds(); }

void Timeline::end(size_t layer, bool backward) {
  const double t = now_seconds();
  span(graph_.layer_name(layer), backward ? "backward" : "forward", open_[layer], t - open_[layer], main_thread);
}

void Timeline::span(const std::string& name, const char* category, double start, double seconds, Track track,
                    const std::string& args_json) {
  if (events_.size() < kMaxEvents) events_.push_back({name, category, start, seconds, track, args_json});
}

void Timeline::write() const {
  std::FILE* f = std::fopen(path_.c_str(), "w");
  CONVOY_CHECK(f, "cannot write the timeline " << path_ << ": check that its folder exists and is writable");
  std::fprintf(f, "{\"traceEvents\":[\n");
  std::fprintf(f,
               "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}},\n"
               "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"compute\"}},\n"
               "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,\"args\":{\"name\":\"communication\"}}",
               rank_, rank_, rank_, rank_);
  for (const Event& e : events_) {
    std::fprintf(f, ",\n{\"name\":%s,\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f",
                 nlohmann::json(e.name).dump().c_str(), e.category, rank_, static_cast<int>(e.track),
                 (e.start - origin_) * 1e6, e.seconds * 1e6);
    if (!e.args.empty()) std::fprintf(f, ",\"args\":%s", e.args.c_str());
    std::fprintf(f, "}");
  }
  std::fprintf(f, "\n],\"displayTimeUnit\":\"ms\"}\n");
  CONVOY_CHECK(std::fclose(f) == 0, "writing the timeline " << path_ << " failed: is the disk full?");
}

}  // namespace convoy::trainer
