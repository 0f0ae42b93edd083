// `opbench --agent --workdir DIR`: the native runner, for devices without Python (phones
// over adb). It speaks the JSON-lines protocol of hil/agent/protocol.py on stdin and stdout,
// like `python -m edgetwin.hil.agent`, and serves three kinds of request:
//
//   facts      what the device is (CPU, memory, meters)
//   calibrate  stage "ops": times op-suite cases with the kernels of kernels.hpp and
//              answers trace lines (calibration/trace.py); stage "host": memory and
//              storage facts. It has no Python models, so no "probes"/"retention".
//   session    a training session replayed from the workload's op list: the download
//              checked, `steps` steps of the ops, the payload uploaded back.
//
// It runs requests one at a time in its own process (one thread): between ops it checks
// the request's wall time and its own resident memory, and stops a request that
// oversteps with a `timeout` or `memory` error, freeing what it took, then serves the
// next one. It never listens on a network port and never runs what a message contains.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "base64.hpp"
#include "json.hpp"
#include "kernels.hpp"
#include "protocol.hpp"
#include "sha256.hpp"
#include "sysinfo.hpp"
#include "timing.hpp"

namespace edgetwin {

const char* const kRuntime = "edgetwin-opbench (C++17, one thread)";
const std::vector<std::string> kKinds = {"facts", "calibrate", "session"};
const std::vector<std::string> kStages = {"ops", "probes", "retention", "host"};
const std::vector<std::string> kOpKinds = {"matmul", "attention", "norm", "activation",
                                           "elementwise", "embedding", "cross_entropy",
                                           "optimizer", "storage", "communication"};
const std::vector<std::string> kPhases = {"forward", "backward", "recompute", "optimizer", "io"};

inline std::string build_info() {
#if defined(__clang__)
  std::string compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  std::string compiler = "g++ " __VERSION__;
#else
  std::string compiler = "c++";
#endif
  return compiler + ", built " __DATE__;
}

// --- bounds ----------------------------------------------------------------------------------
struct Bounds {
  double timeout_s, max_memory_mb;
};

// Stops a request that oversteps its bounds: `check` between ops throws the error.
class Guard {
 public:
  Guard(Json id, Bounds bounds) : id_(std::move(id)), bounds_(bounds), start_(Clock::now()) {}

  void check() {
    check_time();
    check_memory();
  }

  // cheap enough to call before every op of a timed step: the clock every time, the
  // resident set (a /proc read) at most every 20 ms
  void poll() {
    check_time();
    if (seconds_since(last_memory_check_) >= 0.02) check_memory();
  }

  // before allocating `bytes`: refuse what would go over the bound, rather than let the
  // kernel's OOM killer end the agent
  void reserve(double bytes) const {
    double need = rss_mb() + bytes / kMiB;
    if (need > bounds_.max_memory_mb)
      throw ProtocolError(code::memory, "out of memory: the request needs " + fmt_0f(need) +
                                            " MiB, over its bound of " +
                                            fmt_0f(bounds_.max_memory_mb) + " MiB; stopped",
                          id_);
  }

 private:
  Json id_;
  Bounds bounds_;
  Clock::time_point start_, last_memory_check_ = Clock::now();

  void check_time() const {
    if (seconds_since(start_) > bounds_.timeout_s)
      throw ProtocolError(code::timeout, "timed out after " + fmt_g(bounds_.timeout_s) +
                                             " s; stopped",
                          id_);
  }

