#include "views.h"

#include "parallax/model/presets.h"
#include "parallax/model/scenario.h"
#include "parallax/traces/io.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QHelpEvent>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QMouseEvent>
#include <QPainter>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollBar>
#include <QSortFilterProxyModel>
#include <QSpinBox>
#include <QSplitter>
#include <QTableView>
#include <QToolTip>
#include <QVBoxLayout>
#include <QWheelEvent>
#include <QtConcurrent/QtConcurrentRun>

#include <algorithm>
#include <cmath>

namespace parallax::gui {

// ---------------------------------------------------------------------------------------------
// Planner
// ---------------------------------------------------------------------------------------------

namespace {

QSpinBox* spin(int lo, int hi, int value) {
  auto* s = new QSpinBox;
  s->setRange(lo, hi);
  s->setValue(value);
  s->setGroupSeparatorShown(true);
  return s;
}

const QString kCustom = QStringLiteral("custom (fields below)");
const QString kFromScenario = QStringLiteral("from the scenario");

}  // namespace

PlannerView::PlannerView(QWidget* parent) : QWidget(parent) {
  model_ = new QComboBox;
  for (const auto& name : model::bundled_presets(model::PresetKind::Model)) model_->addItem(QString::fromStdString(name));
  model_->addItem(kCustom);
  model_->setCurrentText(QStringLiteral("gpt2-1.5b"));
  cluster_ = new QComboBox;
  QDir clusters(QString::fromStdString((model::data_dir() / "clusters").string()));
  for (const QString& f : clusters.entryList({QStringLiteral("*.pbtxt")}, QDir::Files, QDir::Name))
    cluster_->addItem(f.chopped(6));
  cluster_->setCurrentText(QStringLiteral("dgx-a100-80g"));
  layers_ = spin(1, 1000, 8);
  hidden_ = spin(1, 1 << 20, 512);
  heads_ = spin(1, 4096, 8);
  seq_ = spin(1, 1 << 20, 256);
  vocab_ = spin(1, 1 << 22, 1024);
  gpus_ = spin(1, 1 << 20, 64);
  batch_ = spin(1, 1 << 24, 512);
  top_ = spin(1, 100, 5);
  custom_fields_ = new QWidget;
  auto* custom = new QHBoxLayout(custom_fields_);
  custom->setContentsMargins(0, 0, 0, 0);
  for (auto [label, box] : {std::pair{"layers", layers_},
                            {"hidden", hidden_},
                            {"heads", heads_},
                            {"seq", seq_},
                            {"vocab", vocab_}}) {
    custom->addWidget(new QLabel(QString::fromLatin1(label)));
    box->setObjectName(QString::fromLatin1(label));
    custom->addWidget(box);
  }
  custom->addStretch();
  auto* form = new QFormLayout;
  form->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
  model_->setMinimumContentsLength(24);
  cluster_->setMinimumContentsLength(24);
  model_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  cluster_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  form->addRow(QStringLiteral("Model"), model_);
  form->addRow(QStringLiteral("Custom model"), custom_fields_);
  form->addRow(QStringLiteral("Cluster"), cluster_);
  form->addRow(QStringLiteral("GPUs"), gpus_);
  form->addRow(QStringLiteral("Global batch"), batch_);
  form->addRow(QStringLiteral("Simulate best"), top_);
  plan_button_ = new QPushButton(QStringLiteral("Plan"));
  plan_button_->setDefault(true);
  cancel_button_ = new QPushButton(QStringLiteral("Cancel"));
  cancel_button_->setEnabled(false);
  progress_ = new QProgressBar;
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  progress_->setFormat(QStringLiteral("idle"));
  progress_->setTextVisible(true);
  status_ = new QLabel;
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(plan_button_);
  buttons->addWidget(cancel_button_);
  buttons->addWidget(progress_, 1);
  results_ = new PlanResultsModel(this);
  proxy_ = new QSortFilterProxyModel(this);
  proxy_->setSourceModel(results_);
  proxy_->setSortRole(kSortRole);
  table_ = new QTableView;
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(PlanResultsModel::StepTime, Qt::AscendingOrder);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setAlternatingRowColors(true);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setStretchLastSection(true);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addLayout(buttons);
  layout->addWidget(status_);
  layout->addWidget(table_, 1);

  connect(model_, &QComboBox::currentTextChanged, this, [this] { custom_toggled(); });
  connect(plan_button_, &QPushButton::clicked, this, &PlannerView::start_plan);
  connect(cancel_button_, &QPushButton::clicked, this, &PlannerView::cancel_plan);
  connect(table_->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this] {
    const auto rows = table_->selectionModel()->selectedRows();
    if (rows.isEmpty()) return;
    const int r = proxy_->mapToSource(rows.front()).row();
    emit row_chosen(results_->row(r).scenario, QString::fromStdString(results_->row(r).layout));
  });
  custom_toggled();
}

