#include "services/accounts/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::accounts {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kPartyColumns[] =
    "p.id::text, p.tenant, p.kind, p.display_name, coalesce(p.identity_account_id::text, ''), "
    "(extract(epoch FROM p.created_at) * 1000000)::bigint";
// kPartyColumns, then the organisation's details and the member's role (indexes 6-13).
constexpr char kOrganisationColumns[] =
    "p.id::text, p.tenant, p.kind, p.display_name, '', (extract(epoch FROM p.created_at) * 1000000)::bigint, "
    "o.legal_form, o.register_number, o.street, o.house_number, o.postcode, o.city, o.country, m.role";

v1::Party ToParty(const pqxx::row& r) {
  v1::Party p;
  p.set_id(r[0].as<std::string>());
  p.mutable_tenant()->set_key(r[1].as<std::string>());
  p.set_kind(r[2].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON : common::v1::PARTY_KIND_ORGANISATION);
  p.set_display_name(r[3].as<std::string>());
  p.set_identity_account_id(r[4].as<std::string>());
  *p.mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  return p;
}

v1::Organisation ToOrganisation(const pqxx::row& r) {
  v1::Organisation o;
  *o.mutable_party() = ToParty(r);
  const auto form = r[6].as<std::string>();
  o.set_legal_form(form == "company"       ? v1::LEGAL_FORM_COMPANY
                   : form == "association" ? v1::LEGAL_FORM_ASSOCIATION
                                           : v1::LEGAL_FORM_AUTHORITY);
  o.set_register_number(r[7].as<std::string>());
  auto* a = o.mutable_address();
  a->set_street(r[8].as<std::string>());
  a->set_house_number(r[9].as<std::string>());
  a->set_postcode(r[10].as<std::string>());
  a->set_city(r[11].as<std::string>());
  a->set_country(r[12].as<std::string>());
  o.set_my_role(ParseRole(r[13].as<std::string>()));
  return o;
}

v1::Membership ToMembership(const pqxx::row& r) {
  // kPartyColumns of the person, then organisation id, role, since.
  v1::Membership m;
  *m.mutable_person() = ToParty(r);
  m.set_organisation_id(r[6].as<std::string>());
  m.set_role(ParseRole(r[7].as<std::string>()));
  *m.mutable_since() = TimeUtil::MicrosecondsToTimestamp(r[8].as<int64_t>());
  return m;
}

}  // namespace

std::string RoleName(v1::Role r) {
  switch (r) {
    case v1::ROLE_OWNER: return "owner";
    case v1::ROLE_ADMIN: return "admin";
    case v1::ROLE_MEMBER: return "member";
    default: return "";
  }
}

v1::Role ParseRole(const std::string& s) {
  if (s == "owner") return v1::ROLE_OWNER;
  if (s == "admin") return v1::ROLE_ADMIN;
  if (s == "member") return v1::ROLE_MEMBER;
  return v1::ROLE_UNSPECIFIED;
}

