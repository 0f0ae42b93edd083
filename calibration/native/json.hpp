// A small JSON value, parser and serializer for the agent protocol (no dependencies).
//
// The parser accepts what Python's json.loads accepts from a UTF-8 line, except NaN
// and Infinity (the protocol refuses non-finite numbers anyway); duplicate keys keep
// the last value, as Python does. The serializer writes compact JSON with non-ASCII
// text escaped (Python's ensure_ascii), numbers as Python's repr writes them, so
// what the host parses back is exactly what was meant.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace edgetwin {

class Json {
 public:
  enum class Type { null, boolean, number, string, array, object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;  // insertion order: events keep their envelope first

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::boolean), bool_(b) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> &&
                                                    !std::is_same_v<T, bool>>>
  Json(T v)
      : type_(Type::number), integral_(true), num_(static_cast<double>(v)),
        int_(static_cast<int64_t>(v)) {}
  Json(double v) : type_(Type::number), num_(v) {}
  Json(const char* s) : type_(Type::string), str_(s) {}
  Json(std::string s) : type_(Type::string), str_(std::move(s)) {}
  Json(Array a) : type_(Type::array), arr_(std::move(a)) {}
  Json(Object o) : type_(Type::object), obj_(std::move(o)) {}

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::null; }
  bool is_bool() const { return type_ == Type::boolean; }
  bool is_number() const { return type_ == Type::number; }
  // written without a fraction or exponent: what Python parses as an int
  bool is_integer() const { return type_ == Type::number && integral_; }
  bool is_string() const { return type_ == Type::string; }
  bool is_array() const { return type_ == Type::array; }
  bool is_object() const { return type_ == Type::object; }

  bool as_bool() const { return bool_; }
  double as_number() const { return num_; }
  // exact for integers within int64; larger ones are held as doubles only (and clamped)
  int64_t as_int() const {
    if (integral_ && int_fits_) return int_;
    if (!(num_ > -9.2e18)) return INT64_MIN;  // also NaN
    if (num_ > 9.2e18) return INT64_MAX;
    return static_cast<int64_t>(num_);
  }
  bool int_fits() const { return int_fits_; }
  const std::string& as_string() const { return str_; }
  const Array& as_array() const { return arr_; }
  const Object& as_object() const { return obj_; }
  Array& as_array() { return arr_; }
  Object& as_object() { return obj_; }

  // the member `key` of an object, or nullptr
  const Json* find(const std::string& key) const {
    for (const auto& m : obj_)
      if (m.first == key) return &m.second;
    return nullptr;
  }
  // appends (or replaces) a member, for building events
  Json& set(const std::string& key, Json value) {
    type_ = Type::object;
    for (auto& m : obj_)
      if (m.first == key) return m.second = std::move(value);
    obj_.emplace_back(key, std::move(value));
    return obj_.back().second;
  }
  void push(Json value) {
    type_ = Type::array;
    arr_.push_back(std::move(value));
  }

 private:
  friend class JsonParser;
  Type type_ = Type::null;
  bool bool_ = false;
  bool integral_ = false;
  bool int_fits_ = true;
  double num_ = 0;
  int64_t int_ = 0;
  std::string str_;
  Array arr_;
  Object obj_;
};

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// More values than the caller allows: a line of 64 MiB of "0," would otherwise take
// gigabytes of Json values (each is about a hundred bytes).
struct JsonTooManyValues : JsonError {
  using JsonError::JsonError;
};

// continuation bytes that follow a UTF-8 lead byte; -1 for a byte that cannot lead
inline int utf8_extra(unsigned char c) {
  if (c < 0x80) return 0;
  if (c >= 0xC2 && c < 0xE0) return 1;
  if (c >= 0xE0 && c < 0xF0) return 2;
  if (c >= 0xF0 && c <= 0xF4) return 3;
  return -1;
}

// --- parsing ----------------------------------------------------------------------------
class JsonParser {
 public:
  static constexpr int kMaxDepth = 500;  // deeper nesting is refused, not a stack overflow

  explicit JsonParser(const std::string& text, size_t max_values = SIZE_MAX)
      : s_(text), max_values_(max_values) {}

