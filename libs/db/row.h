#pragma once

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include <pqxx/pqxx>

// Reading rows: stores select every column by name (an alias where the column is an
// expression) and read row["name"], never row[3]. Times are selected as microseconds
// since the epoch: (extract(epoch FROM created_at) * 1000000)::bigint AS created_at.
namespace stadtportal::db {

// A time column selected as microseconds since the epoch.
inline google::protobuf::Timestamp Micros(const pqxx::field& f) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(f.as<int64_t>());
}

}  // namespace stadtportal::db