void Store::Prepare(pqxx::connection& conn) {
  const std::string party = kPartyColumns;
  const std::string org = kOrganisationColumns;
  const std::string member_columns =
      party + ", m.organisation_id::text, m.role, (extract(epoch FROM m.since) * 1000000)::bigint";
  conn.prepare("accounts_create_party",
               "INSERT INTO parties AS p (tenant, kind, display_name, identity_account_id) "
               "VALUES ($1, $2, $3, nullif($4, '')::uuid) RETURNING " +
                   party);
  conn.prepare("accounts_get_party", "SELECT " + party + " FROM parties p WHERE p.tenant = $1 AND p.id = $2::uuid");
  conn.prepare(
      "accounts_ensure_person",
      "INSERT INTO parties (tenant, kind, display_name, identity_account_id) VALUES ($1, 'person', '', $2::uuid) "
      "ON CONFLICT (tenant, identity_account_id) DO NOTHING");
  conn.prepare("accounts_person_of",
               "SELECT " + party + " FROM parties p WHERE p.tenant = $1 AND p.identity_account_id = $2::uuid");
  conn.prepare(
      "accounts_insert_organisation",
      "INSERT INTO organisations (party_id, tenant, legal_form, register_number, street, house_number, postcode, "
      "city, country) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9)");
  conn.prepare("accounts_insert_membership",
               "INSERT INTO memberships (tenant, organisation_id, person_id, role) VALUES ($1, $2::uuid, $3::uuid, $4) "
               "ON CONFLICT (organisation_id, person_id) DO NOTHING");
  conn.prepare("accounts_get_organisation",
               "SELECT " + org +
                   " FROM parties p JOIN organisations o ON o.party_id = p.id "
                   "JOIN memberships m ON m.organisation_id = p.id AND m.person_id = $3::uuid "
                   "WHERE p.tenant = $1 AND p.id = $2::uuid");
  conn.prepare("accounts_organisations_of",
               "SELECT " + org +
                   " FROM parties p JOIN organisations o ON o.party_id = p.id "
                   "JOIN memberships m ON m.organisation_id = p.id WHERE m.tenant = $1 AND m.person_id = $2::uuid "
                   "ORDER BY p.display_name, p.id");
  conn.prepare("accounts_members", "SELECT " + member_columns +
                                       " FROM memberships m JOIN parties p ON p.id = m.person_id "
                                       "WHERE m.tenant = $1 AND m.organisation_id = $2::uuid ORDER BY m.since, p.id");
  conn.prepare("accounts_member",
               "SELECT " + member_columns +
                   " FROM memberships m JOIN parties p ON p.id = m.person_id "
                   "WHERE m.tenant = $1 AND m.organisation_id = $2::uuid AND m.person_id = $3::uuid");
  conn.prepare(
      "accounts_role_of",
      "SELECT role FROM memberships WHERE tenant = $1 AND organisation_id = $2::uuid AND person_id = $3::uuid");
  // Locks the organisation's memberships so that owner counts stay true under concurrency.
  conn.prepare("accounts_owners_locked",
               "SELECT count(*) FILTER (WHERE role = 'owner') FROM "
               "(SELECT role FROM memberships WHERE organisation_id = $1::uuid FOR UPDATE) m");
  conn.prepare(
      "accounts_set_role",
      "UPDATE memberships SET role = $4 WHERE tenant = $1 AND organisation_id = $2::uuid AND person_id = $3::uuid");
  conn.prepare("accounts_delete_membership",
               "DELETE FROM memberships WHERE tenant = $1 AND organisation_id = $2::uuid AND person_id = $3::uuid");
  conn.prepare("accounts_insert_invitation",
               "INSERT INTO invitations (tenant, organisation_id, email, role, token_hash, invited_by, expires_at) "
               "VALUES ($1, $2::uuid, $3, $4, $5, $6::uuid, now() + make_interval(secs => $7)) "
               "RETURNING id::text, (extract(epoch FROM expires_at) * 1000000)::bigint");
  conn.prepare("accounts_answer_invitation",
               "UPDATE invitations SET answered_at = now(), answer = $2 WHERE token_hash = $1 AND answered_at IS NULL "
               "AND expires_at > now() RETURNING tenant, organisation_id::text, role");
  mail::Outbox::Prepare(conn);
}

