// A simulation Report as JSON with numbers as numbers (the keys scripts and CI gates read).
#pragma once

#include "parallax/parallax.pb.h"
#include "parallax/traces/json_writer.h"

#include <string>

namespace parallax::cli {

void write_report(traces::JsonWriter& w, const Report& report);
std::string report_json(const Report& report);

}  // namespace parallax::cli
