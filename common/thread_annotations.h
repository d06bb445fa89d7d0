// Clang thread-safety annotations (checked with -Wthread-safety under clang; no-ops under
// gcc), and a Mutex that carries them, since libstdc++'s std::mutex does not.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define FPGAHOST_TSA(x) __attribute__((x))
#else
#define FPGAHOST_TSA(x)
#endif

#define CAPABILITY(x) FPGAHOST_TSA(capability(x))
#define SCOPED_CAPABILITY FPGAHOST_TSA(scoped_lockable)
#define GUARDED_BY(x) FPGAHOST_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) FPGAHOST_TSA(pt_guarded_by(x))
#define REQUIRES(...) FPGAHOST_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) FPGAHOST_TSA(locks_excluded(__VA_ARGS__))
#define ACQUIRED_BEFORE(...) FPGAHOST_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRE(...) FPGAHOST_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) FPGAHOST_TSA(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS FPGAHOST_TSA(no_thread_safety_analysis)

namespace fpgahost {

class CAPABILITY("mutex") Mutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // For std::condition_variable_any and friends.
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace fpgahost
