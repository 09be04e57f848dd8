// A simulation Report as JSON with numbers as numbers (the keys scripts and CI gates read).
#pragma once

#include "parallax/parallax.pb.h"
#include "parallax/traces/json_writer.h"

#include <string>

namespace parallax::cli {

void write_report(traces::JsonWriter& w, const Report& report);
// The critical path's fields (tasks, compute_s, comm_s, wait_s, by_op, segments) into an open object.
void write_critical_path_fields(traces::JsonWriter& w, const CriticalPath& path);
std::string report_json(const Report& report);

}  // namespace parallax::cli
