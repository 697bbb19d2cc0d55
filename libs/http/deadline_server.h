#pragma once

#include <chrono>

#include <httplib.h>

namespace stadtportal::http {

// cpp-httplib's server with a deadline for reading each whole request (request line,
// headers and body), not only for each read: a client that trickles bytes (slow loris)
// is cut off when the deadline passes, however steadily it sends. Between requests a
// keep-alive connection waits at most the keep-alive timeout, as before.
class Server : public httplib::Server {
 public:
  void set_request_timeout(std::chrono::milliseconds timeout) { request_timeout_ = timeout; }

  // Binds to `host`:`port` (0: any free port) with a listen backlog of `backlog`; returns
  // the port, or -1. (cpp-httplib's own backlog is 5: a burst of new connections would
  // wait for SYN retransmits, seconds each.)
  int Bind(const std::string& host, int port, int backlog = 4096);

  // For handlers: whether the request being read on this thread ran out of time.
  static bool RequestDeadlinePassed();
  // For handlers that answer without reading the whole body: the connection is closed
  // after this response, so the unread rest is never taken for another request.
  static void CloseAfterResponse();

 private:
  bool process_and_close_socket(socket_t sock) override;

  std::chrono::milliseconds request_timeout_{30000};
  socket_t listening_ = INVALID_SOCKET;
};

}  // namespace stadtportal::http