void PlannerView::custom_toggled() {
  custom_fields_->setEnabled(model_->currentText() == kCustom);
}

void PlannerView::set_from_scenario(const Scenario& scenario) {
  const ModelSpec& m = scenario.model();
  model_->setCurrentText(kCustom);
  layers_->setValue(m.num_layers());
  hidden_->setValue(m.hidden_size());
  heads_->setValue(m.num_heads());
  seq_->setValue(m.seq_length());
  vocab_->setValue(m.vocab_size());
  scenario_cluster_ = scenario.cluster();
  scenario_model_ = scenario.model();
  scenario_layout_ = scenario.layout();
  scenario_options_ = scenario.options();
  if (cluster_->findText(kFromScenario) < 0) cluster_->insertItem(0, kFromScenario);
  cluster_->setItemText(0, kFromScenario + QStringLiteral(" (%1)").arg(
                                               QString::fromStdString(scenario.cluster().name())));
  cluster_->setCurrentIndex(0);
  gpus_->setValue(
      static_cast<int>(scenario.cluster().num_nodes() * scenario.cluster().gpus_per_node()));
  batch_->setValue(static_cast<int>(scenario.layout().global_batch_size()));
}

planner::PlanRequest PlannerView::request() const {
  planner::PlanRequest r;
  if (model_->currentText() == kCustom) {
    // A scenario's model keeps its other fields (precision, FFN size, embeddings).
    if (scenario_model_) r.model = *scenario_model_;
    ModelSpec& m = r.model;
    if (!m.has_name()) m.set_name("custom");
    m.set_num_layers(layers_->value());
    m.set_hidden_size(hidden_->value());
    m.set_num_heads(heads_->value());
    m.set_seq_length(seq_->value());
    m.set_vocab_size(vocab_->value());
  } else {
    r.model = model::load_model(model_->currentText().toStdString());
  }
  r.gpus = gpus_->value();
  r.global_batch_size = batch_->value();
  if (cluster_->currentIndex() == 0 && scenario_cluster_ &&
      cluster_->currentText().startsWith(kFromScenario))
    r.cluster = model::resize_cluster(*scenario_cluster_, r.gpus);
  else
    r.cluster = model::resolve_cluster(cluster_->currentText().toStdString(), r.gpus);
  if (scenario_model_ && model_->currentText() == kCustom) {
    r.fixed = scenario_layout_;
    r.options = scenario_options_;
  }
  return r;
}

