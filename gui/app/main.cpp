// parallax-gui: the desktop app (see gui/README.md). `--screenshot` renders one view headless.
#include "main_window.h"

#include <QApplication>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  bool screenshot = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--screenshot")) screenshot = true;
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::puts(
          "usage: parallax-gui [SCENARIO.pbtxt | TIMELINE.pb | TRACE.<rank>.et ...]\n"
          "       parallax-gui --screenshot FILE.png --view planner|timeline|breakdown\n"
          "           [--scenario S | --chakra PREFIX --cluster PRESET [--comm-groups F]]\n"
          "           [--timeline PRED.pb] [--measured MEAS.pb] [--diff] [--critical-path]\n"
          "           [--search TEXT] [--size WxH]\n"
          "A Chakra trace (one PREFIX.<rank>.et per rank) is imported and simulated on the\n"
          "cluster you choose; its timelines (parallax simulate --chakra --timeline, parallax\n"
          "exec --chakra -o) carry the imported graph and open like any other.\n"
          "The screenshot mode renders the view offscreen at a fixed size (1600x1000) and exits.");
      return 0;
    }
  }
  // Headless rendering needs no display.
  if (screenshot && qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
    qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QCoreApplication::setOrganizationName(QStringLiteral("parallax"));
  QCoreApplication::setApplicationName(QStringLiteral("parallax-gui"));
  const QStringList args = app.arguments().mid(1);
  if (screenshot) {
    QString error;
    const auto options = parallax::gui::parse_screenshot_args(args, &error);
    if (!options) {
      std::fprintf(stderr, "parallax-gui: %s\n", qPrintable(error));
      return 2;
    }
    const QImage image = parallax::gui::render_view(*options, &error);
    if (image.isNull()) {
      std::fprintf(stderr, "parallax-gui: %s\n", qPrintable(error));
      return 2;
    }
    if (!image.save(options->output, "PNG")) {
      std::fprintf(stderr, "parallax-gui: %s: cannot write the PNG (is the directory writable?)\n",
                   qPrintable(options->output));
      return 2;
    }
    return 0;
  }
  parallax::gui::MainWindow window;
  window.show();
  for (const QString& path : args)
    if (!path.startsWith(QChar('-'))) window.open_file(path);
  return app.exec();
}