  Json parse_document() {
    if (s_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;  // a UTF-8 BOM, as Python allows
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("Extra data");
    return v;
  }

 private:
  const std::string& s_;
  size_t pos_ = 0;
  size_t max_values_, values_ = 0;

  // as Python's json names a fault (the line is one line: no newline inside)
  [[noreturn]] void fail(const std::string& what) const {
    throw JsonError(what + ": line 1 column " + std::to_string(pos_ + 1) + " (char " +
                    std::to_string(pos_) + ")");
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) fail("Nesting too deep");
    if (++values_ > max_values_)
      throw JsonTooManyValues("more than " + std::to_string(max_values_) + " values");
    if (pos_ >= s_.size()) fail("Expecting value");
    char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Json(string());
    if (literal("true")) return Json(true);
    if (literal("false")) return Json(false);
    if (literal("null")) return Json();
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail("Expecting value");
  }

  Json object(int depth) {
    Json out{Json::Object{}};
    std::unordered_map<std::string, size_t> index;  // duplicate keys: the last one wins
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return out;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        fail("Expecting property name enclosed in double quotes");
      std::string key = string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') fail("Expecting ':' delimiter");
      ++pos_;
      skip_ws();
      Json v = value(depth + 1);
      auto found = index.find(key);
      if (found != index.end()) {
        out.obj_[found->second].second = std::move(v);
      } else {
        index.emplace(key, out.obj_.size());
        out.obj_.emplace_back(std::move(key), std::move(v));
      }
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return out;
      }
      fail("Expecting ',' delimiter");
    }
  }

  Json array(int depth) {
    Json out{Json::Array{}};
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return out;
    }
    for (;;) {
      skip_ws();
      out.arr_.push_back(value(depth + 1));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return out;
      }
      fail("Expecting ',' delimiter");
    }
  }

  Json number() {
    size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (pos_ < s_.size() && s_[pos_] >= '1' && s_[pos_] <= '9') {
      while (pos_ < s_.size() && isdigit(s_[pos_])) ++pos_;
    } else {
      fail("Expecting value");
    }
    if (pos_ < s_.size() && s_[pos_] == '.' && pos_ + 1 < s_.size() && isdigit(s_[pos_ + 1])) {
      integral = false;
      ++pos_;
      while (pos_ < s_.size() && isdigit(s_[pos_])) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t e = pos_ + 1;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      if (e < s_.size() && isdigit(s_[e])) {
        integral = false;
        pos_ = e;
        while (pos_ < s_.size() && isdigit(s_[pos_])) ++pos_;
      }
    }
    std::string text = s_.substr(start, pos_ - start);
    Json out;
    out.type_ = Json::Type::number;
    out.integral_ = integral;
    out.num_ = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      long long v = std::strtoll(text.c_str(), nullptr, 10);
      out.int_fits_ = errno != ERANGE;
      out.int_ = out.int_fits_ ? static_cast<int64_t>(v) : 0;
    }
    return out;
  }
  static bool isdigit(char c) { return c >= '0' && c <= '9'; }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("Invalid \\uXXXX escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("Invalid \\uXXXX escape");
    }
    return v;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // one UTF-8 sequence copied through; malformed bytes are refused (Python refuses
  // a line that is not UTF-8)
  void utf8_char(std::string& out) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(s_[i]); };
    unsigned c = byte(pos_);
    int extra = utf8_extra(static_cast<unsigned char>(c));
    if (extra < 0 || pos_ + static_cast<size_t>(extra) >= s_.size()) fail("Invalid UTF-8");
    unsigned cp = c & (0x3F >> extra);
    for (int i = 1; i <= extra; ++i) {
      unsigned b = byte(pos_ + i);
      if ((b & 0xC0) != 0x80) fail("Invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    bool overlong = (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("Invalid UTF-8");
    out.append(s_, pos_, static_cast<size_t>(extra) + 1);
    pos_ += static_cast<size_t>(extra) + 1;
  }

  std::string string() {
    std::string out;
    ++pos_;  // the opening quote
    for (;;) {
      if (pos_ >= s_.size()) fail("Unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("Invalid control character");
      if (c >= 0x80) {
        utf8_char(out);
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      if (++pos_ >= s_.size()) fail("Unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': put_utf8(out, code_point()); break;
        default: fail("Invalid \\escape");
      }
    }
  }

  // after "\u": a code point, joining a surrogate pair; a lone surrogate becomes U+FFFD
  unsigned code_point() {
    unsigned cp = hex4();
    if (cp >= 0xD800 && cp <= 0xDBFF && s_.compare(pos_, 2, "\\u") == 0) {
      size_t back = pos_;
      pos_ += 2;
      unsigned low = hex4();
      if (low >= 0xDC00 && low <= 0xDFFF) return 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      pos_ = back;
    }
    return (cp >= 0xD800 && cp <= 0xDFFF) ? 0xFFFD : cp;
  }
};

inline Json parse_json(const std::string& text, size_t max_values = SIZE_MAX) {
  return JsonParser(text, max_values).parse_document();
}

// --- writing ----------------------------------------------------------------------------
// A float as Python's repr writes it: the shortest digits that read back the same,
// in fixed notation for exponents -4..15 (3000.0, 0.0001) and scientific beyond (1e+16).
inline std::string float_repr(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;  // [-]d[.ddd]e(+|-)XX
  std::string sign = text[0] == '-' ? "-" : "";
  size_t e = text.find('e');
  int exponent = std::atoi(text.c_str() + e + 1);
  std::string digits;
  for (size_t i = sign.size(); i < e; ++i)
    if (text[i] != '.') digits += text[i];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (exponent < -4 || exponent >= 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) mantissa += "." + digits.substr(1);
    std::snprintf(buf, sizeof buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return sign + mantissa + buf;
  }
  if (exponent < 0)
    return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  size_t whole = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= whole) return sign + digits + std::string(whole - digits.size(), '0') + ".0";
  return sign + digits.substr(0, whole) + "." + digits.substr(whole);
}

inline void dump_string(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  auto escape = [&](unsigned u) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += hex[(u >> shift) & 0xF];
  };
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (c == '\r') {
      out += "\\r", ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c < 0x20 || c == 0x7F) {
      escape(c), ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c), ++i;
    } else {  // non-ASCII as \u escapes; bytes that are not UTF-8 (a hostname) as U+FFFD
      int extra = utf8_extra(c);
      unsigned cp = 0xFFFD;
      size_t used = 1;
      if (extra > 0 && i + static_cast<size_t>(extra) < s.size()) {
        unsigned v = c & (0x3F >> extra);
        bool ok = true;
        for (int k = 1; k <= extra && ok; ++k) {
          unsigned b = static_cast<unsigned char>(s[i + k]);
          ok = (b & 0xC0) == 0x80;
          v = (v << 6) | (b & 0x3F);
        }
        if (ok && v <= 0x10FFFF) cp = v, used = static_cast<size_t>(extra) + 1;
      }
      if (cp >= 0x10000) {
        escape(0xD800 + ((cp - 0x10000) >> 10));
        escape(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        escape(cp);
      }
      i += used;
    }
  }
  out += '"';
}

