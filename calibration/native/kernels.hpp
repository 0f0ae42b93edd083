// The op kinds of an LLM fine-tuning step as plain single-threaded C++ loops, fp32.
//
// Each kernel reads an "in" region and writes an "out" region of float buffers that the
// caller allocates (one arena for a whole session): inputs are filled once with values
// in [0.5, 1.5) and never overwritten by other kernels' outputs, so values stay finite
// and normal however many ops and steps run (denormals or overflow would change the
// timing, not just the numbers). The optimizer updates its state in place in the in
// region; its values stay positive and bounded.
//
// Shapes are the op suite's (calibration/opsuite.py): matmul [m, k, n]; attention
// [b, h, s_q, s_k, d]; norm [rows, width]; activation and elementwise [n];
// fresh_pages [nbytes]; embedding [tokens, vocab, hidden]; cross_entropy [tokens, vocab];
// optimizer [params, tensors].
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string>
#include <vector>

namespace edgetwin {

enum class Kernel {
  matmul, attention_fwd, attention_bwd, rmsnorm_fwd, rmsnorm_bwd, layernorm_fwd,
  layernorm_bwd, gelu_tanh_fwd, gelu_tanh_bwd, silu_fwd, silu_bwd, add, mul_fwd, mul_bwd,
  dropout_fwd, dropout_bwd, fresh_pages, embedding_fwd, embedding_bwd, cross_entropy_fwd,
  cross_entropy_bwd, adamw, sgd, memory_pass
};

// One kernel at one shape (`dims` in the op suite's layout; memory_pass and fresh_pages
// take [nbytes]).
struct Work {
  Kernel kernel;
  std::vector<int64_t> dims;
};

// What a kernel needs: floats it reads, floats it writes, and fresh pages it maps.
// Doubles, so that an absurd shape is priced (and refused) rather than overflowing.
struct Footprint {
  double in_floats = 0, out_floats = 0, fresh_bytes = 0;
  double bytes() const { return 4.0 * (in_floats + out_floats) + fresh_bytes; }
};

inline double product(const std::vector<int64_t>& dims) {
  double p = 1;
  for (int64_t d : dims) p *= static_cast<double>(d);
  return p;
}

// A count of elements as an integer; absurd ones (only ever priced, then refused by
// the memory bound) are capped instead of overflowing.
inline int64_t count_of(double elements) {
  return elements >= 0x1p62 ? static_cast<int64_t>(0x1p62) : static_cast<int64_t>(elements);
}

inline Footprint footprint(const Work& w) {
  const auto& s = w.dims;
  double n = product(s);
  switch (w.kernel) {
    case Kernel::matmul: {
      double m = s[0], k = s[1], nn = s[2];
      return {m * k + k * nn, m * nn, 0};
    }
    case Kernel::attention_fwd: {
      double bh = 1.0 * s[0] * s[1], sq = s[2], sk = s[3], d = s[4];
      return {bh * (sq * d + 2 * sk * d), bh * (sq * sk + sq * d), 0};
    }
    case Kernel::attention_bwd: {  // reads q, k, v, probabilities, dO; writes dS, dQ, dK, dV
      double bh = 1.0 * s[0] * s[1], sq = s[2], sk = s[3], d = s[4];
      return {bh * (2 * sq * d + 2 * sk * d + sq * sk), bh * (sq * sk + sq * d + 2 * sk * d), 0};
    }
    case Kernel::rmsnorm_fwd: return {n + s[1], n, 0};
    case Kernel::layernorm_fwd: return {n + 2.0 * s[1], n, 0};
    case Kernel::rmsnorm_bwd:
    case Kernel::layernorm_bwd: return {2 * n + s[1], n, 0};
    case Kernel::gelu_tanh_fwd:
    case Kernel::silu_fwd: return {n, n, 0};
    case Kernel::gelu_tanh_bwd:
    case Kernel::silu_bwd: return {2 * n, n, 0};
    case Kernel::add:
    case Kernel::mul_fwd: return {2 * n, n, 0};
    case Kernel::mul_bwd: return {3 * n, 2 * n, 0};
    case Kernel::dropout_fwd: return {n, n + std::ceil(n / 4), 0};  // output and byte mask
    case Kernel::dropout_bwd: return {n + std::ceil(n / 4), n, 0};
    case Kernel::fresh_pages: return {0, 0, n};
    case Kernel::embedding_fwd: return {1.0 * s[1] * s[2], 1.0 * s[0] * s[2], 0};
    case Kernel::embedding_bwd: return {1.0 * s[0] * s[2], 1.0 * s[1] * s[2], 0};
    case Kernel::cross_entropy_fwd:
    case Kernel::cross_entropy_bwd: return {n, n, 0};
    case Kernel::adamw: return {4.0 * s[0], 0, 0};  // weights, grads, two moments
    case Kernel::sgd: return {2.0 * s[0], 0, 0};
    case Kernel::memory_pass: return {std::ceil(n / 8), std::ceil(n / 8), 0};
  }
  return {};
}

// --- kernels -------------------------------------------------------------------------------
// C[m x n] = A[m x k] B[k x n], i-k-j order (the naive trainer's loop, cache-friendlier)
inline void matmul(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n) {
  std::fill(c, c + m * n, 0.f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      float av = a[i * k + p];
      const float* brow = b + p * n;
      float* crow = c + i * n;
      for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
    }
}

inline float dot(const float* x, const float* y, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

inline void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Softmax(Q K^T / sqrt(d) + causal mask) V for each batch and head, as the eager
// PyTorch attention the op suite times: scores, probabilities and output materialized.
inline void attention_forward(const std::vector<int64_t>& s, const float* in, float* out) {
  const int64_t bh = s[0] * s[1], sq = s[2], sk = s[3], d = s[4];
  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  const bool causal = sk >= sq;  // the last query sees every key (the op suite's mask)
  const float* q = in;
  const float* k = q + bh * sq * d;
  const float* v = k + bh * sk * d;
  float* p = out;
  float* o = p + bh * sq * sk;
  for (int64_t x = 0; x < bh; ++x) {
    const float *qh = q + x * sq * d, *kh = k + x * sk * d, *vh = v + x * sk * d;
    float *ph = p + x * sq * sk, *oh = o + x * sq * d;
    for (int64_t i = 0; i < sq; ++i) {
      float* row = ph + i * sk;
      float mx = -INFINITY;
      for (int64_t j = 0; j < sk; ++j) {  // every score is computed, then masked, as eager
        float mask = causal && j > i + (sk - sq) ? -INFINITY : 0.f;
        row[j] = dot(qh + i * d, kh + j * d, d) * scale + mask;
        mx = std::max(mx, row[j]);
      }
      float sum = 0;
      for (int64_t j = 0; j < sk; ++j) sum += row[j] = std::exp(row[j] - mx);
      for (int64_t j = 0; j < sk; ++j) row[j] /= sum;
      float* orow = oh + i * d;
      std::fill(orow, orow + d, 0.f);
      for (int64_t j = 0; j < sk; ++j) axpy(row[j], vh + j * d, orow, d);
    }
  }
}

// The gradients of Q, K and V through the same products: dV = P^T dO, dP = dO V^T,
// dS = softmax'(dP), dQ = dS K, dK = dS^T Q (twice the forward's FLOPs).
inline void attention_backward(const std::vector<int64_t>& s, const float* in, float* out) {
  const int64_t bh = s[0] * s[1], sq = s[2], sk = s[3], d = s[4];
  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  const float* q = in;
  const float* k = q + bh * sq * d;
  const float* v = k + bh * sk * d;
  const float* p = v + bh * sk * d;
  const float* dout = p + bh * sq * sk;
  float* ds = out;
  float* dq = ds + bh * sq * sk;
  float* dk = dq + bh * sq * d;
  float* dv = dk + bh * sk * d;
  for (int64_t x = 0; x < bh; ++x) {
    const float *qh = q + x * sq * d, *kh = k + x * sk * d, *vh = v + x * sk * d;
    const float *ph = p + x * sq * sk, *doh = dout + x * sq * d;
    float *dsh = ds + x * sq * sk, *dqh = dq + x * sq * d, *dkh = dk + x * sk * d,
          *dvh = dv + x * sk * d;
    std::fill(dvh, dvh + sk * d, 0.f);
    std::fill(dkh, dkh + sk * d, 0.f);
    for (int64_t i = 0; i < sq; ++i) {
      const float* prow = ph + i * sk;
      float* dsrow = dsh + i * sk;
      float weighted = 0;
      for (int64_t j = 0; j < sk; ++j) {
        axpy(prow[j], doh + i * d, dvh + j * d, d);
        dsrow[j] = dot(doh + i * d, vh + j * d, d);
        weighted += prow[j] * dsrow[j];
      }
      float* dqrow = dqh + i * d;
      std::fill(dqrow, dqrow + d, 0.f);
      for (int64_t j = 0; j < sk; ++j) {
        dsrow[j] = prow[j] * (dsrow[j] - weighted) * scale;
        axpy(dsrow[j], kh + j * d, dqrow, d);
        axpy(dsrow[j], qh + i * d, dkh + j * d, d);
      }
    }
  }
}

// RMSNorm as the Python one transformers uses: x / sqrt(mean(x^2) + eps) * g.
inline void rmsnorm_forward(int64_t rows, int64_t w, const float* in, float* y) {
  const float* x = in;
  const float* g = x + rows * w;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * w;
    float inv = 1.f / std::sqrt(dot(xr, xr, w) / w + 1e-6f);
    for (int64_t j = 0; j < w; ++j) y[r * w + j] = xr[j] * inv * g[j];
  }
}

inline void rmsnorm_backward(int64_t rows, int64_t w, const float* in, float* dx) {
  const float* x = in;
  const float* dy = x + rows * w;
  const float* g = dy + rows * w;
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * w, *dyr = dy + r * w;
    float inv = 1.f / std::sqrt(dot(xr, xr, w) / w + 1e-6f);
    float proj = 0;
    for (int64_t j = 0; j < w; ++j) proj += dyr[j] * g[j] * xr[j];
    float c = proj * inv * inv * inv / w;
    for (int64_t j = 0; j < w; ++j) dx[r * w + j] = inv * dyr[j] * g[j] - c * xr[j];
  }
}

