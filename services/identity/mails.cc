#include "services/identity/mails.h"

namespace stadtportal::identity {

mail::Mail VerificationMail(const std::string& language, const std::string& to, const std::string& link) {
  if (language == "en") {
    return {to, "Confirm your e-mail address for stadtportal",
            "Hello,\r\n\r\nplease confirm your e-mail address by opening this link within 24 hours:\r\n\r\n" + link +
                "\r\n\r\nIf you did not register, ignore this mail.\r\n"};
  }
  return {
      to, "Bitte bestätigen Sie Ihre E-Mail-Adresse für stadtportal",
      "Guten Tag,\r\n\r\nbitte bestätigen Sie Ihre E-Mail-Adresse innerhalb von 24 Stunden über diesen Link:\r\n\r\n" +
          link + "\r\n\r\nWenn Sie sich nicht registriert haben, ignorieren Sie diese Nachricht.\r\n"};
}

mail::Mail AlreadyRegisteredMail(const std::string& language, const std::string& to, const std::string& reset_link) {
  if (language == "en") {
    return {to, "Someone tried to register with your e-mail address",
            "Hello,\r\n\r\nsomeone tried to register a new stadtportal account with this e-mail address, which "
            "already has one.\r\nIf that was you and you forgot your password, reset it here:\r\n\r\n" +
                reset_link + "\r\n\r\nOtherwise you can ignore this mail.\r\n"};
  }
  return {to, "Registrierungsversuch mit Ihrer E-Mail-Adresse",
          "Guten Tag,\r\n\r\njemand hat versucht, mit dieser E-Mail-Adresse ein neues stadtportal-Konto anzulegen; es "
          "gibt bereits eines.\r\nWaren Sie das und haben Ihr Passwort vergessen, setzen Sie es hier zurück:\r\n\r\n" +
              reset_link + "\r\n\r\nAndernfalls können Sie diese Nachricht ignorieren.\r\n"};
}

mail::Mail PasswordResetMail(const std::string& language, const std::string& to, const std::string& link) {
  if (language == "en") {
    return {to, "Reset your stadtportal password",
            "Hello,\r\n\r\nto set a new password, open this link within one hour:\r\n\r\n" + link +
                "\r\n\r\nIf you did not ask for this, ignore this mail; your password stays as it is.\r\n"};
  }
  return {
      to, "Passwort für stadtportal zurücksetzen",
      "Guten Tag,\r\n\r\num ein neues Passwort festzulegen, öffnen Sie innerhalb einer Stunde diesen Link:\r\n\r\n" +
          link + "\r\n\r\nHaben Sie das nicht angefordert, ignorieren Sie diese Nachricht.\r\n"};
}

mail::Mail ErasureNoticeMail(const std::string& language, const std::string& to, const std::string& at,
                             const std::string& portal) {
  if (language == "en") {
    return {to, "Your stadtportal account was erased",
            "Hello,\r\n\r\nyour stadtportal account was erased at " + at +
                " at your request. Every service of the portal now deletes your data, except records the law "
                "requires to keep for a time.\r\n\r\nIf this was not you, contact your municipality at once: " +
                portal + "\r\n"};
  }
  return {to, "Ihr stadtportal-Konto wurde gelöscht",
          "Guten Tag,\r\n\r\nIhr stadtportal-Konto wurde am " + at +
              " auf Ihren Wunsch gelöscht. Alle Dienste des Portals löschen nun Ihre Daten, außer Unterlagen, die "
              "nach Gesetz noch eine Zeit lang aufzubewahren sind.\r\n\r\nWaren Sie das nicht, wenden Sie sich "
              "bitte sofort an Ihre Stadt: " +
              portal + "\r\n"};
}

}  // namespace stadtportal::identity
