// edgetwin native op benchmark: times the op kinds of an LLM fine-tuning step with
// plain C++17 loops (no dependencies) and writes edgetwin trace lines (JSON, one a
// line) to stdout or --out FILE, for devices without Python (phones over adb).
// FLOPs and bytes are counted as profiles/ops.py counts them.
//
// The same binary is also the native runner: `opbench --agent --workdir DIR` speaks the
// agent protocol of hil/agent/protocol.py on stdin/stdout (see agent.hpp).
//
//   g++ -O2 -std=c++17 -o opbench opbench.cpp && ./opbench --quick --out trace.jsonl
//   ./opbench --agent --workdir /data/local/tmp/edgetwin
//
// The headers beside this file are included, not compiled on their own: building this
// one file builds everything (with g++ or the Android NDK's clang++).

// sched_getaffinity and the CPU_* macros (agent facts) are GNU extensions; define it
// before any system header is included.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "agent.hpp"
#include "kernels.hpp"
#include "timing.hpp"

namespace {

using edgetwin::matmul;
using edgetwin::Stats;
using edgetwin::time_it;

std::string shape_str(const std::vector<long>& shape, const char* sep) {
  std::ostringstream o;
  for (size_t i = 0; i < shape.size(); ++i) o << (i ? sep : "") << shape[i];
  return o.str();
}

void emit(std::ostream& out, const std::string& op, const std::string& impl,
          const std::string& phase, const std::vector<long>& shape, double flops, double bytes,
          int kernels, const Stats& st) {
  out.precision(10);
  out << "{\"format\": \"edgetwin-trace\", \"version\": 1, \"case\": \"" << op << "/" << impl
      << "/" << phase << "/" << shape_str(shape, "x") << "\", \"op\": \"" << op
      << "\", \"phase\": \"" << phase << "\", \"shape\": [" << shape_str(shape, ", ")
      << "], \"dtype\": \"fp32\", \"flops\": " << flops << ", \"bytes\": " << bytes
      << ", \"kernels\": " << kernels << ", \"latency_s\": {\"median\": " << st.median
      << ", \"min\": " << st.min << ", \"max\": " << st.max << ", \"mean\": " << st.mean
      << ", \"std\": " << st.std << ", \"reps\": " << st.reps
      << "}, \"device\": {\"runtime\": \"edgetwin-opbench (C++17, one thread)\"}, "
      << "\"source\": \"native\"}\n";
  out.flush();
}

std::vector<float> randv(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--agent") == 0) return edgetwin::agent_main(argc, argv);
  bool quick = false;
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else {
      std::cerr << "usage: opbench [--quick] [--out FILE]\n"
                   "       opbench --agent --workdir DIR [--max-line-bytes N] [--timeout-s S] "
                   "[--max-memory-mb M]\n";
      return 2;
    }
  }
  std::ofstream file;
  if (!out_path.empty()) file.open(out_path, std::ios::app);
  std::ostream& out = out_path.empty() ? std::cout : file;
  std::mt19937 rng(0);
  const double min_time = quick ? 0.01 : 0.1;
  const int max_reps = quick ? 5 : 30;

