#include "libs/app/periodic.h"

#include <exception>

#include "libs/log/log.h"

namespace stadtportal::app {

void Periodic::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      try {
        job_();
      } catch (const std::exception& e) {
        log::Error("periodic job failed", {{"job", name_}, {"error", e.what()}});
      }
      lock.lock();
      cv_.wait_for(lock, interval_, [this] { return stopping_; });
    }
  });
}

void Periodic::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace stadtportal::app
