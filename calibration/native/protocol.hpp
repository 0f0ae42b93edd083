// The agent protocol of hil/agent/protocol.py, in C++: versioned JSON lines over stdin and
// stdout. The host writes one request a line; the agent answers with events, each
// carrying the request's id, and ends every request with exactly one `result` or
// `error`. Requests are checked field by field exactly as the Python agent checks
// them, with the same error codes and messages, so that a host cannot tell the
// runners apart by how they refuse.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "json.hpp"

namespace edgetwin {

constexpr const char* kProtocol = "edgetwin-agent";
constexpr int kVersion = 1;
constexpr int64_t kDefaultMaxLineBytes = 64LL * 1024 * 1024;
constexpr double kMaxSteps = 100000;
constexpr double kMaxDim = 1 << 20;
constexpr double kMaxTimeoutS = 7 * 86400.0;

// error codes: what the host may act on
namespace code {
constexpr const char* bad_json = "bad_json";
constexpr const char* too_large = "too_large";
constexpr const char* bad_version = "bad_version";
constexpr const char* unknown_kind = "unknown_kind";
constexpr const char* bad_value = "bad_value";
constexpr const char* bad_path = "bad_path";
constexpr const char* memory = "memory";
constexpr const char* timeout = "timeout";
constexpr const char* failed = "failed";
}  // namespace code

// A request that breaks the protocol or a bound: answered with an `error` event.
struct ProtocolError : std::exception {
  ProtocolError(std::string c, std::string m, Json rid = Json())
      : code(std::move(c)), message(std::move(m)), id(std::move(rid)) {}
  const char* what() const noexcept override { return message.c_str(); }
  std::string code, message;
  Json id;  // the request's id, or null where the line gave none usable
};

// Python's format(x, 'g'), for the bounds named in messages
inline std::string fmt_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

inline std::string fmt_0f(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

// An event's envelope; fields are appended with Json::set.
inline Json event(const Json& id, const char* name) {
  Json e;
  e.set("protocol", kProtocol);
  e.set("version", kVersion);
  e.set("id", id);
  e.set("event", name);
  return e;
}

inline Json error_event(const ProtocolError& err) {
  Json e = event(err.id, "error");
  e.set("code", err.code);
  e.set("message", err.message);
  return e;
}

// Writes whole lines to a file descriptor (stdout): a message is never interleaved or
// cut. A host that went away ends the agent (its next line has no reader).
class Output {
 public:
  explicit Output(int fd) : fd_(fd) {}

  void emit(const Json& message) {
    std::string line = dump(message);
    line += '\n';
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) std::_Exit(0);  // nobody reads us any more: stop working for nobody
      p += n;
      left -= static_cast<size_t>(n);
    }
  }

 private:
  int fd_;
};

// Reads lines of at most `limit` bytes (without the newline). A longer line is read to
// its end and discarded without ever being held whole, then reported as too large.
class LineReader {
 public:
  enum class Got { line, too_large, eof };

  LineReader(int fd, int64_t limit) : fd_(fd), limit_(limit), buf_(1 << 16) {}

  // `size`: the bytes the line took, its newline included
  Got next(std::string& line, int64_t& size) {
    line.clear();
    size = 0;
    bool discarding = false;
    for (;;) {
      if (pos_ == end_ && !fill()) {
        if (discarding) return Got::too_large;
        if (size == 0) return Got::eof;
        strip(line);
        return Got::line;  // a last line without its newline
      }
      const char* start = buf_.data() + pos_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      size_t take = nl ? static_cast<size_t>(nl - start) : end_ - pos_;
      size += static_cast<int64_t>(take);
      pos_ += take;
      if (!discarding && size > limit_) {
        discarding = true;
        std::string().swap(line);  // give back what it held
      }
      if (!discarding) line.append(start, take);
      if (nl) {
        ++pos_;
        ++size;
        if (discarding) return Got::too_large;
        strip(line);
        return Got::line;
      }
    }
  }

 private:
  int fd_;
  int64_t limit_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;

  bool fill() {
    for (;;) {
      ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      pos_ = 0;
      end_ = static_cast<size_t>(n);
      return true;
    }
  }

  static void strip(std::string& line) {  // Python's rstrip(b"\r\n")
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  }
};

inline bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n\v\f") == std::string::npos;
}