  void check_memory() {
    last_memory_check_ = Clock::now();
    double used = rss_mb();
    if (used > bounds_.max_memory_mb)
      throw ProtocolError(code::memory, "out of memory: the request used " + fmt_0f(used) +
                                            " MiB, over its bound of " +
                                            fmt_0f(bounds_.max_memory_mb) + " MiB; stopped",
                          id_);
  }
};

// Float buffers straight from the kernel (mmap), given back whole when the request ends
// or is stopped: freed memory does not linger in the heap for the next request.
class Arena {
 public:
  explicit Arena(double floats) {
    if (floats * sizeof(float) > static_cast<double>(SIZE_MAX / 2)) throw std::bad_alloc();
    bytes_ = static_cast<size_t>(floats) * sizeof(float);
    if (bytes_ == 0) return;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<float*>(p);
  }
  ~Arena() {
    if (data_) munmap(data_, bytes_);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  float* data() const { return data_; }

 private:
  size_t bytes_ = 0;
  float* data_ = nullptr;
};

// --- requests --------------------------------------------------------------------------------
struct CaseSpec {  // one op-suite case (edgetwin.calibration.opsuite.Case) as it travels
  std::string op, impl, phase;
  std::vector<int64_t> shape;
  double flops, bytes;
  int64_t kernels;

