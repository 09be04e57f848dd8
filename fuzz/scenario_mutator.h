// The scenario targets' custom mutation: a scenario that parses gets one of its numbers (any
// numeric field of the Scenario message tree, set or not) replaced by an extreme value (NaN, +-inf,
// 0, -1, 1e300, 2^31, 2^63, or the nearest the field's type holds) and is written back in the same
// format. Byte mutations rarely turn "4" into "nan" in the right place, and those values are what
// crashes a simulator or wraps a product; libFuzzer's byte mutation still covers the syntax. A
// header of its own so that the gcc tests can check it without libFuzzer.
#pragma once

#include "parallax/parallax.pb.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace parallax::fuzz {

namespace detail {

namespace pb = google::protobuf;

// Most inputs a fuzzer makes do not parse; saying so on stderr each time would only slow it down.
class QuietErrors : public pb::io::ErrorCollector {
 public:
  void AddError(int, pb::io::ColumnNumber, const std::string&) override {}
};

using FieldPath = std::vector<const pb::FieldDescriptor*>;

// Every numeric field below `type`, as the path of fields that leads to it. Paths, not the fields
// of one message: creating every sub-message on the way would change the scenario (an empty
// gemm_efficiency table replaces the preset's), so only the chosen field's parents are created.
inline void numeric_fields(const pb::Descriptor* type, FieldPath& path,
                           std::vector<FieldPath>& out) {
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    path.push_back(f);
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (!f->is_repeated()) numeric_fields(f->message_type(), path, out);
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
      case pb::FieldDescriptor::CPPTYPE_INT32:
      case pb::FieldDescriptor::CPPTYPE_INT64:
      case pb::FieldDescriptor::CPPTYPE_UINT32:
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        out.push_back(path);
        break;
      default:
        break;
    }
    path.pop_back();
  }
}

// Integers: the value converted as a file would hold it, saturated to the type's range (NaN is 0).
template <typename T>
T saturated(double v) {
  if (v != v) return 0;
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest()))
    return std::numeric_limits<T>::lowest();
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

// Writes `v` into field `f` of `m` (element `index` when repeated, appended when index < 0).
inline void write_number(pb::Message* m, const pb::FieldDescriptor* f, double v, int index) {
  const pb::Reflection* r = m->GetReflection();
  const bool add = f->is_repeated() && index < 0;
  switch (f->cpp_type()) {
#define PARALLAX_FUZZ_SET(CPP, Name, T)                   \
  case pb::FieldDescriptor::CPP:                          \
    if (add)                                              \
      r->Add##Name(m, f, saturated<T>(v));                \
    else if (f->is_repeated())                            \
      r->SetRepeated##Name(m, f, index, saturated<T>(v)); \
    else                                                  \
      r->Set##Name(m, f, saturated<T>(v));                \
    break;
    PARALLAX_FUZZ_SET(CPPTYPE_INT32, Int32, std::int32_t)
    PARALLAX_FUZZ_SET(CPPTYPE_INT64, Int64, std::int64_t)
    PARALLAX_FUZZ_SET(CPPTYPE_UINT32, UInt32, std::uint32_t)
    PARALLAX_FUZZ_SET(CPPTYPE_UINT64, UInt64, std::uint64_t)
#undef PARALLAX_FUZZ_SET
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      if (add)
        r->AddDouble(m, f, v);
      else if (f->is_repeated())
        r->SetRepeatedDouble(m, f, index, v);
      else
        r->SetDouble(m, f, v);
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      if (add)
        r->AddFloat(m, f, static_cast<float>(v));
      else if (f->is_repeated())
        r->SetRepeatedFloat(m, f, index, static_cast<float>(v));
      else
        r->SetFloat(m, f, static_cast<float>(v));
      break;
    default:
      break;
  }
}

}  // namespace detail

// The extreme values written into a field.
inline const std::vector<double>& extreme_numbers() {
  static const std::vector<double> values = {std::numeric_limits<double>::quiet_NaN(),
                                             std::numeric_limits<double>::infinity(),
                                             -std::numeric_limits<double>::infinity(),
                                             0.0,
                                             -1.0,
                                             1e300,
                                             2147483648.0,            // 2^31
                                             9223372036854775808.0};  // 2^63
  return values;
}

// `input` (a Scenario in text format, or JSON when `json`) with one numeric field, chosen by `rng`,
// set to one of extreme_numbers(); nothing when the input does not parse.
template <typename Rng>
std::optional<std::string> mutate_scenario_number(const std::string& input, bool json, Rng& rng) {
  namespace pb = google::protobuf;
  Scenario sc;
  if (json) {
    if (!pb::util::JsonStringToMessage(input, &sc).ok()) return std::nullopt;
  } else {
    detail::QuietErrors quiet;
    pb::TextFormat::Parser parser;
    parser.RecordErrorsTo(&quiet);
    parser.AllowPartialMessage(true);
    if (!parser.ParseFromString(input, &sc)) return std::nullopt;
  }
  std::vector<detail::FieldPath> fields;
  detail::FieldPath path;
  detail::numeric_fields(Scenario::descriptor(), path, fields);
  const detail::FieldPath& chosen = fields[rng() % fields.size()];
  pb::Message* message = &sc;
  for (std::size_t i = 0; i + 1 < chosen.size(); ++i)
    message = message->GetReflection()->MutableMessage(message, chosen[i]);
  const pb::FieldDescriptor* field = chosen.back();
  const double value = extreme_numbers()[rng() % extreme_numbers().size()];
  int index = -1;
  if (field->is_repeated()) {
    const int size = message->GetReflection()->FieldSize(*message, field);
    if (size > 0) index = static_cast<int>(rng() % static_cast<unsigned>(size));
  }
  detail::write_number(message, field, value, index);
  std::string out;
  if (json) {
    if (!pb::util::MessageToJsonString(sc, &out).ok()) return std::nullopt;
  } else if (!pb::TextFormat::PrintToString(sc, &out)) {
    return std::nullopt;
  }
  return out;
}

}  // namespace parallax::fuzz
