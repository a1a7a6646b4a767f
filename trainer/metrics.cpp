#include "trainer/metrics.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace convoy::trainer {

Metrics::Metrics(const std::string& run_dir, bool active) {
  if (!active) return;
  std::string path = run_dir + "/metrics.jsonl";
  jsonl_ = std::fopen(path.c_str(), "a");
  CONVOY_CHECK(jsonl_, "cannot open " << path << " for writing: check that the run directory is writable");
}

Metrics::~Metrics() {
  if (jsonl_) std::fclose(jsonl_);
}

std::string format_duration(double s) {
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

void Metrics::step(const StepMetrics& m) {
  if (!jsonl_) return;
  char scale[64] = "";
  if (m.loss_scale > 0)
    std::snprintf(scale, sizeof scale, "  scale %.0f skipped %lld", m.loss_scale, static_cast<long long>(m.skipped_steps));
  char skipped[64] = "";
  if (m.skipped_records > 0)
    std::snprintf(skipped, sizeof skipped, "  skipped %lld damaged records", static_cast<long long>(m.skipped_records));
  std::printf("epoch %lld step %lld/%lld  loss %.4f  lr %.5f%s  %.0f img/s  data %.0f%%  comm %.0f%%%s  eta %s\n",
              static_cast<long long>(m.epoch + 1), static_cast<long long>(m.step),
              static_cast<long long>(m.steps_per_epoch), m.loss, m.lr, scale, m.images_per_s, 100 * m.data_wait_share,
              100 * m.comm_wait_share, skipped, format_duration(m.eta_s).c_str());
  std::fflush(stdout);
  nlohmann::json j = {{"type", "step"},          {"epoch", m.epoch + 1},     {"step", m.step},
                      {"global_step", m.global_step}, {"loss", m.loss},        {"lr", m.lr},
                      {"images_per_s", m.images_per_s}, {"data_wait_share", m.data_wait_share},
                      {"comm_wait_share", m.comm_wait_share}, {"skipped_records", m.skipped_records},
                      {"elapsed_s", m.elapsed_s}};
  if (m.loss_scale > 0) j["loss_scale"] = m.loss_scale, j["skipped_steps"] = m.skipped_steps;
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
}

void Metrics::epoch(const EpochMetrics& m) {
  if (!jsonl_) return;
  if (m.evaluated)
    std::printf("epoch %lld done in %s: train loss %.4f, %.0f img/s | val loss %.4f, top-1 %.2f %%, top-5 %.2f %% "
                "(%lld images)\n",
                static_cast<long long>(m.epoch + 1), format_duration(m.epoch_s).c_str(), m.train_loss,
                m.train_images_per_s, m.val_loss, 100 * m.top1, 100 * m.top5, static_cast<long long>(m.val_samples));
  else
    std::printf("epoch %lld done in %s: train loss %.4f, %.0f img/s\n", static_cast<long long>(m.epoch + 1),
                format_duration(m.epoch_s).c_str(), m.train_loss, m.train_images_per_s);
  std::fflush(stdout);
  nlohmann::json j = {{"type", "epoch"},      {"epoch", m.epoch + 1},           {"train_loss", m.train_loss},
                      {"train_images_per_s", m.train_images_per_s}, {"epoch_s", m.epoch_s},
                      {"skipped_records", m.skipped_records}, {"elapsed_s", m.elapsed_s}};
  if (m.evaluated) {
    j["val_loss"] = m.val_loss;
    j["top1"] = m.top1;
    j["top5"] = m.top5;
    j["val_samples"] = m.val_samples;
  }
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
}

}  // namespace convoy::trainer
