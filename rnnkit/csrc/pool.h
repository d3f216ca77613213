// A cache of large CPU buffers for the fused paths' (t, b, .) sequences.
//
// glibc serves a block above its mmap threshold (32 MB at most) with a fresh mapping and hands
// it back to the system when it is freed, so each forward and backward of a long sequence wrote
// into new pages: one page fault per 4 KB, 8192 for a 32 MB buffer, which on this project's
// machine took longer than the loop that fills the buffer. Like torch's CUDA caching allocator,
// this one keeps the blocks its tensors free and gives them out again:
//
//   allocate(n): the smallest cached block of n to 2n bytes, else a new 2 MB-aligned block
//                marked for transparent huge pages;
//   free(p):     back into the cache while the cache stays under its cap, else to the system.
//
// The cap is RNNKIT_CACHE_MB (default 512); rnnkit.extension.empty_cache() frees every cached
// block. Only blocks of at least kMinBytes come here: glibc reuses smaller ones well.
#pragma once

#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#if defined(__unix__)
#include <pthread.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace rnnkit_csrc {

class SeqPool final : public c10::Allocator {
 public:
  static constexpr size_t kMinBytes = size_t(1) << 20;
  static constexpr size_t kAlign = size_t(1) << 21;  // a transparent huge page

  // Never destroyed: a tensor may be freed after this library's static destructors have run.
  static SeqPool& get() {
    static SeqPool* pool = new SeqPool();
    return *pool;
  }

  c10::DataPtr allocate(size_t n) override {
    const size_t size = (std::max<size_t>(n, 1) + kAlign - 1) / kAlign * kAlign;
    void* p = take(size);
    if (p == nullptr) p = fresh(size);
    return {p, p, &SeqPool::release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &SeqPool::release; }
  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // {bytes cached, bytes in use by live tensors}
  std::pair<int64_t, int64_t> stats() {
    std::lock_guard<std::mutex> g(mutex_);
    int64_t live = 0;
    for (const auto& kv : live_) live += int64_t(kv.second);
    return {int64_t(cached_), live};
  }
  void empty() {
    std::lock_guard<std::mutex> g(mutex_);
    for (const auto& kv : free_) std::free(kv.second);
    free_.clear();
    cached_ = 0;
  }

 private:
  SeqPool() {
    long mb = 512;  // RNNKIT_CACHE_MB: a whole number of megabytes, else the default
    if (const char* env = std::getenv("RNNKIT_CACHE_MB")) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 0) mb = v;
    }
    cap_ = size_t(mb) << 20;
#if defined(__unix__)
    // fork (a DataLoader worker) while another thread holds the lock would leave the child's
    // copy locked forever: hold it across the fork, and release it on both sides
    pthread_atfork([] { get().mutex_.lock(); }, [] { get().mutex_.unlock(); },
                   [] { get().mutex_.unlock(); });
#endif
  }

  void* take(size_t size) {
    std::lock_guard<std::mutex> g(mutex_);
    auto it = free_.lower_bound(size);
    if (it == free_.end() || it->first > 2 * size) return nullptr;
    void* p = it->second;
    live_[p] = it->first;
    cached_ -= it->first;
    free_.erase(it);
    return p;
  }

  void* fresh(size_t size) {
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, size) != 0 || p == nullptr) {
      empty();  // what is cached may be what is missing
      TORCH_CHECK(posix_memalign(&p, kAlign, size) == 0 && p != nullptr,
                  "rnnkit: out of memory allocating ", size >> 20, " MB on the CPU");
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, size, MADV_HUGEPAGE);  // a hint only: fewer, larger page faults
#endif
    std::lock_guard<std::mutex> g(mutex_);
    live_[p] = size;
    return p;
  }

  static void release(void* p) { get().give_back(p); }

  void give_back(void* p) {
    std::lock_guard<std::mutex> g(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // cannot happen; a deleter must not throw
    const size_t size = it->second;
    live_.erase(it);
    if (cached_ + size <= cap_) {
      free_.emplace(size, p);
      cached_ += size;
    } else {
      std::free(p);
    }
  }

  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;  // block -> its size
  std::multimap<size_t, void*> free_;       // size -> cached block
  size_t cached_ = 0, cap_ = 0;
};

}  // namespace rnnkit_csrc
