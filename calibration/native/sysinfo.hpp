// What the agent reads of the machine (Linux and Android /proc and /sys) and the few
// file-system helpers it needs: making directories and keeping paths inside its work dir.
#pragma once

#include <sched.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace edgetwin {

constexpr double kMiB = 1024.0 * 1024.0;

inline bool path_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// The number after "Key:" in a /proc file of "Key: value kB" lines, in kB; -1 if absent.
inline double proc_kb(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0)
      return std::strtod(line.c_str() + key.size() + 1, nullptr);
  return -1;
}

// This process's resident memory (VmRSS) and its high-water mark (VmHWM), in MiB.
inline double rss_mb() { return std::max(0.0, proc_kb("/proc/self/status", "VmRSS")) / 1024; }
inline double peak_rss_mb() {
  double hwm = proc_kb("/proc/self/status", "VmHWM");
  return hwm < 0 ? rss_mb() : hwm / 1024;
}

// Restarts VmHWM from the current resident set (Linux 4.0+), so that a session's peak
// is its own and not an earlier request's. False where the kernel does not allow it.
inline bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

inline double ram_mb() {
  double kb = proc_kb("/proc/meminfo", "MemTotal");
  return kb < 0 ? 4096.0 : kb / 1024;
}

inline double available_mb() {
  double kb = proc_kb("/proc/meminfo", "MemAvailable");
  return kb < 0 ? ram_mb() : kb / 1024;
}

// The processor's name: "model name" (x86), or "Hardware"/"Model" (ARM boards, phones).
inline std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    for (const char* key : {"model name", "Hardware", "Model"})
      if (line.compare(0, std::char_traits<char>::length(key), key) == 0) {
        size_t colon = line.find(':');
        if (colon != std::string::npos) return trim(line.substr(colon + 1));
      }
  return "";
}

struct Uname {
  std::string sysname, release, machine, nodename;
};

inline Uname uname_facts() {
  struct utsname u;
  if (uname(&u) != 0) return {};
  return {u.sysname, u.release, u.machine, u.nodename};
}

inline long online_cpus() { return sysconf(_SC_NPROCESSORS_ONLN); }

// The CPUs this process may run on (a local device's pinning shows here).
inline std::vector<int> affinity() {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

// phone (Android), board (a Jetson), laptop (has a battery) or server, as
// calibration/host.py device_class decides.
inline std::string device_class() {
  if (path_exists("/system/build.prop")) return "phone";
  if (path_exists("/etc/nv_tegra_release") ||
      read_text("/proc/device-tree/compatible").find("tegra") != std::string::npos)
    return "board";
  for (int i = 0; i < 4; ++i)
    if (path_exists("/sys/class/power_supply/BAT" + std::to_string(i))) return "laptop";
  return "server";
}

// The meters this runner can read: memory always; the Android battery where it shows.
inline std::vector<std::string> readable_meters() {
  std::vector<std::string> out;
  if (path_exists("/proc/self/status")) out.push_back("/proc status (memory)");
  if (path_exists("/sys/class/power_supply/battery/current_now")) out.push_back("Android battery");
  return out;
}

// --- paths ---------------------------------------------------------------------------------
// mkdir -p: every missing directory of `path`.
inline bool make_dirs(const std::string& path) {
  if (path.empty()) return true;
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string part = path.substr(0, i);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

inline std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

inline bool is_under(const std::string& path, const std::string& root) {
  return path == root || (path.compare(0, root.size(), root) == 0 &&
                          (root == "/" || path[root.size()] == '/'));
}

// `name` (relative, no "..") joined to `root`, when it stays inside `root` even through
// symbolic links; "" when it does not. The deepest part that exists is resolved; the
// rest cannot leave, having no "..".
inline std::string inside(const std::string& root, const std::string& name) {
  if (name.empty() || name[0] == '/' || name.find('\0') != std::string::npos) return "";
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string part; std::getline(ss, part, '/');) {
    if (part == "..") return "";
    if (!part.empty() && part != ".") parts.push_back(part);
  }
  std::string existing = root;
  size_t resolved = 0;
  struct stat st;  // lstat: a dangling link counts as there, and realpath then refuses it
  while (resolved < parts.size() && lstat((existing + "/" + parts[resolved]).c_str(), &st) == 0)
    existing += "/" + parts[resolved++];
  std::string base = real_path(existing);
  if (base.empty() || !is_under(base, root)) return "";
  for (size_t i = resolved; i < parts.size(); ++i) base += "/" + parts[i];
  return base;
}

}  // namespace edgetwin