// characters (code points) of UTF-8 text, as Python's len() counts them
inline size_t text_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// A line as a checked envelope: a JSON object of this protocol and version, with an id.
// `max_values` bounds the memory its parse may take.
inline Json decode(const std::string& line, size_t max_values) {
  Json data;
  try {
    data = parse_json(line, max_values);
  } catch (const JsonTooManyValues& err) {
    throw ProtocolError(code::memory, std::string("out of memory: the request holds ") +
                                          err.what() + "; refused");
  } catch (const JsonError& err) {
    throw ProtocolError(code::bad_json, std::string("not JSON (") + err.what() + ")");
  }
  if (!data.is_object()) throw ProtocolError(code::bad_json, "expected a JSON object");
  const Json* rid = data.find("id");
  Json id;
  if (rid && rid->is_string() && text_length(rid->as_string()) >= 1 &&
      text_length(rid->as_string()) <= 128)
    id = *rid;
  const Json* protocol = data.find("protocol");
  if (!protocol || !protocol->is_string() || protocol->as_string() != kProtocol)
    throw ProtocolError(code::bad_version, std::string("protocol must be '") + kProtocol + "'",
                        id);
  const Json* version = data.find("version");
  bool one = version && ((version->is_number() && version->as_number() == kVersion) ||
                         (version->is_bool() && version->as_bool()));  // Python: True == 1
  if (!one)
    throw ProtocolError(code::bad_version,
                        "protocol version " + repr(version) + " is not " +
                            std::to_string(kVersion),
                        id);
  if (id.is_null()) throw ProtocolError(code::bad_value, "id: expected text of 1-128 characters");
  return data;
}

// Reads the fields of one JSON object, each checked; `done` refuses the ones left.
// Mirrors hil/agent/protocol.py _Fields, messages included.
class Fields {
 public:
  Fields(const Json& data, Json rid, std::set<std::string> envelope, std::string prefix = "")
      : data_(data), rid_(std::move(rid)), prefix_(std::move(prefix)) {
    for (const auto& m : data.as_object())
      if (!envelope.count(m.first)) left_.insert(m.first);
  }

  ProtocolError bad(const std::string& key, const std::string& what) const {
    return ProtocolError(code::bad_value, prefix_ + key + ": " + what, rid_);
  }

  double number(const std::string& key, double lo, double hi, std::optional<double> fallback,
                bool integer = false) {
    const Json* v = take(key);
    if (!v) {
      if (!fallback) throw bad(key, "missing");
      return *fallback;
    }
    bool ok = integer ? v->is_integer() : v->is_number();
    if (!ok || !std::isfinite(v->as_number()))
      throw bad(key, std::string("expected ") + (integer ? "an integer" : "a number") + ", got " +
                         repr(v));
    if (!(lo <= v->as_number() && v->as_number() <= hi))
      throw bad(key, "must be in [" + fmt_g(lo) + ", " + fmt_g(hi) + "], got " + repr(v));
    return v->as_number();
  }

  int64_t integer(const std::string& key, double lo, double hi, std::optional<double> fallback) {
    number(key, lo, hi, fallback, true);
    const Json* v = data_.find(key);
    return v && !v->is_null() ? v->as_int() : static_cast<int64_t>(*fallback);
  }

  std::optional<std::string> text(const std::string& key) {
    const Json* v = take(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw bad(key, "expected text");
    return v->as_string();
  }

  std::string choice(const std::string& key, const std::vector<std::string>& options,
                     std::optional<std::string> fallback) {
    const Json* v = take(key);
    if (!v && fallback) return *fallback;
    if (v && v->is_string())
      for (const auto& o : options)
        if (o == v->as_string()) return o;
    std::string names;
    for (const auto& o : options) names += (names.empty() ? "" : ", ") + o;
    throw bad(key, "expected one of " + names + ", got " + repr(v));
  }

  bool flag(const std::string& key, bool fallback) {
    const Json* v = take(key);
    if (!v) return fallback;
    if (!v->is_bool()) throw bad(key, "expected true or false, got " + repr(v));
    return v->as_bool();
  }

  const Json& mapping(const std::string& key) {
    const Json* v = take(key);
    if (!v || !v->is_object()) throw bad(key, "expected an object");
    return *v;
  }

  const Json::Array& items(const std::string& key) {
    static const Json::Array none;
    const Json* v = take(key);
    if (!v) return none;
    if (!v->is_array()) throw bad(key, "expected a list");
    return v->as_array();
  }

  void done() {
    if (!left_.empty()) throw bad(*left_.begin(), "unknown field");
  }

 private:
  const Json& data_;
  Json rid_;
  std::string prefix_;
  std::set<std::string> left_;  // sorted: the first unknown field named is Python's

  // the value of `key`, or nullptr when absent or null (Python's dict.get)
  const Json* take(const std::string& key) {
    left_.erase(key);
    const Json* v = data_.find(key);
    return v && !v->is_null() ? v : nullptr;
  }
};

// A shape: 1-6 integers in [1, 2^34]; anything else throws `bad` (which names the field).
inline std::vector<int64_t> shape_of(const Json::Array& items, const ProtocolError& bad) {
  if (items.empty() || items.size() > 6) throw bad;
  std::vector<int64_t> shape;
  for (const auto& d : items) {
    if (!d.is_integer() || d.as_number() < 1 || d.as_number() > 17179869184.0) throw bad;
    shape.push_back(d.as_int());
  }
  return shape;
}

}  // namespace edgetwin