  std::vector<std::vector<long>> mm_shapes = {{16, 64, 64},   {32, 128, 96},  {64, 64, 256},
                                              {48, 256, 32},  {128, 96, 64},  {8, 512, 128},
                                              {64, 128, 8},   {96, 32, 192},  {24, 200, 150},
                                              {160, 64, 100}};
  if (!quick) {
    mm_shapes.push_back({256, 256, 256});
    mm_shapes.push_back({128, 512, 256});
    mm_shapes.push_back({64, 768, 384});
  }
  for (auto& s : mm_shapes) {
    long m = s[0], k = s[1], n = s[2];
    auto a = randv(m * k, rng), b = randv(k * n, rng);
    std::vector<float> c(m * n);
    Stats st = time_it([&] { matmul(a.data(), b.data(), c.data(), m, k, n); }, min_time, max_reps);
    emit(out, "matmul", "native", "forward", s, 2.0 * m * k * n, 4.0 * (m * k + k * n + m * n), 1,
         st);
  }
  std::vector<long> sizes = {4096, 16384, 65536, 262144, 1048576};
  if (quick) sizes.pop_back();
  for (long n : sizes) {
    auto x = randv(n, rng), y = randv(n, rng);
    std::vector<float> z(n);
    Stats add = time_it([&] { for (long i = 0; i < n; ++i) z[i] = x[i] + y[i]; }, min_time, max_reps);
    emit(out, "elementwise", "add", "forward", {n}, 1.0 * n, 3.0 * n * 4, 1, add);
    Stats mul = time_it([&] { for (long i = 0; i < n; ++i) z[i] = x[i] * y[i]; }, min_time, max_reps);
    emit(out, "elementwise", "mul", "forward", {n}, 1.0 * n, 3.0 * n * 4, 1, mul);
    Stats gelu = time_it([&] {
      for (long i = 0; i < n; ++i) {
        float v = x[i];
        z[i] = 0.5f * v * (1.f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
      }
    }, min_time, max_reps);
    emit(out, "activation", "gelu_tanh", "forward", {n}, 8.0 * n, 2.0 * n * 4, 1, gelu);
    Stats silu = time_it([&] { for (long i = 0; i < n; ++i) z[i] = x[i] / (1.f + std::exp(-x[i])); },
                         min_time, max_reps);
    emit(out, "activation", "silu", "forward", {n}, 8.0 * n, 2.0 * n * 4, 1, silu);
  }
  std::vector<std::vector<long>> rows_width = {{16, 64}, {64, 128}, {128, 256}, {256, 512}, {512, 640}};
  for (auto& rw : rows_width) {
    long r = rw[0], w = rw[1];
    auto x = randv(r * w, rng), g = randv(w, rng);
    std::vector<float> y(r * w);
    Stats st = time_it([&] {
      for (long i = 0; i < r; ++i) {
        const float* xi = x.data() + i * w;
        float ss = 0;
        for (long j = 0; j < w; ++j) ss += xi[j] * xi[j];
        float inv = 1.f / std::sqrt(ss / w + 1e-6f);
        for (long j = 0; j < w; ++j) y[i * w + j] = xi[j] * inv * g[j];
      }
    }, min_time, max_reps);
    emit(out, "norm", "rmsnorm", "forward", {r, w}, 7.0 * r * w, 2.0 * r * w * 4, 1, st);
  }
  std::vector<std::vector<long>> ce = {{16, 1000}, {32, 4000}, {64, 8000}, {128, 16000}, {64, 32000}};
  if (quick) ce.pop_back();
  for (auto& tv : ce) {
    long t = tv[0], v = tv[1];
    auto logits = randv(t * v, rng);
    std::vector<float> lp(t * v);
    Stats st = time_it([&] {
      for (long i = 0; i < t; ++i) {
        const float* li = logits.data() + i * v;
        float mx = *std::max_element(li, li + v), sum = 0;
        for (long j = 0; j < v; ++j) sum += std::exp(li[j] - mx);
        float lse = mx + std::log(sum);
        for (long j = 0; j < v; ++j) lp[i * v + j] = li[j] - lse;
      }
    }, min_time, max_reps);
    emit(out, "cross_entropy", "cross_entropy", "forward", {t, v}, 5.0 * t * v, 3.0 * t * v * 4, 1,
         st);
  }
  std::vector<long> params = {10000, 100000, 500000, 1000000, 2000000};
  if (quick) params.pop_back();
  for (long p : params) {
    auto w = randv(p, rng), g = randv(p, rng);
    std::vector<float> m1(p, 0.f), m2(p, 0.f);
    Stats st = time_it([&] {
      const float lr = 1e-4f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
      for (long i = 0; i < p; ++i) {
        w[i] -= lr * wd * w[i];
        m1[i] = b1 * m1[i] + (1 - b1) * g[i];
        m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * m1[i] / (std::sqrt(m2[i]) + eps);
      }
    }, min_time, max_reps);
    emit(out, "optimizer", "adamw", "optimizer", {p, 1}, 12.0 * p, 7.0 * p * 4, 1, st);
  }
  return 0;
}
