#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace stadtportal::app {

// Runs a job every `interval` on its own thread, first right after Start(), until Stop().
// The job must be safe to run on every replica at once (e.g. DELETE … SKIP LOCKED).
// A throwing job is logged and retried at the next tick.
class Periodic {
 public:
  Periodic(std::string name, std::chrono::milliseconds interval, std::function<void()> job)
      : name_(std::move(name)), interval_(interval), job_(std::move(job)) {}
  ~Periodic() { Stop(); }

  void Start();
  // Waits for a running job to finish.
  void Stop();

 private:
  std::string name_;
  std::chrono::milliseconds interval_;
  std::function<void()> job_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace stadtportal::app