  std::string id() const {
    std::string s = op + "/" + impl + "/" + phase + "/";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
    return s;
  }
};

struct SessionOp {  // one op of edgetwin.hil.agent.requests.native_ops
  std::string kind, impl, phase;
  std::vector<int64_t> shape;
  double flops, bytes;
  int64_t count;
};

struct Request {
  std::string kind;
  Json id;
  Bounds bounds{0, 0};
  // calibrate
  std::string stage;
  std::string journal;  // resolved inside the work directory; "" for none
  std::vector<CaseSpec> cases;
  double min_time_s = 0.05;
  int max_reps = 30;
  bool quick = true;
  // session
  std::string download;
  int64_t steps = 0, hidden = 0, vocab = 0;
  std::vector<SessionOp> ops;
};

inline CaseSpec parse_case(const Json& c, const Json& rid, size_t i) {
  std::string where = "cases[" + std::to_string(i) + "]";
  if (!c.is_object()) throw ProtocolError(code::bad_value, where + ": expected an object", rid);
  Fields f(c, rid, {}, where + ".");
  CaseSpec spec;
  spec.shape = shape_of(f.items("shape"), f.bad("shape", "expected 1-6 positive integers"));
  spec.op = f.text("op").value_or("");
  spec.impl = f.text("impl").value_or("");
  spec.phase = f.text("phase").value_or("");
  spec.flops = f.number("flops", 0.0, 1e18, std::nullopt);
  spec.bytes = f.number("bytes", 0.0, 1e15, std::nullopt);
  spec.kernels = f.integer("kernels", 0, 10000, 1);
  f.done();
  return spec;
}

// Probes are checked as the Python agent checks them, though this runner runs none.
inline void check_probe(const Json& p, const Json& rid, size_t i) {
  std::string where = "probes[" + std::to_string(i) + "]";
  if (!p.is_object()) throw ProtocolError(code::bad_value, where + ": expected an object", rid);
  Fields f(p, rid, {}, where + ".");
  f.mapping("arch");
  f.mapping("method");
  f.integer("batch", 1, kMaxDim, std::nullopt);
  f.integer("seq", 1, kMaxDim, std::nullopt);
  f.integer("steps", 1, 1000, 3);
  f.integer("seed", 0, 9223372036854775807.0, 0);
  f.done();
}

inline SessionOp parse_op(const Json& o, const Json& rid, size_t i) {
  std::string where = "ops[" + std::to_string(i) + "]";
  Fields f(o, rid, {}, where + ".");
  SessionOp op;
  op.kind = f.choice("kind", kOpKinds, std::nullopt);
  op.impl = f.text("impl").value_or("");
  op.phase = f.choice("phase", kPhases, std::nullopt);
  op.shape = shape_of(f.items("shape"), f.bad("shape", "expected 1-6 positive integers"));
  size_t dims = op.kind == "matmul" ? 3 : op.kind == "attention" ? 5 : op.kind == "optimizer" ? 2
                                                                                                : 0;
  if (dims && op.shape.size() != dims)
    throw f.bad("shape", "expected " + std::to_string(dims) + " integers for " + op.kind);
  op.flops = f.number("flops", 0.0, 1e18, 0.0);
  op.bytes = f.number("bytes", 0.0, 1e15, 0.0);
  op.count = f.integer("count", 0, 1e6, 1);
  f.done();
  return op;
}

// How large a model a session may ask for: the same bounds as the Python agent's MODEL_LIMITS
// (hil/agent/server.py), so a model either agent refuses, both refuse.
inline void check_model_dims(const Json& model, const Json& rid) {
  static const std::pair<const char*, double> kLimits[] = {
      {"hidden", 65536},  {"layers", 1024},        {"heads", 1024},     {"kv_heads", 1024},
      {"head_dim", 4096}, {"intermediate", 262144}, {"vocab", 1048576}};
  for (const auto& [key, hi] : kLimits) {
    const Json* v = model.find(key);
    if (v && !(v->is_integer() && v->as_number() >= 1 && v->as_number() <= hi))
      throw ProtocolError(code::bad_value,
                          std::string("model.") + key + ": must be in 1.." +
                              std::to_string(static_cast<int64_t>(hi)),
                          rid);
  }
}

// A model size the session may use to lay out rows (0: not given).
inline int64_t model_dim(const Json& model, const char* key) {
  const Json* v = model.find(key);
  return v && v->is_integer() && v->as_number() >= 1 && v->as_number() <= kMaxDim ? v->as_int()
                                                                                   : 0;
}

inline std::string parse_download(const Json& d, const Json& rid) {
  Fields f(d, rid, {}, "download.");
  int64_t size = f.integer("bytes", 0, 1099511627776.0, std::nullopt);
  auto digest = f.text("sha256");
  auto text = f.text("data");
  f.done();
  if (!text || !digest)
    throw ProtocolError(code::bad_value, "download: needs bytes, sha256 and data", rid);
  std::string data;
  if (!base64_decode(*text, data))
    throw ProtocolError(code::bad_value, "download.data: not base64", rid);
  if (static_cast<int64_t>(data.size()) != size)
    throw ProtocolError(code::bad_value, "download: " + std::to_string(data.size()) +
                                             " bytes arrived, " + std::to_string(size) +
                                             " announced",
                        rid);
  if (sha256_hex(data) != *digest)
    throw ProtocolError(code::bad_value, "download: sha256 does not match the data", rid);
  return data;
}

// A request from its envelope, every field checked in hil/agent/protocol.py parse_request's
// order (so the first fault named is the same), plus what the native runner needs.
inline Request parse_request(const Json& data, const std::string& workdir, Bounds defaults) {
  Request req;
  req.id = *data.find("id");
  const Json& rid = req.id;
  const Json* kind = data.find("kind");
  if (!kind || !kind->is_string() ||
      std::find(kKinds.begin(), kKinds.end(), kind->as_string()) == kKinds.end())
    throw ProtocolError(code::unknown_kind,
                        "unknown kind " + repr(kind) + " (known: facts, calibrate, session)", rid);
  req.kind = kind->as_string();
  Fields f(data, rid, {"protocol", "version", "id", "kind"});
  if (req.kind == "facts") {
    f.done();
    return req;
  }
  req.bounds = {f.number("timeout_s", 0.1, kMaxTimeoutS, defaults.timeout_s),
                f.number("max_memory_mb", 1.0, 1e9, defaults.max_memory_mb)};
  f.choice("torch_device", {"cpu"}, std::string("cpu"));  // no GPU code in this runner
  if (req.kind == "calibrate") {
    req.stage = f.choice("stage", kStages, std::nullopt);
    if (auto journal = f.text("journal")) {
      req.journal = inside(workdir, *journal);
      if (req.journal.empty())
        throw ProtocolError(code::bad_path, "path " + repr(data.find("journal")) +
                                                " is outside the work directory",
                            rid);
    }
    const auto& cases = f.items("cases");
    for (size_t i = 0; i < cases.size(); ++i) req.cases.push_back(parse_case(cases[i], rid, i));
    const auto& probes = f.items("probes");
    for (size_t i = 0; i < probes.size(); ++i) check_probe(probes[i], rid, i);
    req.min_time_s = f.number("min_time_s", 0.0, 60.0, 0.05);
    req.max_reps = static_cast<int>(f.integer("max_reps", 1, 10000, 30));
    req.quick = f.flag("quick", true);
    f.done();
    return req;
  }
  req.download = parse_download(f.mapping("download"), rid);
  const auto& ops = f.items("ops");
  for (size_t i = 0; i < ops.size(); ++i)
    if (!ops[i].is_object())
      throw ProtocolError(code::bad_value, "ops[" + std::to_string(i) + "]: expected an object",
                          rid);
  const Json& model = f.mapping("model");
  check_model_dims(model, rid);
  f.mapping("method");
  const Json& setup = f.mapping("setup");
  req.steps = f.integer("steps", 1, kMaxSteps, std::nullopt);
  f.integer("seed", 0, 9223372036854775807.0, 0);
  f.done();
  // what only this runner asks of a session: the op list (it has no model code)
  Fields s(setup, rid, {}, "setup.");
  s.choice("dtype", {"fp32", "fp16", "bf16"}, std::string("fp32"));
  s.choice("serialization", {"raw", "npy", "npy64"}, std::string("raw"));
  if (ops.empty())
    throw ProtocolError(code::bad_value,
                        "ops: the native runner needs the workload's op list "
                        "(edgetwin.hil.agent.requests.native_ops)",
                        rid);
  for (size_t i = 0; i < ops.size(); ++i) req.ops.push_back(parse_op(ops[i], rid, i));
  req.hidden = model_dim(model, "hidden");
  req.vocab = model_dim(model, "vocab");
  return req;
}

// --- the agent -------------------------------------------------------------------------------
class Agent {
 public:
  Agent(std::string workdir, Output& out, int64_t limit, Bounds defaults)
      : workdir_(std::move(workdir)), out_(out), limit_(limit), defaults_(defaults) {}