void PlannerView::start_plan() {
  if (watcher_) return;
  planner::PlanRequest req;
  try {
    req = request();
  } catch (const std::exception& e) {
    status_->setText(QStringLiteral("<span style='color:#b00'>%1</span>")
                         .arg(QString::fromStdString(e.what()).toHtmlEscaped()));
    emit plan_finished(false);
    return;
  }
  cancel_ = std::make_shared<std::atomic<bool>>(false);
  plan_button_->setEnabled(false);
  cancel_button_->setEnabled(true);
  progress_->setValue(0);
  progress_->setFormat(QStringLiteral("estimating layouts"));
  status_->setText(
      QStringLiteral("planning %1 on %2 GPUs\u2026").arg(model_->currentText()).arg(req.gpus));
  results_->clear();
  watcher_ = new QFutureWatcher<Outcome>(this);
  connect(watcher_, &QFutureWatcher<Outcome>::finished, this, [this] {
    Outcome out = watcher_->result();
    watcher_->deleteLater();
    watcher_ = nullptr;
    plan_button_->setEnabled(true);
    cancel_button_->setEnabled(false);
    if (out.result) {
      show_result(std::move(*out.result));
      emit plan_finished(true);
      return;
    }
    progress_->setValue(0);
    progress_->setFormat(out.cancelled ? QStringLiteral("cancelled") : QStringLiteral("failed"));
    status_->setText(
        out.cancelled
            ? QStringLiteral("Plan cancelled.")
            : QStringLiteral("<span style='color:#b00'>%1</span>").arg(out.error.toHtmlEscaped()));
    emit plan_finished(false);
  });
  const auto cancel = cancel_;
  const int top_k = top_->value();
  QPointer<PlannerView> self(this);
  watcher_->setFuture(
      QtConcurrent::run([req = std::move(req), cancel, self, top_k]() -> Outcome {
        Outcome out;
        planner::PlanOptions options;
        options.top_k = top_k;
        options.jobs = 1;
        options.cancelled = [cancel] { return cancel->load(); };
        options.progress = [self](const planner::Progress& p) {
          const double f = p.total ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0;
          // Estimation is fast, simulation slow: estimation fills the first 20% of the bar.
          const int value = static_cast<int>(
              1000 * (p.phase == planner::Progress::Phase::Estimate ? 0.2 * f : 0.2 + 0.8 * f));
          const QString text =
              p.phase == planner::Progress::Phase::Estimate
                  ? QStringLiteral("estimating %1 / %2 layouts").arg(p.done).arg(p.total)
                  : QStringLiteral("simulating %1 / %2 best").arg(p.done).arg(p.total);
          QMetaObject::invokeMethod(
              self,
              [self, value, text] {
                if (!self) return;
                self->progress_->setValue(value);
                self->progress_->setFormat(text);
              },
              Qt::QueuedConnection);
        };
        try {
          out.result = planner::plan(req, options);
        } catch (const planner::Cancelled&) {
          out.cancelled = true;
        } catch (const std::exception& e) {
          out.error = QString::fromStdString(e.what());
        }
        return out;
      }));
}

void PlannerView::cancel_plan() {
  if (cancel_) cancel_->store(true);
  progress_->setFormat(QStringLiteral("cancelling\u2026"));
}