absl::StatusOr<v1::Party> Store::CreateParty(const NewParty& p) {
  v1::Party out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    out = ToParty(tx.exec_prepared1("accounts_create_party", p.tenant, p.kind, p.display_name, p.identity_account_id));
    return absl::OkStatus();
  });
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError("this identity account already has a person party");
  }
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Party> Store::GetParty(const std::string& tenant, const std::string& id) {
  v1::Party out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("accounts_get_party", tenant, id);
    if (res.empty()) return absl::NotFoundError("party not found");
    out = ToParty(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Party> Store::EnsurePerson(const std::string& tenant, const std::string& identity_account_id) {
  v1::Party out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("accounts_ensure_person", tenant, identity_account_id);
    out = ToParty(tx.exec_prepared1("accounts_person_of", tenant, identity_account_id));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Organisation> Store::CreateOrganisation(const NewOrganisation& o) {
  v1::Organisation out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto party = ToParty(tx.exec_prepared1("accounts_create_party", o.tenant, "organisation", o.name, ""));
    const auto& a = o.address;
    tx.exec_prepared("accounts_insert_organisation", party.id(), o.tenant, o.legal_form, o.register_number, a.street(),
                     a.house_number(), a.postcode(), a.city(), a.country());
    tx.exec_prepared("accounts_insert_membership", o.tenant, party.id(), o.owner_id, "owner");
    out = ToOrganisation(tx.exec_prepared1("accounts_get_organisation", o.tenant, party.id(), o.owner_id));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Organisation> Store::GetOrganisation(const std::string& tenant, const std::string& id,
                                                        const std::string& person_id) {
  v1::Organisation out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("accounts_get_organisation", tenant, id, person_id);
    if (res.empty()) return absl::NotFoundError("organisation not found");
    out = ToOrganisation(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<v1::Organisation>> Store::ListOrganisationsOf(const std::string& tenant,
                                                                         const std::string& person_id) {
  std::vector<v1::Organisation> out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    for (const auto& r : tx.exec_prepared("accounts_organisations_of", tenant, person_id))
      out.push_back(ToOrganisation(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<v1::Membership>> Store::ListMembers(const std::string& tenant,
                                                               const std::string& organisation_id) {
  std::vector<v1::Membership> out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    for (const auto& r : tx.exec_prepared("accounts_members", tenant, organisation_id)) out.push_back(ToMembership(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<std::string>> Store::RoleOf(const std::string& tenant, const std::string& organisation_id,
                                                         const std::string& person_id) {
  std::optional<std::string> out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("accounts_role_of", tenant, organisation_id, person_id);
    if (!res.empty()) out = res[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Invitation> Store::Invite(const NewInvitation& i, const mail::Mail& mail) {
  v1::Invitation out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto r = tx.exec_prepared1("accounts_insert_invitation", i.tenant, i.organisation_id, i.email, i.role,
                               pqxx::binarystring(i.token_hash), i.invited_by, static_cast<double>(i.ttl.count()));
    out.set_id(r[0].as<std::string>());
    out.set_organisation_id(i.organisation_id);
    out.set_email(i.email);
    out.set_role(ParseRole(i.role));
    *out.mutable_expires_at() = TimeUtil::MicrosecondsToTimestamp(r[1].as<int64_t>());
    mail::Outbox::Enqueue(tx, i.tenant, mail);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Membership> Store::AcceptInvitation(const std::string& token_hash, const std::string& person_id) {
  v1::Membership out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("accounts_answer_invitation", pqxx::binarystring(token_hash), "accepted");
    if (res.empty()) return absl::InvalidArgumentError("token: invalid_token");
    const auto tenant = res[0][0].as<std::string>();
    const auto org = res[0][1].as<std::string>();
    tx.exec_prepared("accounts_insert_membership", tenant, org, person_id, res[0][2].as<std::string>());
    out = ToMembership(tx.exec_prepared1("accounts_member", tenant, org, person_id));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status Store::DeclineInvitation(const std::string& token_hash) {
  return pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("accounts_answer_invitation", pqxx::binarystring(token_hash), "declined");
    if (res.empty()) return absl::InvalidArgumentError("token: invalid_token");
    return absl::OkStatus();
  });
}

namespace {

// Inside a transaction holding the organisation's membership rows: would the change
// leave the organisation without an owner?
bool LastOwner(pqxx::work& tx, const std::string& tenant, const std::string& org, const std::string& person) {
  const auto owners = tx.exec_prepared1("accounts_owners_locked", org)[0].as<int64_t>();
  auto role = tx.exec_prepared("accounts_role_of", tenant, org, person);
  return owners <= 1 && !role.empty() && role[0][0].as<std::string>() == "owner";
}

}  // namespace

absl::StatusOr<v1::Membership> Store::ChangeRole(const std::string& tenant, const std::string& organisation_id,
                                                 const std::string& person_id, const std::string& role) {
  v1::Membership out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    if (role != "owner" && LastOwner(tx, tenant, organisation_id, person_id)) {
      return absl::FailedPreconditionError("role: last_owner");
    }
    if (tx.exec_prepared0("accounts_set_role", tenant, organisation_id, person_id, role).affected_rows() == 0) {
      return absl::NotFoundError("member not found");
    }
    out = ToMembership(tx.exec_prepared1("accounts_member", tenant, organisation_id, person_id));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status Store::RemoveMember(const std::string& tenant, const std::string& organisation_id,
                                 const std::string& person_id) {
  return pool_.Transact([&](pqxx::work& tx) {
    if (LastOwner(tx, tenant, organisation_id, person_id)) {
      return absl::FailedPreconditionError("person_party_id: last_owner");
    }
    if (tx.exec_prepared0("accounts_delete_membership", tenant, organisation_id, person_id).affected_rows() == 0) {
      return absl::NotFoundError("member not found");
    }
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::accounts