  int serve(int fd) {
    Json hello = event(nullptr, "hello");
    hello.set("agent", "native");
    hello.set("max_line_bytes", limit_);
    hello.set("workdir", workdir_);
    hello.set("pid", static_cast<int64_t>(getpid()));
    hello.set("kinds", Json::Array(kKinds.begin(), kKinds.end()));
    out_.emit(hello);
    LineReader reader(fd, limit_);
    std::string line;
    int64_t size = 0;
    for (;;) {
      LineReader::Got got = reader.next(line, size);
      if (got == LineReader::Got::eof) return 0;
      if (got == LineReader::Got::too_large) {
        out_.emit(error_event(ProtocolError(
            code::too_large, "line of " + std::to_string(size) +
                                 " bytes or more exceeds the limit of " +
                                 std::to_string(limit_) + " bytes")));
        continue;
      }
      if (!blank(line)) serve_line(line);
    }
  }

 private:
  std::string workdir_;
  Output& out_;
  int64_t limit_;
  Bounds defaults_;

  // A request's parsed JSON may take half of the default memory bound, no more.
  size_t max_values() const {
    return static_cast<size_t>(std::min(1e15, defaults_.max_memory_mb * kMiB / 2 / sizeof(Json)));
  }

  // One request, start to terminal event; whatever goes wrong becomes its error.
  void serve_line(std::string& line) {
    Json rid;
    try {
      Request req;
      {
        Json data = decode(line, max_values());
        std::string().swap(line);  // the request's text is not needed any more
        rid = *data.find("id");
        req = parse_request(data, workdir_, defaults_);
      }
      handle(req);
    } catch (const ProtocolError& err) {
      out_.emit(error_event(err));
    } catch (const std::bad_alloc&) {
      out_.emit(error_event(ProtocolError(
          code::memory, "out of memory: an allocation failed; stopped", rid)));
    } catch (const std::exception& err) {
      out_.emit(error_event(ProtocolError(code::failed, err.what(), rid)));
    }
  }