inline void layernorm_forward(int64_t rows, int64_t w, const float* in, float* y) {
  const float* x = in;
  const float* g = x + rows * w;
  const float* b = g + w;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * w;
    float mean = 0, var = 0;
    for (int64_t j = 0; j < w; ++j) mean += xr[j];
    mean /= w;
    for (int64_t j = 0; j < w; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    float inv = 1.f / std::sqrt(var / w + 1e-5f);
    for (int64_t j = 0; j < w; ++j) y[r * w + j] = (xr[j] - mean) * inv * g[j] + b[j];
  }
}

inline void layernorm_backward(int64_t rows, int64_t w, const float* in, float* dx) {
  const float* x = in;
  const float* dy = x + rows * w;
  const float* g = dy + rows * w;
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * w, *dyr = dy + r * w;
    float mean = 0, var = 0;
    for (int64_t j = 0; j < w; ++j) mean += xr[j];
    mean /= w;
    for (int64_t j = 0; j < w; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    float inv = 1.f / std::sqrt(var / w + 1e-5f);
    float sum_dxh = 0, sum_dxh_xh = 0;
    for (int64_t j = 0; j < w; ++j) {
      float dxh = dyr[j] * g[j];
      sum_dxh += dxh;
      sum_dxh_xh += dxh * (xr[j] - mean) * inv;
    }
    for (int64_t j = 0; j < w; ++j) {
      float xh = (xr[j] - mean) * inv;
      dx[r * w + j] = inv * (dyr[j] * g[j] - sum_dxh / w - xh * sum_dxh_xh / w);
    }
  }
}

