#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "libs/db/pool.h"
#include "libs/events/events.h"

// The citizen file (Bürgerakte): one timeline per party of what happened to it — each
// status of its submissions, payments and refunds, messages and notices into its mailbox
// and its own replies, reminders, consents given and withdrawn, identity providers linked
// and unlinked. Accounts projects it from the other services' events: the journal
// (file_events) keeps each event it took, the items (file_items) are derived from the
// journal by FileEntryOf, the one derivation the consumer and the rebuild share.
namespace stadtportal::accounts {

// The kinds of item, a fixed set (the `kind` filter of the listing).
bool IsFileKind(const std::string& kind);

// What the file shows of one event: the party's item, with what the party may see only.
struct FileItem {
  std::string kind;
  std::string service_id;     // The online service ("" when the event names none).
  std::string submission_id;  // For the service of items that name only their submission.
  nlohmann::json summary;     // Structured, per kind (docs/api/openapi.yaml, FileItem).
  std::string link;           // The item's own resource, /api/v1/….
};

// An event as the journal keeps it, and its item.
struct FileEntry {
  std::string event_id;  // "<source>-<outbox id>".
  std::string source;
  int64_t sequence = 0;
  std::string topic;
  std::string tenant;
  std::string party_id;
  int64_t occurred_us = 0;  // The publisher's time of the change.
  nlohmann::json payload;
  // None for an event the file keeps without an item of its own: a reminder's message in
  // the mailbox (its reminder.due is the item).
  std::optional<FileItem> item;
};

// The entry of an event of one of the file's topics, checked as hostile input: the event
// id, tenant key, party uuid, time and every text shown (length, no control characters);
// INVALID_ARGUMENT naming the field otherwise.
absl::StatusOr<FileEntry> FileEntryOf(const events::Event& e);

// The consumer's handler for every topic of the file (consumers.cc registers it, behind
// the check for erased parties): journals the event and writes its item, each once (a
// repeat with the same id changes nothing).
absl::Status RecordFileEvent(pqxx::work& tx, const events::Event& e);

struct RebuildCounts {
  int64_t events = 0;   // Journal entries read.
  int64_t items = 0;    // Items written.
  int64_t refused = 0;  // Entries the derivation refuses now (logged by event id).
};
// Recomputes the items of `tenant` ("" for all) from the journal in one transaction: all
// its items are deleted and derived again by FileEntryOf, in the timeline's order.
absl::StatusOr<RebuildCounts> RebuildFile(db::Pool& pool, const std::string& tenant);

// The listing's filters, checked by the caller (Service::ListFileItems).
struct FileQuery {
  std::string tenant;
  std::string party_id;
  std::string kind;                 // "" for all.
  std::string service_id;           // "" for all.
  std::optional<int64_t> from_us;   // occurred_at >= from.
  std::optional<int64_t> until_us;  // occurred_at < until.
  int page_size = 20;
  // After this item (the cursor: its time and event id), or from the start.
  std::optional<std::pair<int64_t, std::string>> after;
};

// The page token of an item (its time and event id), and back; INVALID_ARGUMENT
// "page_token: invalid" for anything this service did not issue.
std::string FileCursor(int64_t occurred_us, const std::string& event_id);
absl::StatusOr<std::pair<int64_t, std::string>> ParseFileCursor(const std::string& token);

}  // namespace stadtportal::accounts