  void handle(const Request& req) {
    if (req.kind == "facts") return emit_result(req.id, "facts", facts());
    if (req.kind == "session") return session(req);
    if (req.stage == "ops") return calibrate_ops(req);
    if (req.stage == "host") return calibrate_host(req);
    throw ProtocolError(code::bad_value,
                        "stage " + req.stage +
                            ": the native runner has no Python models (probe steps run as "
                            "sessions)",
                        req.id);
  }

  void emit_result(const Json& id, const char* key, Json value) {
    Json e = event(id, "result");
    e.set(key, std::move(value));
    out_.emit(e);
  }

  Json facts() const {
    Uname u = uname_facts();
    Json f;
    f.set("runner", "native");
    f.set("build", build_info());
    f.set("os", u.sysname + " " + u.release);
    f.set("machine", u.machine);
    f.set("host", u.nodename);
    std::string cpu = cpu_name();
    f.set("cpu", cpu.empty() ? u.machine : cpu);
    f.set("cores", static_cast<int64_t>(online_cpus()));
    Json cpus{Json::Array{}};
    for (int c : affinity()) cpus.push(c);
    f.set("cpus", cpus);
    f.set("threads", 1);
    f.set("ram_mb", std::round(ram_mb() * 10) / 10);
    Json meters{Json::Array{}};
    for (const auto& m : readable_meters()) meters.push(m);
    f.set("meters", meters);
    f.set("workdir", workdir_);
    return f;
  }

  // --- calibrate: ops --------------------------------------------------------------------
  void calibrate_ops(const Request& req) {
    Guard guard(req.id, req.bounds);
    std::ofstream journal = open_journal(req);
    int64_t measured = 0;
    for (const CaseSpec& c : req.cases) {
      guard.check();
      Work work;
      std::string why;
      if (!case_work(c.op, c.impl, c.phase, c.shape, work, why)) {
        Json e = event(req.id, "skipped");
        e.set("case", c.id());
        e.set("reason", why);
        out_.emit(e);
        continue;
      }
      std::string line = dump(trace_line(c, measure(work, req, guard)));
      if (journal.is_open()) {  // the device's own copy: what a dropped link lost is here
        journal << line << '\n';
        journal.flush();
      }
      Json e = event(req.id, "measurement");
      e.set("trace", line);
      out_.emit(e);
      ++measured;
    }
    emit_result(req.id, "measured", measured);
  }

  std::ofstream open_journal(const Request& req) const {
    std::ofstream journal;
    if (req.journal.empty()) return journal;
    make_dirs(req.journal.substr(0, req.journal.rfind('/')));
    journal.open(req.journal, std::ios::app);
    if (!journal)
      throw ProtocolError(code::failed, "cannot open the journal " + req.journal, req.id);
    return journal;
  }

  // One case timed on buffers of its own, freed when it is done.
  static Stats measure(const Work& work, const Request& req, Guard& guard) {
    Footprint fp = footprint(work);
    guard.reserve(fp.bytes());
    Arena in(fp.in_floats), out(fp.out_floats);
    fill_inputs(in.data(), static_cast<size_t>(fp.in_floats), 1);
    return time_it([&] { run(work, in.data(), out.data()); }, req.min_time_s, req.max_reps,
                   [&] { guard.check(); });
  }