constexpr float kGeluC = 0.7978845608f;  // sqrt(2 / pi)

inline void gelu_tanh_forward(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    y[i] = 0.5f * v * (1.f + std::tanh(kGeluC * (v + 0.044715f * v * v * v)));
  }
}

inline void gelu_tanh_backward(int64_t n, const float* in, float* dx) {
  const float *x = in, *dy = in + n;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    float t = std::tanh(kGeluC * (v + 0.044715f * v * v * v));
    float slope = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kGeluC *
                                         (1.f + 3.f * 0.044715f * v * v);
    dx[i] = dy[i] * slope;
  }
}

inline void silu_forward(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.f + std::exp(-x[i]));
}

inline void silu_backward(int64_t n, const float* in, float* dx) {
  const float *x = in, *dy = in + n;
  for (int64_t i = 0; i < n; ++i) {
    float sig = 1.f / (1.f + std::exp(-x[i]));
    dx[i] = dy[i] * sig * (1.f + x[i] * (1.f - sig));
  }
}

// xorshift32: the per-element random numbers dropout draws (torch draws Philox numbers)
inline uint32_t xorshift(uint32_t& state) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

inline void dropout_forward(int64_t n, const float* x, float* out) {
  const float p = 0.1f, scale = 1.f / (1.f - p);
  const uint32_t threshold = static_cast<uint32_t>(p * 4294967295.0);
  unsigned char* mask = reinterpret_cast<unsigned char*>(out + n);
  uint32_t state = 0x9E3779B9u;
  for (int64_t i = 0; i < n; ++i) {
    unsigned char keep = xorshift(state) >= threshold;
    mask[i] = keep;
    out[i] = keep ? x[i] * scale : 0.f;
  }
}

