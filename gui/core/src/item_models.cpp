#include "parallax/gui/item_models.h"

#include <QBrush>
#include <QColor>

namespace parallax::gui {

namespace {

QString gib(double bytes) {
  return QString::number(bytes / (1024.0 * 1024 * 1024), 'f', 2) + " GiB";
}
QString percent(double fraction) {
  return QString::number(100 * fraction, 'f', 1) + "%";
}

}  // namespace

void PlanResultsModel::set_result(planner::PlanResult result) {
  beginResetModel();
  result_ = std::move(result);
  endResetModel();
}

void PlanResultsModel::clear() {
  set_result({});
}

bool PlanResultsModel::fits(const planner::PlanRow& row) {
  if (row.simulated && row.report.has_fits() && !row.report.fits()) return false;
  return row.capacity_bytes <= 0 || row.memory_bytes <= row.capacity_bytes;
}

int PlanResultsModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(result_.rows.size());
}

int PlanResultsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

QVariant PlanResultsModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
    return {};
  const planner::PlanRow& r = row(index.row());
  const bool ok = fits(r);
  if (role == Qt::BackgroundRole)
    return ok ? QVariant() : QVariant(QBrush(QColor(0xf8, 0xd0, 0xd0)));
  if (role == Qt::ToolTipRole) {
    QString tip = QString::fromStdString(r.layout) + "\n" + QString::fromStdString(r.bottleneck);
    if (!ok)
      tip += QStringLiteral("\ndoes not fit: needs %1 of %2")
                 .arg(gib(r.memory_bytes), gib(r.capacity_bytes));
    if (!r.note.empty()) tip += "\n" + QString::fromStdString(r.note);
    if (r.is_reference) tip += QStringLiteral("\nthe scenario's own layout");
    return tip;
  }
  if (role == Qt::TextAlignmentRole)
    return index.column() == Layout || index.column() == Bottleneck
               ? QVariant(Qt::AlignLeft | Qt::AlignVCenter)
               : QVariant(Qt::AlignRight | Qt::AlignVCenter);
  if (role == kSortRole) {
    switch (index.column()) {
      case Rank:
        return index.row();
      case Layout:
        return QString::fromStdString(r.layout);
      case StepTime:
        return r.step_s;
      case TflopsPerGpu:
        return r.tflops_per_gpu;
      case Mfu:
        return r.mfu;
      case Memory:
        return r.memory_bytes;
      case Headroom:
        return r.headroom_bytes;
      case Bubble:
        return r.bubble_fraction;
      case ExposedComm:
        return r.exposed_comm_fraction;
      case Bottleneck:
        return QString::fromStdString(r.bottleneck);
      case Source:
        return r.simulated ? 1 : 0;
    }
    return {};
  }
  if (role != Qt::DisplayRole) return {};
  switch (index.column()) {
    case Rank:
      return index.row() + 1;
    case Layout:
      return QString::fromStdString(r.layout) +
             (r.is_reference ? QStringLiteral("  (scenario's)") : QString());
    case StepTime:
      return format_duration(r.step_s);
    case TflopsPerGpu:  // 3 significant digits: CPU "GPUs" run at a few GFLOP/s
      return r.tflops_per_gpu >= 100 ? QString::number(r.tflops_per_gpu, 'f', 0)
                                     : QString::number(r.tflops_per_gpu, 'g', 3);
    case Mfu:
      return percent(r.mfu);
    case Memory:
      return gib(r.memory_bytes) + (ok ? QString() : QStringLiteral("  does not fit"));
    case Headroom:
      return gib(r.headroom_bytes);
    case Bubble:
      return percent(r.bubble_fraction);
    case ExposedComm:
      return percent(r.exposed_comm_fraction);
    case Bottleneck:
      return QString::fromStdString(r.bottleneck);
    case Source:
      return r.simulated ? QStringLiteral("simulated") : QStringLiteral("estimated");
  }
  return {};
}

QVariant PlanResultsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole || orientation != Qt::Horizontal)
    return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case Rank:
      return QStringLiteral("#");
    case Layout:
      return QStringLiteral("layout");
    case StepTime:
      return QStringLiteral("step time");
    case TflopsPerGpu:
      return QStringLiteral("TFLOP/s/GPU");
    case Mfu:
      return QStringLiteral("MFU");
    case Memory:
      return QStringLiteral("memory");
    case Headroom:
      return QStringLiteral("headroom");
    case Bubble:
      return QStringLiteral("bubble");
    case ExposedComm:
      return QStringLiteral("exposed comm");
    case Bottleneck:
      return QStringLiteral("bottleneck");
    case Source:
      return QStringLiteral("source");
  }
  return {};
}

void TaskSearchModel::search(const TimelineScene& scene, const QString& text, std::size_t limit) {
  beginResetModel();
  scene_ = &scene;
  hits_.clear();
  truncated_ = false;
  for (int t = 0; t < 2; ++t) {
    const auto& data = scene.timeline(t);
    if (!data || hits_.size() >= limit) continue;
    for (const auto& [lane, span] : data->find(text, limit - hits_.size() + 1)) {
      if (hits_.size() == limit) {
        truncated_ = true;
        break;
      }
      hits_.push_back(Hit{t, lane, span});
    }
  }
  endResetModel();
}

int TaskSearchModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(hits_.size());
}

int TaskSearchModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kColumns;
}

QVariant TaskSearchModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid) ||
      !scene_)
    return {};
  const Hit& h = hit(index.row());
  const TimelineData& data = *scene_->timeline(h.timeline);
  const Lane& lane = data.lanes()[h.lane];
  const Span& s = lane.spans[h.span];
  if (role == kSortRole) {
    switch (index.column()) {
      case Name:
        return data.name(s);
      case Source:
        return h.timeline;
      case RankColumn:
        return lane.rank;
      case SubLane:
        return static_cast<int>(lane.sub_lane);
      case Start:
        return s.start;
      case Duration:
        return s.end - s.start;
    }
    return {};
  }
  if (role == Qt::ToolTipRole) return data.tooltip(s);
  if (role != Qt::DisplayRole) return {};
  switch (index.column()) {
    case Name:
      return data.name(s);
    case Source:
      return data.measured() ? QStringLiteral("measured") : QStringLiteral("predicted");
    case RankColumn:
      return lane.rank;
    case SubLane:
      return sub_lane_name(lane.sub_lane);
    case Start:
      return format_duration(s.start);
    case Duration:
      return format_duration(s.end - s.start);
  }
  return {};
}

QVariant TaskSearchModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole || orientation != Qt::Horizontal)
    return QAbstractTableModel::headerData(section, orientation, role);
  switch (section) {
    case Name:
      return QStringLiteral("task");
    case Source:
      return QStringLiteral("timeline");
    case RankColumn:
      return QStringLiteral("rank");
    case SubLane:
      return QStringLiteral("stream");
    case Start:
      return QStringLiteral("start");
    case Duration:
      return QStringLiteral("duration");
  }
  return {};
}

}  // namespace parallax::gui
