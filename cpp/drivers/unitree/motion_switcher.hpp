// Unitree's RPC over DDS, and the one service Vertebra speaks through it: motion_switcher, which
// starts and stops the robot's built-in motion (sport) service. That service commands the motors
// itself, so a low-level controller must release it before it takes them (the driver refuses to
// activate while it runs; the sim bridge emulates it).
//
// Protocol (facts: unitree_sdk2_python unitree_sdk2py/rpc/client_stub.py, client_base.py,
// server_stub.py, core/channel_name.py, rpc/internal.py; types in idl/unitree_api.idl):
//  - a service "<name>" reads unitree_api Request_ on rt/api/<name>/request and writes Response_ on
//    rt/api/<name>/response; every client sees every response and keeps the one whose
//    header.identity.id is its request's, and checks header.identity.api_id is the one it called;
//  - header.status.code 0 is success; the data is JSON (Response_.data), the parameter too.
// motion_switcher (facts: unitree_sdk2 include/unitree/robot/b2/motion_switcher/motion_switcher_api.hpp,
// motion_switcher_client.hpp; unitree_sdk2py/comm/motion_switcher/motion_switcher_api.py,
// motion_switcher_client.py; Unitree's G1 developer page "Motion Switcher Service Interface"):
//  - CheckMode 1001 answers {"form": "0", "name": "<mode>"}: name is the active motion mode
//    ("normal", "ai", ...), "" once released (unitree_sdk2's G1/Go2 low-level examples loop on
//    CheckMode + ReleaseMode until the name is empty);
//  - SelectMode 1002 takes {"name": "<mode>"}; ReleaseMode 1003 takes {}; SetSilent 1004 takes
//    {"silent": bool}; GetSilent 1005 answers {"silent": bool};
//  - error 7001 is "request parameter error".
// Configuration time only (the tick never calls any of this).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "drivers/unitree/dds.hpp"
#include "unitree_api.h"

namespace vertebra::unitree {

using ApiRequest = unitree_api_msg_dds__Request_;
using ApiResponse = unitree_api_msg_dds__Response_;

inline constexpr const char* kMotionSwitcherService = "motion_switcher";
// The sport service's state topic (unitree_sdk2 examples go2/go2_sport_client.cpp TOPIC_HIGHSTATE):
// published while the built-in motion service runs.
inline constexpr const char* kSportModeStateTopic = "rt/sportmodestate";

namespace motion_switcher_api {
inline constexpr int64_t kCheckMode = 1001;
inline constexpr int64_t kSelectMode = 1002;
inline constexpr int64_t kReleaseMode = 1003;
inline constexpr int64_t kSetSilent = 1004;
inline constexpr int64_t kGetSilent = 1005;
inline constexpr int32_t kErrParameter = 7001;  // "Request parameter error" (Unitree's error table)
}  // namespace motion_switcher_api

inline constexpr int32_t kRpcOk = 0;                     // unitree_sdk2py/rpc/internal.py RPC_OK
inline constexpr int32_t kRpcErrServerApiNotImpl = 3203;  // RPC_ERR_SERVER_API_NOT_IMPL

// "rt/api/<service>/request" and ".../response".
std::string rpc_request_topic(const std::string& service);
std::string rpc_response_topic(const std::string& service);

// Just enough JSON for the services' flat objects: a string escaped for a JSON string literal,
// and the value of `key` in a flat object (a string's contents unescaped, any other value as its
// text: "true", "0"); nullopt when the key is absent.
std::string json_escape(const std::string& s);
std::optional<std::string> json_field(const std::string& json, const std::string& key);

struct RpcAnswer {
  int64_t api_id = 0;
  int32_t code = 0;
  std::string data;
};

// A client of one service: call() sends a request and waits for its answer.
class RpcClient {
 public:
  RpcClient(DdsParticipant& p, const std::string& service);
  ~RpcClient();
  // Sends `api_id` with `parameter` (JSON), again every resend_s (discovery of a just-created
  // endpoint can lose a first sample; the calls used here are idempotent), until the answer with
  // this request's id arrives or timeout_s passes: nullopt then (no such service, or it is busy).
  std::optional<RpcAnswer> call(int64_t api_id, const std::string& parameter, double timeout_s,
                                double resend_s = 0.1);
  int writers_matched() const { return reader_ ? reader_->matched_writers() : 0; }  // services answering here
  uint64_t requests_sent() const { return sent_; }

 private:
  void on_response(const void* msg);
  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t pending_id_ = 0, last_id_ = 0;
  bool answered_ = false;
  RpcAnswer answer_;
  uint64_t sent_ = 0;
  std::unique_ptr<DdsWriter> writer_;
  std::unique_ptr<DdsReader> reader_;  // last: destroyed first, its thread stops before the rest goes
};

// A service: each request is handed to `handler` on the reader's thread and answered (unless the
// request says noreply), its identity echoed.
class RpcServer {
 public:
  using Handler = std::function<RpcAnswer(int64_t api_id, const std::string& parameter)>;
  RpcServer(DdsParticipant& p, const std::string& service, Handler handler);
  ~RpcServer();
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

 private:
  void on_request(const void* msg);
  Handler handler_;
  std::atomic<uint64_t> requests_{0};
  std::unique_ptr<DdsWriter> writer_;
  std::unique_ptr<DdsReader> reader_;
};

// motion_switcher as an operator (or a test) calls it, on a participant of its own: what
// unitree_sdk2's MotionSwitcherClient does, for a robot or the sim bridge.
class MotionSwitcherClient {
 public:
  MotionSwitcherClient(int domain_id, const std::string& network_interface);
  // CheckMode: the active mode's name ("" released); nullopt: no successful answer within timeout_s.
  std::optional<std::string> check_mode(double timeout_s);
  // SelectMode / ReleaseMode: the answer's status code (0: done); nullopt: no answer.
  std::optional<int32_t> select_mode(const std::string& mode, double timeout_s);
  std::optional<int32_t> release_mode(double timeout_s);

 private:
  std::unique_ptr<DdsParticipant> pp_;
  std::unique_ptr<RpcClient> rpc_;  // after pp_: destroyed first
};

}  // namespace vertebra::unitree