inline void dropout_backward(int64_t n, const float* in, float* dx) {
  const float scale = 1.f / 0.9f;
  const unsigned char* mask = reinterpret_cast<const unsigned char*>(in + n);
  for (int64_t i = 0; i < n; ++i) dx[i] = (mask[i] & 1) ? in[i] * scale : 0.f;
}

// Fresh memory from the kernel, every page touched, then given back: the page faults
// a step's large new tensors take.
inline void fresh_pages(int64_t nbytes) {
  if (static_cast<double>(nbytes) > static_cast<double>(SIZE_MAX / 2)) throw std::bad_alloc();
  size_t size = static_cast<size_t>(nbytes);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  std::fill(static_cast<float*>(p), static_cast<float*>(p) + size / 4, 1.f);
  std::memset(static_cast<char*>(p) + size / 4 * 4, 0, size % 4);
  munmap(p, size);
}

// which row of the table token `i` looks up: spread over the table, fixed per token
inline int64_t token_row(int64_t i, int64_t vocab) {
  uint64_t spread = static_cast<uint64_t>(i) * 2654435761u;  // Knuth's multiplicative hash
  return static_cast<int64_t>(spread % static_cast<uint64_t>(vocab));
}

inline void embedding_forward(int64_t tokens, int64_t vocab, int64_t hidden, const float* table,
                              float* out) {
  for (int64_t i = 0; i < tokens; ++i)
    std::memcpy(out + i * hidden, table + token_row(i, vocab) * hidden, hidden * sizeof(float));
}

// the table's gradient: zeroed, then every token's row of dOut added to its row
inline void embedding_backward(int64_t tokens, int64_t vocab, int64_t hidden, const float* dout,
                               float* grad) {
  std::fill(grad, grad + vocab * hidden, 0.f);
  for (int64_t i = 0; i < tokens; ++i)
    axpy(1.f, dout + i * hidden, grad + token_row(i, vocab) * hidden, hidden);
}

// log-softmax over each row (what F.cross_entropy writes), the loss from it
inline float cross_entropy_forward(int64_t tokens, int64_t vocab, const float* logits,
                                   float* logp) {
  float loss = 0;
  for (int64_t i = 0; i < tokens; ++i) {
    const float* li = logits + i * vocab;
    float mx = *std::max_element(li, li + vocab), sum = 0;
    for (int64_t j = 0; j < vocab; ++j) sum += std::exp(li[j] - mx);
    float lse = mx + std::log(sum);
    for (int64_t j = 0; j < vocab; ++j) logp[i * vocab + j] = li[j] - lse;
    loss -= logp[i * vocab + token_row(i, vocab)];
  }
  return loss / tokens;
}