inline void dump(std::string& out, const Json& v) {
  switch (v.type()) {
    case Json::Type::null: out += "null"; break;
    case Json::Type::boolean: out += v.as_bool() ? "true" : "false"; break;
    case Json::Type::number:
      if (!std::isfinite(v.as_number())) out += "null";  // JSON has no NaN: say "unknown"
      else if (v.is_integer() && v.int_fits()) out += std::to_string(v.as_int());
      else out += float_repr(v.as_number());
      break;
    case Json::Type::string: dump_string(out, v.as_string()); break;
    case Json::Type::array: {
      out += '[';
      bool first = true;
      for (const auto& x : v.as_array()) {
        if (!first) out += ',';
        first = false;
        dump(out, x);
      }
      out += ']';
      break;
    }
    case Json::Type::object: {
      out += '{';
      bool first = true;
      for (const auto& m : v.as_object()) {
        if (!first) out += ',';
        first = false;
        dump_string(out, m.first);
        out += ':';
        dump(out, m.second);
      }
      out += '}';
      break;
    }
  }
}

inline std::string dump(const Json& v) {
  std::string out;
  dump(out, v);
  return out;
}

// A value as Python's repr names it in an error message ('text', 3, 0.5, None, True).
inline std::string repr(const Json* v) {
  if (v == nullptr || v->is_null()) return "None";
  if (v->is_bool()) return v->as_bool() ? "True" : "False";
  if (v->is_integer() && v->int_fits()) return std::to_string(v->as_int());
  if (v->is_integer()) {  // beyond int64: its digits, from the double
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.0f", v->as_number());
    return buf;
  }
  if (v->is_number()) return float_repr(v->as_number());
  if (v->is_string()) {
    std::string out = "'";
    for (char c : v->as_string()) out += c == '\'' ? std::string("\\'") : std::string(1, c);
    return out + "'";
  }
  std::string text = dump(*v);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

}  // namespace edgetwin
