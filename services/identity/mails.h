#pragma once

#include <string>

#include "libs/mail/mail.h"

namespace stadtportal::identity {

// The mails of the identity service, in German or English. Links point at the portal
// (STADTPORTAL_PUBLIC_URL); tokens appear only in links, never in logs.
mail::Mail VerificationMail(const std::string& language, const std::string& to, const std::string& link);
mail::Mail AlreadyRegisteredMail(const std::string& language, const std::string& to, const std::string& reset_link);
mail::Mail PasswordResetMail(const std::string& language, const std::string& to, const std::string& link);
// The account was erased at `at` (as written, UTC); `portal` is where to turn if it was not
// the person. Names nothing of the account but its address as recipient.
mail::Mail ErasureNoticeMail(const std::string& language, const std::string& to, const std::string& at,
                             const std::string& portal);

}  // namespace stadtportal::identity