bool PlannerView::plan_now(QString* error) {
  try {
    planner::PlanOptions options;
    options.top_k = top_->value();
    show_result(planner::plan(request(), options));
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

void PlannerView::show_result(planner::PlanResult result) {
  const auto& p = result.pruning;
  status_->setText(
      QStringLiteral(
          "%1 layouts enumerated, %2 valid and fit; %3 estimated in %4, best %5 simulated in %6. "
          "Select a row to simulate it and see its timeline.")
          .arg(p.enumerated)
          .arg(p.survivors)
          .arg(result.estimated)
          .arg(format_duration(result.estimate_seconds))
          .arg(result.rows.size())
          .arg(format_duration(result.simulate_seconds)));
  progress_->setValue(1000);
  progress_->setFormat(QStringLiteral("done"));
  results_->set_result(std::move(result));
  table_->resizeColumnsToContents();
  // Long bottleneck sentences would push the last columns out of view: their tooltip has them
  // whole.
  for (int c = 0; c < PlanResultsModel::kColumns; ++c)
    table_->setColumnWidth(c, std::min(table_->columnWidth(c), 380));
}

// ---------------------------------------------------------------------------------------------
// Timeline
// ---------------------------------------------------------------------------------------------

TimelineCanvas::TimelineCanvas(TimelineScene* scene, QWidget* parent)
    : QWidget(parent), scene_(scene) {
  scrollbar_ = new QScrollBar(Qt::Vertical, this);
  connect(scrollbar_, &QScrollBar::valueChanged, this, [this](int v) {
    scroll_y_ = v;
    update();
  });
  setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  setMinimumSize(400, 200);
  setAttribute(Qt::WA_OpaquePaintEvent);
  last_wheel_.start();
}

int TimelineCanvas::plot_width() const {
  return width() - scrollbar_->sizeHint().width();
}

void TimelineCanvas::update_scrollbar() {
  const int visible = height() - TimelineScene::kAxisHeight;
  scrollbar_->setGeometry(width() - scrollbar_->sizeHint().width(), 0,
                          scrollbar_->sizeHint().width(), height());
  scrollbar_->setRange(0, std::max(0, scene_->content_height() - visible));
  scrollbar_->setPageStep(std::max(1, visible));
  scrollbar_->setSingleStep(TimelineScene::kLaneHeight);
  scroll_y_ = scrollbar_->value();
}

void TimelineCanvas::scene_changed(bool refit) {
  update_scrollbar();
  if (refit) {
    history_.clear();
    fit();
  }
  update();
}

void TimelineCanvas::scroll_to_row(int row) {
  if (row < 0 || row >= static_cast<int>(scene_->rows().size())) return;
  const SceneRow& r = scene_->rows()[static_cast<std::size_t>(row)];
  const int visible = height() - TimelineScene::kAxisHeight;
  if (r.y < scroll_y_ || r.y + r.height > scroll_y_ + visible)
    scrollbar_->setValue(std::max(0, r.y - visible / 3));
}

void TimelineCanvas::fit() {
  axis_ = scene_->full_axis(plot_width());
  update();
  emit view_changed();
}

void TimelineCanvas::back() {
  if (history_.empty()) return;
  const auto [s, e] = history_.pop();
  axis_.set_range(s, e);
  update();
  emit view_changed();
}

void TimelineCanvas::zoom_to(double start_s, double end_s) {
  history_.push(axis_.start(), axis_.end());
  axis_.set_range(start_s, end_s);
  update();
  emit view_changed();
}

void TimelineCanvas::paintEvent(QPaintEvent*) {
  QPainter p(this);
  scene_->paint(p, QSize(plot_width(), height()), axis_, scroll_y_);
  if (drag_ == Drag::Range) {
    const int a = std::min(press_.x(), last_.x()), b = std::max(press_.x(), last_.x());
    p.fillRect(QRect(a, TimelineScene::kAxisHeight, b - a, height()), QColor(0x30, 0x80, 0xff, 50));
    p.setPen(QColor(0x30, 0x80, 0xff));
    p.drawText(QPoint(a + 4, TimelineScene::kAxisHeight + 14),
               format_duration(std::abs(axis_.to_time(b) - axis_.to_time(a))));
  }
}

void TimelineCanvas::resizeEvent(QResizeEvent*) {
  const bool first = axis_.width() <= 1;
  axis_.set_geometry(TimelineScene::kLabelWidth,
                     std::max(1, plot_width() - TimelineScene::kLabelWidth));
  update_scrollbar();
  if (first) fit();
}

void TimelineCanvas::wheelEvent(QWheelEvent* e) {
  if (e->modifiers() & Qt::ShiftModifier) {  // shift+wheel scrolls the lanes
    scrollbar_->setValue(scrollbar_->value() - e->angleDelta().y());
    return;
  }
  const double dy = e->angleDelta().y() ? e->angleDelta().y() : e->angleDelta().x();
  if (dy == 0) return;
  // One history entry per burst of wheel steps.
  if (last_wheel_.elapsed() > 600) history_.push(axis_.start(), axis_.end());
  last_wheel_.restart();
  axis_.zoom_at(std::max<double>(TimelineScene::kLabelWidth, e->position().x()),
                std::pow(1.0015, dy));
  update();
  emit view_changed();
}

void TimelineCanvas::mousePressEvent(QMouseEvent* e) {
  press_ = last_ = e->position().toPoint();
  if (e->button() == Qt::LeftButton && press_.x() < TimelineScene::kLabelWidth) {
    const int row = scene_->row_at(press_.y(), scroll_y_);
    if (scene_->toggle_group(row)) scene_changed(false);
    return;
  }
  if (e->button() == Qt::RightButton ||
      (e->button() == Qt::LeftButton && (e->modifiers() & Qt::ShiftModifier)))
    drag_ = Drag::Range;
  else if (e->button() == Qt::LeftButton)
    drag_ = Drag::Pan;
  if (drag_ == Drag::Pan) setCursor(Qt::ClosedHandCursor);
}

void TimelineCanvas::mouseMoveEvent(QMouseEvent* e) {
  const QPoint pos = e->position().toPoint();
  if (drag_ == Drag::Pan) {
    axis_.pan_pixels(pos.x() - last_.x());
    scrollbar_->setValue(scrollbar_->value() - (pos.y() - last_.y()));
    emit view_changed();
  }
  last_ = pos;
  if (drag_ != Drag::None) update();
}

void TimelineCanvas::mouseReleaseEvent(QMouseEvent* e) {
  if (drag_ == Drag::Pan && (e->position().toPoint() - press_).manhattanLength() > 2)
    history_.push(axis_.start(), axis_.end());
  if (drag_ == Drag::Range) {
    const double a = std::min(press_.x(), last_.x()), b = std::max(press_.x(), last_.x());
    if (b - a >= 3) zoom_to(axis_.to_time(a), axis_.to_time(b));
  }
  drag_ = Drag::None;
  unsetCursor();
  update();
}

void TimelineCanvas::keyPressEvent(QKeyEvent* e) {
  if (e->key() == Qt::Key_Backspace ||
      (e->key() == Qt::Key_Left && (e->modifiers() & Qt::AltModifier)))
    back();
  else if (e->key() == Qt::Key_Home || e->key() == Qt::Key_F)
    fit();
  else if (e->key() == Qt::Key_Plus || e->key() == Qt::Key_Equal)
    zoom_to(axis_.to_time(axis_.left() + axis_.width() * 0.25),
            axis_.to_time(axis_.left() + axis_.width() * 0.75));
  else if (e->key() == Qt::Key_Minus)
    zoom_to(axis_.start() - axis_.span() / 2, axis_.end() + axis_.span() / 2);
  else
    QWidget::keyPressEvent(e);
}

bool TimelineCanvas::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(e);
    if (const auto hit = scene_->hit(help->pos().x(), help->pos().y(), axis_, scroll_y_))
      QToolTip::showText(help->globalPos(),
                         scene_->timeline(hit->timeline)->tooltip(scene_->span(*hit)), this);
    else
      QToolTip::hideText();
    return true;
  }
  return QWidget::event(e);
}