// d(mean loss)/d(logits) = (softmax - one_hot(target)) / tokens
inline void cross_entropy_backward(int64_t tokens, int64_t vocab, const float* logits,
                                   float* grad) {
  for (int64_t i = 0; i < tokens; ++i) {
    const float* li = logits + i * vocab;
    float* gi = grad + i * vocab;
    float mx = *std::max_element(li, li + vocab), sum = 0;
    for (int64_t j = 0; j < vocab; ++j) sum += gi[j] = std::exp(li[j] - mx);
    float inv = 1.f / (sum * tokens);
    for (int64_t j = 0; j < vocab; ++j) gi[j] *= inv;
    gi[token_row(i, vocab)] -= 1.f / tokens;
  }
}

// AdamW over `tensors` tensors of about params/tensors values each, one loop a tensor
// as torch's for-each optimizer goes tensor by tensor.
inline void adamw(int64_t params, int64_t tensors, float* in) {
  float *w = in, *g = w + params, *m1 = g + params, *m2 = m1 + params;
  const float lr = 1e-4f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
  for (int64_t t = 0; t < tensors; ++t) {
    int64_t lo = params * t / tensors, hi = params * (t + 1) / tensors;
    for (int64_t i = lo; i < hi; ++i) {
      w[i] -= lr * wd * w[i];
      m1[i] = b1 * m1[i] + (1 - b1) * g[i];
      m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i];
      w[i] -= lr * m1[i] / (std::sqrt(m2[i]) + eps);
    }
  }
}

inline void sgd(int64_t params, int64_t tensors, float* in) {
  float *w = in, *g = w + params;
  for (int64_t t = 0; t < tensors; ++t) {
    int64_t lo = params * t / tensors, hi = params * (t + 1) / tensors;
    for (int64_t i = lo; i < hi; ++i) w[i] -= 1e-4f * g[i];
  }
}

// Runs `w` once. `in` and `out` hold at least footprint(w).in_floats / .out_floats.
inline void run(const Work& w, float* in, float* out) {
  const auto& s = w.dims;
  const int64_t n = count_of(product(s));
  switch (w.kernel) {
    case Kernel::matmul: return matmul(in, in + s[0] * s[1], out, s[0], s[1], s[2]);
    case Kernel::attention_fwd: return attention_forward(s, in, out);
    case Kernel::attention_bwd: return attention_backward(s, in, out);
    case Kernel::rmsnorm_fwd: return rmsnorm_forward(s[0], s[1], in, out);
    case Kernel::rmsnorm_bwd: return rmsnorm_backward(s[0], s[1], in, out);
    case Kernel::layernorm_fwd: return layernorm_forward(s[0], s[1], in, out);
    case Kernel::layernorm_bwd: return layernorm_backward(s[0], s[1], in, out);
    case Kernel::gelu_tanh_fwd: return gelu_tanh_forward(n, in, out);
    case Kernel::gelu_tanh_bwd: return gelu_tanh_backward(n, in, out);
    case Kernel::silu_fwd: return silu_forward(n, in, out);
    case Kernel::silu_bwd: return silu_backward(n, in, out);
    case Kernel::add:
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] + in[n + i];
      return;
    case Kernel::mul_fwd:
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] * in[n + i];
      return;
    case Kernel::mul_bwd:  // z = x * y: dx = dz * y, dy = dz * x
      for (int64_t i = 0; i < n; ++i) {
        out[i] = in[2 * n + i] * in[n + i];
        out[n + i] = in[2 * n + i] * in[i];
      }
      return;
    case Kernel::dropout_fwd: return dropout_forward(n, in, out);
    case Kernel::dropout_bwd: return dropout_backward(n, in, out);
    case Kernel::fresh_pages: return fresh_pages(s[0]);
    case Kernel::embedding_fwd: return embedding_forward(s[0], s[1], s[2], in, out);
    case Kernel::embedding_bwd: return embedding_backward(s[0], s[1], s[2], in, out);
    case Kernel::cross_entropy_fwd: cross_entropy_forward(s[0], s[1], in, out); return;
    case Kernel::cross_entropy_bwd: return cross_entropy_backward(s[0], s[1], in, out);
    case Kernel::adamw: return adamw(s[0], s[1], in);
    case Kernel::sgd: return sgd(s[0], s[1], in);
    case Kernel::memory_pass: {  // read half the bytes, write the other half
      int64_t floats = static_cast<int64_t>(std::ceil(static_cast<double>(n) / 8));
      if (floats > 0) std::memcpy(out, in, static_cast<size_t>(floats) * sizeof(float));
      return;
    }
  }
}

