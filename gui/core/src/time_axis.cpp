#include "parallax/gui/time_axis.h"

#include <algorithm>
#include <cmath>

namespace parallax::gui {

TimeAxis::TimeAxis(double start_s, double end_s, double left_px, double width_px) {
  set_geometry(left_px, width_px);
  set_range(start_s, end_s);
}

void TimeAxis::set_geometry(double left_px, double width_px) {
  left_ = left_px;
  width_ = std::max(1.0, width_px);
}

void TimeAxis::set_range(double start_s, double end_s) {
  if (!(end_s - start_s >= kMinSpan)) {  // also catches NaN
    const double mid = std::isfinite(start_s + end_s) ? (start_s + end_s) / 2 : 0;
    start_s = mid - kMinSpan / 2;
    end_s = mid + kMinSpan / 2;
  }
  start_ = start_s;
  end_ = end_s;
}

void TimeAxis::zoom_at(double anchor_x, double factor) {
  if (!(factor > 0)) return;
  const double anchor_t = to_time(anchor_x);
  const double new_span = std::max(kMinSpan, span() / factor);
  const double fraction = (anchor_x - left_) / width_;
  set_range(anchor_t - fraction * new_span, anchor_t - fraction * new_span + new_span);
}

void TimeAxis::pan_pixels(double dx) {
  const double dt = dx * seconds_per_pixel();
  start_ -= dt;
  end_ -= dt;
}

void TimeAxis::clamp_to(double lo, double hi) {
  const double s = span();
  if (s >= hi - lo) return;  // zoomed out past the data: leave it
  if (start_ < lo) set_range(lo, lo + s);
  if (end_ > hi) set_range(hi - s, hi);
}

double tick_step(double span_s, double width_px, double min_spacing_px) {
  const double min_step = span_s * min_spacing_px / std::max(1.0, width_px);
  double power = std::pow(10.0, std::floor(std::log10(std::max(min_step, 1e-15))));
  for (int guard = 0; guard < 4; ++guard, power *= 10)
    for (double m : {1.0, 2.0, 5.0})
      if (m * power >= min_step * (1 - 1e-9)) return m * power;
  return 10 * power;
}

namespace {

struct Unit {
  double scale;
  const char* name;
};

Unit unit_for(double magnitude) {
  if (magnitude >= 1) return {1, "s"};
  if (magnitude >= 1e-3) return {1e3, "ms"};
  if (magnitude >= 1e-6) return {1e6, "\u00b5s"};
  return {1e9, "ns"};
}

}  // namespace

QString format_duration(double seconds) {
  if (seconds == 0) return QStringLiteral("0 s");
  const Unit u = unit_for(std::abs(seconds));
  const double v = seconds * u.scale;
  const int decimals = std::abs(v) >= 100 ? 0 : std::abs(v) >= 10 ? 1 : 2;
  return QString::number(v, 'f', decimals) + QChar(' ') + QString::fromUtf8(u.name);
}

std::vector<Tick> axis_ticks(const TimeAxis& axis, double min_spacing_px) {
  std::vector<Tick> ticks;
  const double step = tick_step(axis.span(), axis.width(), min_spacing_px);
  // One unit per axis, from the step: 0.1 s steps read "0.3 s", 50 ms steps "150 ms".
  const Unit u = unit_for(step * 10 * (1 + 1e-9));
  const int decimals =
      std::clamp(static_cast<int>(std::ceil(-std::log10(step * u.scale) - 1e-9)), 0, 9);
  const QString unit = QChar(' ') + QString::fromUtf8(u.name);
  // Deep zoom far from 0 ("1234567.8 µs") is unreadable: the first tick then carries the absolute
  // time in seconds and the others the offset from it.
  const double magnitude = std::max(std::abs(axis.start()), std::abs(axis.end()));
  const bool relative = magnitude / step > 1e5;
  const double first = std::ceil(axis.start() / step) * step;
  for (int i = 0;; ++i) {
    const double t = first + i * step;
    if (t > axis.end() + step * 1e-9 || i > 10000) break;
    QString label;
    if (relative && i > 0) {
      label = QChar('+') + QString::number(i * step * u.scale, 'f', decimals) + unit;
    } else if (relative) {
      const int abs_decimals =
          std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 12);
      label = QString::number(t, 'f', abs_decimals) + QStringLiteral(" s");
    } else {
      const double shown = std::abs(t) < step * 1e-6 ? 0.0 : t;  // no "-0.0"
      label = QString::number(shown * u.scale, 'f', decimals) + unit;
    }
    ticks.push_back(Tick{t, axis.to_pixel(t), label});
  }
  return ticks;
}

}  // namespace parallax::gui
