#pragma once

#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/stack.h"

// Administrators in e2e tests: the operator command and the second factor.
namespace stadtportal::e2e {

// Runs the operator command stadtportal-admin with the stack's configuration; returns
// its exit code and fills `output` with what it printed.
int RunAdmin(const Stack& stack, const std::vector<std::string>& args, std::string* output = nullptr);
// Runs a service binary's operator command (`stadtportal-<service> ARGS…`) with that
// service's configuration (its database role); returns its exit code and fills `output`.
int RunServiceCommand(const Stack& stack, const std::string& service, const std::vector<std::string>& args,
                      std::string* output = nullptr);
// The TOTP code of a base32 secret for the current time step (+ `offset` steps).
std::string TotpNow(const std::string& secret_base32, int64_t offset = 0);
// The enrolment code in what the operator command printed ("" if none).
std::string EnrolmentCode(const std::string& admin_output);
// A new account granted tenant-admin by the operator command, logged in, without a
// second factor; `email` receives its address, `enrolment_code` the code printed for it.
nlohmann::json AdminWithoutSecondFactor(Stack& stack, httplib::Client& c, std::string* email = nullptr,
                                        std::string* enrolment_code = nullptr);
// Enrols a second factor for the session's account with the operator's enrolment code
// and confirms it (the session has passed it); returns the base32 secret.
std::string EnrolSecondFactor(httplib::Client& c, const nlohmann::json& login, const std::string& enrolment_code);

}  // namespace stadtportal::e2e
