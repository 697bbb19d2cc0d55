#include "libs/http/deadline_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace stadtportal::http {
namespace {

using Clock = std::chrono::steady_clock;

thread_local bool deadline_passed = false;
thread_local bool close_after_response = false;

std::chrono::milliseconds FromTimeval(time_t sec, time_t usec) {
  return std::chrono::milliseconds(sec * 1000 + usec / 1000);
}

void Address(socket_t sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  const int rc = peer ? getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len)
                      : getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return;
  ip = host;
  port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                    : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

// A buffered socket stream whose reads also end at the request's deadline.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(socket_t sock, std::chrono::milliseconds read_timeout, std::chrono::milliseconds write_timeout)
      : sock_(sock), read_timeout_(read_timeout), write_timeout_(write_timeout), buffer_(4096) {}

  void StartRequest(Clock::time_point deadline) { deadline_ = deadline; }
  bool Buffered() const { return offset_ < size_; }

  bool is_readable() const override { return Buffered() || Poll(POLLIN, read_timeout_, true); }
  bool is_writable() const override { return Poll(POLLOUT, write_timeout_, false); }

  ssize_t read(char* ptr, size_t size) override {
    if (!Buffered()) {
      if (!Poll(POLLIN, read_timeout_, true)) return -1;
      ssize_t n;
      do {
        n = recv(sock_, buffer_.data(), buffer_.size(), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      offset_ = 0;
      size_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, size_ - offset_);
    std::memcpy(ptr, buffer_.data() + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!Poll(POLLOUT, write_timeout_, false)) return -1;
    ssize_t n;
    do {
      n = send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { Address(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { Address(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  // Waits for `events` up to `timeout`; reads also only until the request's deadline.
  bool Poll(short events, std::chrono::milliseconds timeout, bool reading) const {
    auto wait = timeout;
    if (reading) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) {
        deadline_passed = true;
        return false;
      }
      wait = std::min(wait, left);
    }
    pollfd p{sock_, events, 0};
    int rc;
    do {
      rc = poll(&p, 1, static_cast<int>(wait.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0 && reading && Clock::now() >= deadline_) deadline_passed = true;
    return rc > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
  }

  socket_t sock_;
  std::chrono::milliseconds read_timeout_;
  std::chrono::milliseconds write_timeout_;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::vector<char> buffer_;
  size_t offset_ = 0;
  size_t size_ = 0;
};

}  // namespace

int Server::Bind(const std::string& host, int port, int backlog) {
  set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listening_ = sock;
  });
  const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return -1;
  // listen() again on a listening socket sets its backlog.
  if (listening_ != INVALID_SOCKET && ::listen(listening_, backlog) != 0) return -1;
  return bound;
}

bool Server::RequestDeadlinePassed() { return deadline_passed; }

void Server::CloseAfterResponse() { close_after_response = true; }

bool Server::process_and_close_socket(socket_t sock) {
  const auto keep_alive = std::chrono::seconds(keep_alive_timeout_sec_);
  DeadlineStream stream(sock, FromTimeval(read_timeout_sec_, read_timeout_usec_),
                        FromTimeval(write_timeout_sec_, write_timeout_usec_));
  bool ret = false;
  Clock::time_point request_deadline = Clock::time_point::min();
  for (size_t left = keep_alive_max_count_; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
    // Until the next request's first byte: the keep-alive timeout, in slices, so a
    // stopping server is noticed.
    const auto idle_until = Clock::now() + keep_alive;
    bool readable = stream.Buffered();
    while (!readable && svr_sock_ != INVALID_SOCKET && Clock::now() < idle_until) {
      pollfd p{sock, POLLIN, 0};
      const int rc = poll(&p, 1, 100);
      if (rc < 0 && errno != EINTR) break;
      readable = rc > 0;
    }
    if (!readable) break;
    deadline_passed = false;
    close_after_response = false;
    request_deadline = Clock::now() + request_timeout_;
    stream.StartRequest(request_deadline);
    bool connection_closed = false;
    ret = process_request(stream, left == 1, connection_closed, nullptr);
    if (!ret || connection_closed || close_after_response || deadline_passed) break;
  }
  if (close_after_response) {
    // A lingering close: what the client still sends (a refused body) is read and
    // dropped, up to a little more than the largest body any route takes, for at most
    // two seconds, past the request's deadline only half a second, and only while it
    // keeps coming (a quarter second of silence ends it),
    // so a client that writes its whole body before reading gets the answer instead of
    // a connection reset. Costs time on one thread, no memory.
    ::shutdown(sock, SHUT_WR);
    char buf[16384];
    size_t drained = 0;
    const auto until = std::max(std::min(request_deadline, Clock::now() + std::chrono::seconds(2)),
                                Clock::now() + std::chrono::milliseconds(500));
    while (drained < (32u << 20) && Clock::now() < until) {
      pollfd p{sock, POLLIN, 0};
      const int rc = poll(&p, 1, 250);
      if (rc < 0 && errno != EINTR) break;
      if (rc == 0) break;
      if (rc < 0) continue;
      const ssize_t n = recv(sock, buf, sizeof buf, 0);
      if (n <= 0) break;
      drained += static_cast<size_t>(n);
    }
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace stadtportal::http