// Values in [0.5, 1.5): finite and normal through every kernel (see the top).
inline void fill_inputs(float* p, size_t n, uint32_t seed) {
  uint32_t state = seed | 1u;
  for (size_t i = 0; i < n; ++i) p[i] = 0.5f + static_cast<float>(xorshift(state) >> 8) * 0x1p-24f;
}

// --- which kernel an op is ----------------------------------------------------------------
inline bool one_of(const std::string& s, std::initializer_list<const char*> options) {
  for (const char* o : options)
    if (s == o) return true;
  return false;
}

// The kernel timing an op-suite case, or false with the reason it has none. Strict:
// the case's op, impl, phase and shape must be one the op suite defines.
inline bool case_work(const std::string& op, const std::string& impl, const std::string& phase,
                      const std::vector<int64_t>& shape, Work& work, std::string& why) {
  const bool fwd = phase == "forward", bwd = phase == "backward";
  auto need = [&](size_t dims, const char* layout) {
    if (shape.size() == dims) return true;
    why = op + " shapes are " + layout;
    return false;
  };
  auto pick = [&](Kernel k) {
    work = {k, shape};
    return true;
  };
  if (op == "matmul") return need(3, "[m, k, n]") && pick(Kernel::matmul);
  if (op == "attention" && one_of(impl, {"eager", ""}) && (fwd || bwd)) {
    if (!need(5, "[batch, heads, seq_q, seq_k, head_dim]")) return false;
    return pick(fwd ? Kernel::attention_fwd : Kernel::attention_bwd);
  }
  if (op == "norm" && one_of(impl, {"rmsnorm", "layernorm"}) && (fwd || bwd)) {
    if (!need(2, "[rows, width]")) return false;
    if (impl == "rmsnorm") return pick(fwd ? Kernel::rmsnorm_fwd : Kernel::rmsnorm_bwd);
    return pick(fwd ? Kernel::layernorm_fwd : Kernel::layernorm_bwd);
  }
  if (op == "activation" && (fwd || bwd)) {
    if (one_of(impl, {"gelu_tanh", "gelu_new"}))  // one formula; gelu_new is it unfused
      return need(1, "[n]") && pick(fwd ? Kernel::gelu_tanh_fwd : Kernel::gelu_tanh_bwd);
    if (impl == "silu") return need(1, "[n]") && pick(fwd ? Kernel::silu_fwd : Kernel::silu_bwd);
  }
  if (op == "elementwise") {
    if (impl == "fresh_pages" && fwd) return need(1, "[nbytes]") && pick(Kernel::fresh_pages);
    if (impl == "add" && fwd) return need(1, "[n]") && pick(Kernel::add);
    if (impl == "mul" && (fwd || bwd))
      return need(1, "[n]") && pick(fwd ? Kernel::mul_fwd : Kernel::mul_bwd);
    if (impl == "dropout" && (fwd || bwd))
      return need(1, "[n]") && pick(fwd ? Kernel::dropout_fwd : Kernel::dropout_bwd);
  }
  if (op == "embedding" && one_of(impl, {"embedding", ""}) && (fwd || bwd))
    return need(3, "[tokens, vocab, hidden]") &&
           pick(fwd ? Kernel::embedding_fwd : Kernel::embedding_bwd);
  if (op == "cross_entropy" && one_of(impl, {"cross_entropy", ""}) && (fwd || bwd))
    return need(2, "[tokens, vocab]") &&
           pick(fwd ? Kernel::cross_entropy_fwd : Kernel::cross_entropy_bwd);
  if (op == "optimizer" && one_of(impl, {"adamw", "sgd"}) && phase == "optimizer")
    return need(2, "[params, tensors]") && pick(impl == "adamw" ? Kernel::adamw : Kernel::sgd);
  why = "the native runner has no " + op + "/" + impl + "/" + phase + " kernel";
  return false;
}

