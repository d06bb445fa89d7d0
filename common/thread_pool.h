// A fixed pool of worker threads for blocking work (disk, XRT, libvirt, sandboxes), so
// API I/O threads never block. A thin wrapper over boost::asio::thread_pool. Thread-safe.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <utility>

namespace fpgahost {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : pool_(static_cast<size_t>(threads)) {}
  ~ThreadPool() { Shutdown(); }

  // `work` is any callable taking no arguments; it may be move-only.
  template <typename F>
  void Post(F&& work) {
    boost::asio::post(pool_, std::forward<F>(work));
  }

  // Runs what was already posted, then joins the threads. Idempotent.
  void Shutdown() { pool_.wait(); }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace fpgahost