TimelineView::TimelineView(QWidget* parent) : QWidget(parent) {
  canvas_ = new TimelineCanvas(&scene_);
  group_ = new QComboBox;
  group_->addItems({QStringLiteral("group by pipeline stage"),
                    QStringLiteral("group by data-parallel replica"),
                    QStringLiteral("group by tensor rank")});
  diff_ = new QCheckBox(QStringLiteral("Diff measured vs predicted"));
  critical_ = new QCheckBox(QStringLiteral("Critical path"));
  search_ = new QLineEdit;
  search_->setPlaceholderText(QStringLiteral("find tasks by name (e.g. fc1, mb3, all_reduce)"));
  search_->setClearButtonEnabled(true);
  search_count_ = new QLabel;
  info_ = new QLabel;
  info_->setWordWrap(true);
  auto* fit = new QPushButton(QStringLiteral("Fit"));
  auto* back = new QPushButton(QStringLiteral("Back"));
  back->setToolTip(QStringLiteral("Previous zoom (Backspace)"));
  auto* bar = new QHBoxLayout;
  bar->addWidget(fit);
  bar->addWidget(back);
  bar->addWidget(group_);
  bar->addWidget(diff_);
  bar->addWidget(critical_);
  bar->addWidget(search_, 1);
  bar->addWidget(search_count_);
  search_model_ = new TaskSearchModel(this);
  search_proxy_ = new QSortFilterProxyModel(this);
  search_proxy_->setSourceModel(search_model_);
  search_proxy_->setSortRole(kSortRole);
  search_results_ = new QTableView;
  search_results_->setModel(search_proxy_);
  search_results_->setSortingEnabled(true);
  search_results_->setSelectionBehavior(QAbstractItemView::SelectRows);
  search_results_->verticalHeader()->hide();
  search_results_->horizontalHeader()->setStretchLastSection(true);
  search_results_->hide();
  splitter_ = new QSplitter(Qt::Vertical);
  splitter_->setObjectName(QStringLiteral("timeline_splitter"));
  splitter_->addWidget(canvas_);
  splitter_->addWidget(search_results_);
  splitter_->setStretchFactor(0, 4);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(bar);
  layout->addWidget(info_);
  layout->addWidget(splitter_, 1);
  info_->setText(
      QStringLiteral("Wheel: zoom. Drag: pan. Shift-drag or right-drag: zoom to a range. "
                     "Backspace: previous zoom. "
                     "Click a group header to collapse it. Hover a task for details."));

  connect(fit, &QPushButton::clicked, canvas_, &TimelineCanvas::fit);
  connect(back, &QPushButton::clicked, canvas_, &TimelineCanvas::back);
  connect(group_, &QComboBox::currentIndexChanged, this, [this](int i) {
    scene_.set_group_by(static_cast<GroupBy>(i));
    canvas_->scene_changed(false);
  });
  connect(diff_, &QCheckBox::toggled, this, [this](bool on) {
    scene_.set_diff(on);
    scene_.set_group_by(scene_.group_by());  // the header text names the colour scale
    canvas_->scene_changed(false);
  });
  connect(critical_, &QCheckBox::toggled, this, [this](bool on) {
    scene_.set_critical(on);
    canvas_->scene_changed(false);
    refresh_controls();
  });
  connect(search_, &QLineEdit::returnPressed, this, &TimelineView::run_search);
  connect(search_, &QLineEdit::textChanged, this, [this](const QString& t) {
    if (t.isEmpty()) run_search();
  });
  connect(search_results_, &QTableView::activated, this, [this](const QModelIndex& index) {
    const auto& h = search_model_->hit(search_proxy_->mapToSource(index).row());
    const Span& s = scene_.timeline(h.timeline)->lanes()[h.lane].spans[h.span];
    const double d = std::max(s.end - s.start, 1e-6);
    canvas_->zoom_to(s.start - 10 * d, s.end + 10 * d);
    for (std::size_t r = 0; r < scene_.rows().size(); ++r)
      if (scene_.rows()[r].kind == SceneRow::Kind::Lane &&
          scene_.rows()[r].timeline == h.timeline &&
          scene_.rows()[r].lane == static_cast<int>(h.lane))
        canvas_->scroll_to_row(static_cast<int>(r));
  });
  refresh_controls();
}

