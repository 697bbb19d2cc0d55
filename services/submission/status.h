#pragma once

#include <string_view>

// The life of a submission: which status may follow which, and who may cause it.
//
//   submitted ─────────────┬──→ delivered ──→ received_by_department ─┬→ in_progress ⇄ information_requested
//   awaiting_payment → paid ┘                                           └→ approved | rejected → closed
//
// received_by_department may also follow submitted or paid directly (the department's
// acknowledgement can overtake the delivery's); in_progress, information_requested,
// approved and rejected follow received_by_department, in_progress or
// information_requested; closed follows any of those and approved or rejected. While no
// decision is made (approved, rejected, withdrawn, closed) the applicant may withdraw.
namespace stadtportal::submission {

enum class Actor {
  kApplicant,   // Withdraws.
  kPayment,     // payment.succeeded: awaiting_payment → paid.
  kDelivery,    // The connector's delivery events: delivered, received_by_department.
  kDepartment,  // SetStatus from the department's side.
};

// One of the eleven statuses.
bool IsStatus(std::string_view status);
// The first status of a new submission.
std::string_view InitialStatus(bool fee_due);
// Whether the applicant may still withdraw (no decision yet).
bool Withdrawable(std::string_view status);
// Whether the procedure has ended (approved, rejected, withdrawn, closed): the submission
// is in the archive view, and its retention runs from the latest such change.
bool Closed(std::string_view status);
// Whether `actor` may ever set `to` (e.g. the statuses a department may send).
bool MayCause(Actor actor, std::string_view to);
// Whether `to` may follow `from`, whoever causes it.
bool Follows(std::string_view from, std::string_view to);
// Whether `actor` may move a submission from `from` to `to`.
bool MayMove(Actor actor, std::string_view from, std::string_view to);

}  // namespace stadtportal::submission
