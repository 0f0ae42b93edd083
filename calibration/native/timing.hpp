// Timing an op: warm up once, then repeat until enough op time has passed, as the
// PyTorch op suite does (calibration/opsuite.py time_runner).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <vector>

namespace edgetwin {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stats {
  double median, min, max, mean, std;
  int reps;
};

// At least 3 repetitions, then more until `min_time_s` of op time or `max_reps`.
// `between` runs before every repetition, outside the timed region: the agent checks
// its time and memory bounds there (it throws to stop).
inline Stats time_it(const std::function<void()>& fn, double min_time_s, int max_reps,
                     const std::function<void()>& between = [] {}) {
  between();
  fn();  // warm-up: first-touch page faults and cold caches are not the op's cost
  std::vector<double> s;
  double total = 0;
  while (s.size() < 3 || (total < min_time_s && static_cast<int>(s.size()) < max_reps)) {
    between();
    auto t0 = Clock::now();
    fn();
    double dt = std::max(seconds_since(t0), 1e-9);  // a trace's latency must be > 0
    s.push_back(dt);
    total += dt;
  }
  std::vector<double> sorted = s;
  std::sort(sorted.begin(), sorted.end());
  double mean = total / s.size(), var = 0;
  for (double x : s) var += (x - mean) * (x - mean);
  size_t n = sorted.size();
  double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  return {median, sorted.front(), sorted.back(), mean, std::sqrt(var / n), static_cast<int>(n)};
}

}  // namespace edgetwin
