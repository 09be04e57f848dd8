// A full repaint of the timeline view at 1920x1080 (offscreen QImage, the widget's raster format),
// for a timeline of 10k tasks (the baseline) and of 1M tasks, fully zoomed out and zoomed into a
// tenth. The bar: a 1M-task repaint under 16 ms (one frame at 60 Hz). Report the 1M/10k
// ratio.
//
//   cmake --build build --target parallax_bench_gui_paint && ./build/bench/parallax_bench_gui_paint
#include "parallax/gui/timeline_scene.h"

#include <QGuiApplication>
#include <QImage>
#include <QPainter>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>

using namespace parallax;
using namespace parallax::gui;

namespace {

// A training step's shape: 64 ranks, each a compute stream of back-to-back tasks (durations 2..200
// us, log-uniform, as GEMMs and elementwise ops mix) and a communication stream with a task every
// few compute tasks; `tasks` in total.
std::shared_ptr<TimelineData> synthetic(std::size_t tasks) {
  Timeline t;
  t.set_source(Timeline::PREDICTED);
  t.set_scenario_name("synthetic");
  constexpr std::uint32_t kRanks = 64;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> log_us(std::log(2.0), std::log(200.0));
  const std::size_t per_rank = tasks / kRanks;
  std::uint32_t id = 0;
  for (std::uint32_t r = 0; r < kRanks; ++r) {
    double compute = 0, comm = 0;
    for (std::size_t i = 0; i < per_rank; ++i) {
      const bool is_comm = i % 4 == 3;
      const double d = std::exp(log_us(rng)) * 1e-6;
      double& clock = is_comm ? comm : compute;
      clock = std::max(clock, is_comm ? compute : clock);
      auto* e = t.add_events();
      e->set_task_id(id++);
      e->set_rank(r);
      e->set_stream(is_comm ? DP_COMM : COMPUTE);
      e->set_kind(is_comm ? COLLECTIVE : (i % 2 ? GEMM : MEMORY_BOUND));
      e->set_start_s(clock);
      e->set_end_s(clock + d);
      clock += d;
    }
  }
  return std::make_shared<TimelineData>(std::move(t));
}

void repaint(benchmark::State& state, double zoom) {
  static std::map<std::int64_t, std::shared_ptr<TimelineData>> cache;
  auto& data = cache[state.range(0)];
  if (!data) data = synthetic(static_cast<std::size_t>(state.range(0)));
  TimelineScene scene;
  scene.set_timelines(data, nullptr);
  const QSize size(1920, 1080);
  QImage image(size, QImage::Format_ARGB32_Premultiplied);
  TimeAxis axis = scene.full_axis(size.width());
  if (zoom > 1) axis.zoom_at(axis.left() + axis.width() / 2, zoom);
  for (auto _ : state) {
    QPainter p(&image);
    scene.paint(p, size, axis, 0);
    p.end();
    benchmark::DoNotOptimize(image.constBits());
  }
  state.counters["tasks"] = static_cast<double>(data->num_events());
  state.counters["lanes"] = static_cast<double>(data->lanes().size());
}

void BM_RepaintFullView(benchmark::State& state) {
  repaint(state, 1);
}
void BM_RepaintZoomedTenth(benchmark::State& state) {
  repaint(state, 10);
}

}  // namespace

BENCHMARK(BM_RepaintFullView)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RepaintZoomedTenth)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  // Fonts need a QGuiApplication; no display is needed.
  if (!std::getenv("QT_QPA_PLATFORM")) setenv("QT_QPA_PLATFORM", "offscreen", 1);
  QGuiApplication app(argc, argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