void TimelineView::set_timelines(std::shared_ptr<TimelineData> predicted,
                                 std::shared_ptr<TimelineData> measured) {
  scene_.set_timelines(std::move(predicted), std::move(measured));
  canvas_->scene_changed(true);
  search_model_->search(scene_, {});
  refresh_controls();
}

void TimelineView::refresh_controls() {
  diff_->setEnabled(scene_.diff_available());
  diff_->setToolTip(
      scene_.diff_available()
          ? QStringLiteral("Colour each measured task by its error against the prediction")
          : QStringLiteral("Needs a predicted and a measured timeline of the same scenario. ") +
                scene_.pair_note());
  if (!scene_.diff_available() && diff_->isChecked()) diff_->setChecked(false);
  critical_->setToolTip(
      QStringLiteral("%1 tasks on the critical paths").arg(scene_.critical_tasks()));
}

void TimelineView::run_search() {
  const QString text = search_->text().trimmed();
  const std::size_t n = scene_.set_search(text);
  search_model_->search(scene_, text);
  search_count_->setText(
      text.isEmpty() ? QString() : QStringLiteral("%1 match%2").arg(n).arg(n == 1 ? "" : "es"));
  search_results_->setVisible(!text.isEmpty());
  search_results_->resizeColumnsToContents();
  canvas_->update();
}

// ---------------------------------------------------------------------------------------------
// Breakdown
// ---------------------------------------------------------------------------------------------

class BreakdownView::Chart : public QWidget {
 public:
  explicit Chart(BreakdownView* view) : view_(view) { setMinimumSize(400, 300); }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    if (const Breakdown* b = view_->current())
      paint_breakdown(p, size(), *b);
    else
      paint_breakdown(p, size(), Breakdown{});
  }
  bool event(QEvent* e) override {
    if (e->type() == QEvent::ToolTip) {
      auto* help = static_cast<QHelpEvent*>(e);
      const Breakdown* b = view_->current();
      const QString text = b ? breakdown_tooltip(*b, size(), help->pos()) : QString();
      if (text.isEmpty())
        QToolTip::hideText();
      else
        QToolTip::showText(help->globalPos(), text, this);
      return true;
    }
    return QWidget::event(e);
  }

 private:
  BreakdownView* view_;
};

BreakdownView::BreakdownView(QWidget* parent) : QWidget(parent) {
  source_ = new QComboBox;
  chart_ = new Chart(this);
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(QStringLiteral("Source")));
  bar->addWidget(source_, 1);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(bar);
  layout->addWidget(chart_, 1);
  connect(source_, &QComboBox::currentIndexChanged, chart_, qOverload<>(&QWidget::update));
}

void BreakdownView::set_sources(std::vector<std::pair<QString, Breakdown>> sources) {
  sources_ = std::move(sources);
  source_->blockSignals(true);
  source_->clear();
  for (const auto& [name, b] : sources_) source_->addItem(name);
  source_->blockSignals(false);
  chart_->update();
}

const Breakdown* BreakdownView::current() const {
  const int i = source_->currentIndex();
  return i >= 0 && i < static_cast<int>(sources_.size())
             ? &sources_[static_cast<std::size_t>(i)].second
             : nullptr;
}

bool BreakdownView::event(QEvent* e) {
  return QWidget::event(e);
}

}  // namespace parallax::gui