  // A measurement as calibration/trace.py parse_line reads it.
  static Json trace_line(const CaseSpec& c, const Stats& st) {
    Json shape{Json::Array{}};
    for (int64_t d : c.shape) shape.push(d);
    Json latency;
    latency.set("median", st.median);
    latency.set("min", st.min);
    latency.set("max", st.max);
    latency.set("mean", st.mean);
    latency.set("std", st.std);
    latency.set("reps", st.reps);
    Json device;
    device.set("runtime", kRuntime);
    Json t;
    t.set("format", "edgetwin-trace");
    t.set("version", 1);
    t.set("case", c.id());
    t.set("op", c.op);
    t.set("phase", c.phase);
    t.set("shape", shape);
    t.set("dtype", "fp32");
    t.set("flops", c.flops);
    t.set("bytes", c.bytes);
    t.set("kernels", c.kernels);
    t.set("latency_s", latency);
    t.set("device", device);
    t.set("source", "native");
    t.set("peak_memory_bytes", nullptr);
    t.set("energy_j", nullptr);
    return t;
  }

  // --- calibrate: host -------------------------------------------------------------------
  void calibrate_host(const Request& req) {
    Guard guard(req.id, req.bounds);
    Json host;
    host.set("ram_mb", ram_mb());
    host.set("available_mb", available_mb());
    host.set("runtime_overhead_mb", rss_mb());  // this runner's own resident set
    double write_mb_s = 0, read_mb_s = 0;
    storage_mb_per_s(req.quick ? 32 : 256, guard, req.id, write_mb_s, read_mb_s);
    host.set("write_mb_per_s", write_mb_s);
    host.set("read_mb_per_s", read_mb_s);
    host.set("device_class", device_class());
    host.set("power", nullptr);
    emit_result(req.id, "host", host);
  }

  // Sequential write (fsync'd) and read back (page cache dropped for the file) of a
  // file in the work directory, as calibration/host.py storage_mb_per_s does.
  static void storage_mb_per_s(int size_mb, Guard& guard, const Json& rid, double& write_mb_s,
                               double& read_mb_s) {
    std::vector<float> block(1 << 18);  // 1 MiB of data that does not compress
    fill_inputs(block.data(), block.size(), 7);
    char name[] = "edgetwin-storage-XXXXXX";
    int fd = mkstemp(name);
    if (fd < 0)
      throw ProtocolError(code::failed, std::string("cannot write in the work directory (") +
                                            std::strerror(errno) + ")",
                          rid);
    struct Cleanup {  // the file goes, however the measurement ends
      int fd;
      const char* name;
      ~Cleanup() {
        close(fd);
        unlink(name);
      }
    } cleanup{fd, name};
    auto t0 = Clock::now();
    for (int i = 0; i < size_mb; ++i) {
      guard.check();
      if (!write_all(fd, block.data(), block.size() * sizeof(float)))
        throw ProtocolError(code::failed, std::string("writing the storage test file failed (") +
                                              std::strerror(errno) + ")",
                            rid);
    }
    fsync(fd);
    write_mb_s = size_mb / seconds_since(t0);
#ifdef POSIX_FADV_DONTNEED
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#endif
    lseek(fd, 0, SEEK_SET);
    std::vector<char> buf(4 << 20);
    t0 = Clock::now();
    while (read(fd, buf.data(), buf.size()) > 0) guard.check();
    read_mb_s = size_mb / seconds_since(t0);
  }

