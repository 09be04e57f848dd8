// parallax-gui: the desktop app (see gui/README.md). `--screenshot` renders one view headless.
#include "main_window.h"

#include "parallax/traces/io.h"

#include <QApplication>
#include <QBuffer>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  bool screenshot = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--screenshot")) screenshot = true;
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(parallax::gui::usage(), stdout);
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
    // Encoded in memory, then written like every other output: atomically, every error reported.
    QByteArray png;
    QBuffer buffer(&png);
    buffer.open(QIODevice::WriteOnly);
    if (!image.save(&buffer, "PNG")) {
      std::fprintf(stderr, "parallax-gui: %s: cannot encode the PNG\n",
                   qPrintable(options->output));
      return 2;
    }
    try {
      parallax::traces::write_file_atomically(
          options->output.toStdString(),
          std::string_view(png.constData(), static_cast<std::size_t>(png.size())));
    } catch (const parallax::InputError& e) {
      std::fprintf(stderr, "parallax-gui: %s\n", e.what());
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
