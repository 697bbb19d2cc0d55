#pragma once

#include <string_view>

#include "stadtportal/events/v1/events.pb.h"

// The topic of each event message (proto/stadtportal/events/v1/events.proto). Publish and
// Handlers take the topic from the message type, so a payload never travels under another
// topic's name and a consumer never reads a topic into the wrong message.
namespace stadtportal::events {

template <class M>
struct Topic;  // Only the messages below are events.

template <>
struct Topic<v1::AccountVerified> {
  static constexpr std::string_view kName = "account.verified";
};
template <>
struct Topic<v1::PreferencesChanged> {
  static constexpr std::string_view kName = "preferences.changed";
};
template <>
struct Topic<v1::SubmissionReadyForDelivery> {
  static constexpr std::string_view kName = "submission.ready_for_delivery";
};
template <>
struct Topic<v1::SubmissionWithdrawn> {
  static constexpr std::string_view kName = "submission.withdrawn";
};
template <>
struct Topic<v1::PaymentSucceeded> {
  static constexpr std::string_view kName = "payment.succeeded";
};
template <>
struct Topic<v1::PaymentFailed> {
  static constexpr std::string_view kName = "payment.failed";
};
template <>
struct Topic<v1::DeliveryDelivered> {
  static constexpr std::string_view kName = "delivery.delivered";
};
template <>
struct Topic<v1::DeliveryDelayed> {
  static constexpr std::string_view kName = "delivery.delayed";
};
template <>
struct Topic<v1::DeliveryAcknowledged> {
  static constexpr std::string_view kName = "delivery.acknowledged";
};
template <>
struct Topic<v1::CatalogueChanged> {
  static constexpr std::string_view kName = "catalogue.changed";
};
template <>
struct Topic<v1::AuditRecorded> {
  static constexpr std::string_view kName = "audit.recorded";
};
template <>
struct Topic<v1::AccountIdentified> {
  static constexpr std::string_view kName = "account.identified";
};
template <>
struct Topic<v1::DocumentRecorded> {
  static constexpr std::string_view kName = "document.recorded";
};
template <>
struct Topic<v1::ReminderDue> {
  static constexpr std::string_view kName = "reminder.due";
};
template <>
struct Topic<v1::SubmissionStatusChanged> {
  static constexpr std::string_view kName = "submission.status_changed";
};
template <>
struct Topic<v1::PaymentRefunded> {
  static constexpr std::string_view kName = "payment.refunded";
};
template <>
struct Topic<v1::MessageReceived> {
  static constexpr std::string_view kName = "message.received";
};
template <>
struct Topic<v1::ConsentChanged> {
  static constexpr std::string_view kName = "consent.changed";
};
template <>
struct Topic<v1::ProviderLinkChanged> {
  static constexpr std::string_view kName = "provider.link_changed";
};
template <>
struct Topic<v1::DataAccessed> {
  static constexpr std::string_view kName = "data.accessed";
};
template <>
struct Topic<v1::PartyErasureRequested> {
  static constexpr std::string_view kName = "party.erasure_requested";
};

}  // namespace stadtportal::events
