// The mapping between time and pixels of a timeline view, its zoom history and its tick marks.
// Pure arithmetic: no widgets, so the tests check it directly.
#pragma once

#include <QString>

#include <utility>
#include <vector>

namespace parallax::gui {

// Seconds [start, end] shown over pixels [left, left + width).
class TimeAxis {
 public:
  TimeAxis() = default;
  TimeAxis(double start_s, double end_s, double left_px, double width_px);

  double start() const { return start_; }
  double end() const { return end_; }
  double span() const { return end_ - start_; }
  double left() const { return left_; }
  double width() const { return width_; }
  double seconds_per_pixel() const { return span() / width_; }

  double to_pixel(double t) const { return left_ + (t - start_) / span() * width_; }
  double to_time(double x) const { return start_ + (x - left_) / width_ * span(); }

  void set_geometry(double left_px, double width_px);
  // Shows [start, end]; the span never goes below `kMinSpan` (1 ns) so that pixels stay distinct.
  void set_range(double start_s, double end_s);
  // Zooms by `factor` (> 1 zooms in) keeping the time under pixel `anchor_x` where it is.
  void zoom_at(double anchor_x, double factor);
  // Moves the view by `dx` pixels (dragging right by dx shows earlier time).
  void pan_pixels(double dx);
  // Keeps the view inside [lo, hi] (when the span fits) without changing the span.
  void clamp_to(double lo, double hi);

  static constexpr double kMinSpan = 1e-9;

 private:
  double start_ = 0, end_ = 1, left_ = 0, width_ = 1;
};

struct Tick {
  double time_s;
  double x;
  QString label;
};

// Ticks at a round step (1, 2 or 5 times a power of ten seconds) at least `min_spacing_px` apart,
// labelled in the unit that suits the step (s, ms, µs, ns) with just enough decimals.
std::vector<Tick> axis_ticks(const TimeAxis& axis, double min_spacing_px = 90);
// The step axis_ticks chooses.
double tick_step(double span_s, double width_px, double min_spacing_px);
// "1.5 ms", "250 µs", "2.04 s": a duration for people, 3 significant digits.
QString format_duration(double seconds);

// The ranges a view showed before each zoom, for "back".
class ZoomStack {
 public:
  void push(double start_s, double end_s) { ranges_.emplace_back(start_s, end_s); }
  bool empty() const { return ranges_.empty(); }
  std::size_t size() const { return ranges_.size(); }
  // The last pushed range, removed from the stack; precondition: !empty().
  std::pair<double, double> pop() {
    auto r = ranges_.back();
    ranges_.pop_back();
    return r;
  }
  void clear() { ranges_.clear(); }

 private:
  std::vector<std::pair<double, double>> ranges_;
};

}  // namespace parallax::gui