// `elements` as rows of `width` where the width divides it, else one row
inline std::vector<int64_t> rows_of(int64_t elements, int64_t width) {
  if (width > 0 && elements % width == 0) return {elements / width, width};
  return {1, elements};
}

// The kernel running one op of a session's op list (edgetwin.hil.agent.requests.native_ops). Its
// shape is the workload model's: matmul [m, k, n], attention [b, h, s_q, s_k, d],
// optimizer [params, tensors], fresh_pages [nbytes], every other kind [elements]; rows
// of norms and embeddings are the model's hidden size, of cross entropy its vocabulary
// (when they divide). An op with no kernel here moves its `bytes` as a memory pass.
inline Work session_work(const std::string& kind, const std::string& impl, std::string phase,
                         const std::vector<int64_t>& shape, double bytes, int64_t hidden,
                         int64_t vocab) {
  if (phase == "recompute") phase = "forward";  // activation checkpointing runs it again
  const bool fwd = phase == "forward", bwd = phase == "backward";
  const int64_t elements = count_of(product(shape));
  const std::vector<int64_t> flat = {elements};
  Work pass{Kernel::memory_pass, {static_cast<int64_t>(bytes)}};
  if (kind == "matmul" && shape.size() == 3) return {Kernel::matmul, shape};
  if (kind == "attention" && shape.size() == 5 && (fwd || bwd))
    return {fwd ? Kernel::attention_fwd : Kernel::attention_bwd, shape};
  if (kind == "optimizer" && shape.size() == 2 && one_of(impl, {"adamw", "sgd"}))
    return {impl == "adamw" ? Kernel::adamw : Kernel::sgd, shape};
  if (impl == "fresh_pages") return {Kernel::fresh_pages, flat};
  if (kind == "norm" && (fwd || bwd)) {
    auto rw = rows_of(elements, hidden);
    if (impl == "rmsnorm") return {fwd ? Kernel::rmsnorm_fwd : Kernel::rmsnorm_bwd, rw};
    if (impl == "layernorm") return {fwd ? Kernel::layernorm_fwd : Kernel::layernorm_bwd, rw};
  }
  if (kind == "activation" && (fwd || bwd)) {
    if (one_of(impl, {"gelu_tanh", "gelu_new"}))
      return {fwd ? Kernel::gelu_tanh_fwd : Kernel::gelu_tanh_bwd, flat};
    if (impl == "silu") return {fwd ? Kernel::silu_fwd : Kernel::silu_bwd, flat};
  }
  if (kind == "elementwise") {
    if (impl == "add") return {Kernel::add, flat};  // a sum of gradients is an add too
    if (impl == "mul" && (fwd || bwd)) return {fwd ? Kernel::mul_fwd : Kernel::mul_bwd, flat};
    if (impl == "dropout" && (fwd || bwd))
      return {fwd ? Kernel::dropout_fwd : Kernel::dropout_bwd, flat};
  }
  if (kind == "embedding" && (fwd || bwd)) {  // a table of as many rows as tokens
    auto rw = rows_of(elements, hidden);
    return {fwd ? Kernel::embedding_fwd : Kernel::embedding_bwd, {rw[0], rw[0], rw[1]}};
  }
  if (kind == "cross_entropy" && (fwd || bwd))
    return {fwd ? Kernel::cross_entropy_fwd : Kernel::cross_entropy_bwd,
            rows_of(elements, vocab)};
  return pass;
}

}  // namespace edgetwin
