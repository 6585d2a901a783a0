// imf-control: the control process. Reads its configuration, serves the control socket, keeps the
// dataplane on the active rule-set version, serves metrics. Nothing else lives here.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/atomic_file.h"
#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/dataplane_link.h"
#include "daemon/metrics.h"
#include "daemon/server.h"
#include "daemon/version_store.h"

namespace {

using imf::control::ControlConfig;

constexpr auto kShutdownWait = std::chrono::seconds(5);
constexpr auto kFollowInterval = std::chrono::milliseconds(200);

const char* usage() {
  return "usage: imf-control [--config FILE]\n"
         "  --config FILE   configuration file (default /etc/imf/control.conf; keys in config/control.conf)\n"
         "  --help          this text\n"
         "Serves the control socket (docs/control-protocol.md) until SIGINT or SIGTERM.\n";
}

// The dataplane is told artifact paths: make the state directory absolute.
imf::Status absolute_state_dir(ControlConfig* c) {
  if (imf::Status s = imf::make_dirs(c->state_dir, 0750); !s) return s;
  char buf[PATH_MAX];
  if (!::realpath(c->state_dir.c_str(), buf))
    return imf::make_error(c->state_dir + ": " + std::string(std::strerror(errno)));
  c->state_dir = buf;
  imf::control::resolve_default_paths(c);
  return imf::Ok{};
}

// Calls `fn` at start and every interval until stopped, on its own thread: Control::resync()
// every resync_interval, Control::follow_dataplane_records() every 200 ms.
class Periodic {
 public:
  Periodic(std::function<void()> fn, std::chrono::milliseconds interval) : fn_(std::move(fn)), interval_(interval) {
    thread_ = std::thread([this] { run(); });
  }
  // Asks the thread to stop; true when it ended within `timeout` (it may be mid-install).
  bool stop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    stop_ = true;
    cv_.notify_all();
    if (!cv_.wait_for(lock, timeout, [&] { return done_; })) return false;
    lock.unlock();
    thread_.join();
    return true;
  }
  ~Periodic() {
    if (thread_.joinable()) thread_.detach();  // only after a stop() that timed out, right before exit
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      fn_();
      lock.lock();
      cv_.wait_for(lock, interval_, [&] { return stop_; });
    }
    done_ = true;
    cv_.notify_all();
  }

  std::function<void()> fn_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = imf::control::kDefaultConfigPath;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage(), stdout);
      return 0;
    }
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else {
      std::fprintf(stderr, "imf-control: unknown argument '%s'\n%s", a.c_str(), usage());
      return 2;
    }
  }
  auto config = imf::control::load_config(config_path);
  if (!config) {
    std::fprintf(stderr, "imf-control: %s\n", config.error().c_str());
    return 1;
  }
  if (imf::Status s = absolute_state_dir(&config.value()); !s) {
    std::fprintf(stderr, "imf-control: state_dir: %s\n", s.error().c_str());
    return 1;
  }
  spdlog::set_default_logger(spdlog::stderr_logger_mt("imf-control"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals arrive on a signalfd the accept loop polls; every thread inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) {
    std::fprintf(stderr, "imf-control: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  imf::control::UnixDataplaneLink link(config->dataplane_socket);
  imf::control::Control control(config.value(), link);
  if (imf::Status s = control.init(); !s) {
    spdlog::error("{}", s.error());
    return 1;
  }
  auto server = imf::control::Server::listen(control.config(), control);
  if (!server) {
    spdlog::error("{}", server.error());
    return 1;
  }
  std::unique_ptr<imf::control::MetricsServer> metrics;
  if (!config->metrics_listen.empty()) {
    auto m = imf::control::MetricsServer::listen(config->metrics, [&control] { return control.metrics_text(); });
    if (!m) {
      spdlog::error("{}", m.error());
      return 1;
    }
    metrics = std::move(m.value());
    control.set_metrics_address(metrics->address());
    metrics->start();
    spdlog::info("metrics on http://{}/metrics", metrics->address());
  }
  Periodic resync([&control] { control.resync(); }, std::chrono::seconds(config->resync_interval_s));
  // imfd's escalations and lapses, from its record chain, into the account store.
  Periodic follow(
      [&control] {
        static std::string last_error;
        auto r = control.follow_dataplane_records();
        std::string error = r ? std::string() : r.error();
        if (!error.empty() && error != last_error) spdlog::error("{}", error);
        last_error = error;
      },
      kFollowInterval);
  spdlog::info("listening on {} (state in {}, dataplane at {})", config->socket, config->state_dir,
               config->dataplane_socket);
  spdlog::info("records in {}; following imfd's in {}; digest key {} (give imfd the same with --digest-key)",
               control.config().records_dir, control.config().dataplane_records_dir, control.config().digest_key_file);

  server.value()->run(sfd);

  spdlog::info("stopping");
  bool clean = resync.stop(kShutdownWait);
  clean = follow.stop(kShutdownWait) && clean;
  clean = server.value()->drain(kShutdownWait) && clean;
  if (metrics) metrics->stop();
  server.value().reset();  // removes the socket file
  spdlog::default_logger()->flush();
  // A thread still inside a long install or compile would touch freed objects on a normal return;
  // every file it writes is replaced atomically, so leaving without unwinding is safe.
  if (!clean) std::_Exit(0);
  return 0;
}