  static bool write_all(int fd, const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  // --- session -----------------------------------------------------------------------------
  // The ops of one optimizer step, `steps` times, on one arena sized to the largest op;
  // the upload is the download sent back (this runner trains no model).
  void session(const Request& req) {
    Json received = event(req.id, "received");
    received.set("bytes", static_cast<int64_t>(req.download.size()));
    out_.emit(received);
    reset_peak_rss();
    Guard guard(req.id, req.bounds);
    guard.check();
    auto t0 = Clock::now();
    std::vector<Work> works;
    Footprint most;
    for (const SessionOp& op : req.ops) {
      works.push_back(session_work(op.kind, op.impl, op.phase, op.shape, op.bytes, req.hidden,
                                   req.vocab));
      Footprint fp = footprint(works.back());
      most.in_floats = std::max(most.in_floats, fp.in_floats);
      most.out_floats = std::max(most.out_floats, fp.out_floats);
      most.fresh_bytes = std::max(most.fresh_bytes, fp.fresh_bytes);
    }
    guard.reserve(most.bytes());
    Arena arena(most.in_floats + most.out_floats);
    float* in = arena.data();
    float* out = in ? in + static_cast<size_t>(most.in_floats) : nullptr;
    fill_inputs(in, static_cast<size_t>(most.in_floats), 1);
    double load_s = seconds_since(t0);
    guard.check();
    Json times{Json::Array{}};
    for (int64_t step = 0; step < req.steps; ++step) {
      auto start = Clock::now();
      for (size_t i = 0; i < works.size(); ++i)
        for (int64_t c = 0; c < req.ops[i].count; ++c) {
          guard.poll();
          run(works[i], in, out);
        }
      double dt = seconds_since(start);
      times.push(dt);
      Json e = event(req.id, "step");
      e.set("step", step);
      e.set("time_s", dt);
      e.set("rss_mb", rss_mb());
      e.set("energy_j", nullptr);
      out_.emit(e);
      guard.check();
    }
    Json upload = event(req.id, "upload");
    upload.set("bytes", static_cast<int64_t>(req.download.size()));
    upload.set("sha256", sha256_hex(req.download));
    upload.set("data", base64_encode(req.download));
    out_.emit(upload);
    Json result = event(req.id, "result");
    result.set("steps", req.steps);
    result.set("step_time_s", times);
    result.set("load_s", load_s);
    result.set("peak_memory_mb", peak_rss_mb());
    result.set("energy_j", nullptr);
    result.set("meter", nullptr);
    result.set("download_applied", false);
    result.set("upload_bytes", static_cast<int64_t>(req.download.size()));
    result.set("trainable_tensors", 0);
    out_.emit(result);
  }
};

// --- entry point -------------------------------------------------------------------------
inline int agent_usage() {
  std::cerr << "usage: opbench --agent --workdir DIR [--max-line-bytes N] [--timeout-s S] "
               "[--max-memory-mb M]\n";
  return 2;
}

// A positive number from the command line, or nothing.
inline std::optional<double> positive(const char* text) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v > 0) || !std::isfinite(v)) return std::nullopt;
  return v;
}

inline int agent_main(int argc, char** argv) {
  std::string workdir;
  double limit = static_cast<double>(kDefaultMaxLineBytes), timeout_s = 3600.0, memory_mb = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::optional<double> v = i + 1 < argc ? positive(argv[i + 1]) : std::nullopt;
    if (a == "--agent") continue;
    if (a == "--workdir" && i + 1 < argc) workdir = argv[++i];
    else if (a == "--max-line-bytes" && v && *v == std::floor(*v)) limit = *v, ++i;
    else if (a == "--timeout-s" && v) timeout_s = *v, ++i;
    else if (a == "--max-memory-mb" && v) memory_mb = *v, ++i;
    else return agent_usage();
  }
  if (workdir.empty()) return agent_usage();
  if (!make_dirs(workdir) || chdir(workdir.c_str()) != 0) {
    std::cerr << "opbench: cannot use the work directory " << workdir << "\n";
    return 2;
  }
  std::string root = real_path(".");
  // the protocol's own copy of stdout; fd 1 then points at stderr, so that nothing else
  // printed (a library's warning) can break a message
  int protocol_fd = dup(1);
  dup2(2, 1);
  Output out(protocol_fd);
  Agent agent(root, out, static_cast<int64_t>(limit),
              {timeout_s, memory_mb > 0 ? memory_mb : 0.9 * ram_mb()});
  return agent.serve(0);
}

}  // namespace edgetwin
