#include "drivers/unitree/motion_switcher.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

namespace vertebra::unitree {

std::string rpc_request_topic(const std::string& service) { return "rt/api/" + service + "/request"; }
std::string rpc_response_topic(const std::string& service) { return "rt/api/" + service + "/response"; }

std::string json_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> json_field(const std::string& json, const std::string& key) {
  const std::string quoted = "\"" + key + "\"";
  size_t at = 0;
  while ((at = json.find(quoted, at)) != std::string::npos) {
    size_t i = at + quoted.size();
    while (i < json.size() && std::isspace(static_cast<unsigned char>(json[i]))) ++i;
    if (i >= json.size() || json[i] != ':') {  // a string value equal to the key, not the key
      at = i;
      continue;
    }
    ++i;
    while (i < json.size() && std::isspace(static_cast<unsigned char>(json[i]))) ++i;
    if (i < json.size() && json[i] == '"') {
      std::string v;
      for (++i; i < json.size() && json[i] != '"'; ++i) {
        if (json[i] == '\\' && i + 1 < json.size()) ++i;  // \" and \\ (enough for mode names)
        v += json[i];
      }
      return v;
    }
    const size_t end = json.find_first_of(",}", i);
    std::string v = json.substr(i, end == std::string::npos ? std::string::npos : end - i);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
    return v;
  }
  return std::nullopt;
}

RpcClient::RpcClient(DdsParticipant& p, const std::string& service) {
  writer_ = std::make_unique<DdsWriter>(p, &unitree_api_msg_dds__Request__desc, rpc_request_topic(service));
  reader_ = std::make_unique<DdsReader>(p, &unitree_api_msg_dds__Response__desc, rpc_response_topic(service),
                                        sizeof(ApiResponse), [this](const void* m) { on_response(m); });
}

RpcClient::~RpcClient() {
  reader_.reset();
  writer_.reset();
}

void RpcClient::on_response(const void* msg) {
  const auto& r = *static_cast<const ApiResponse*>(msg);
  std::lock_guard<std::mutex> lock(mutex_);
  if (pending_id_ == 0 || r.header.identity.id != pending_id_ || answered_) return;  // another client's
  answer_.api_id = r.header.identity.api_id;
  answer_.code = r.header.status.code;
  answer_.data = r.data ? r.data : "";
  answered_ = true;
  cv_.notify_all();
}

std::optional<RpcAnswer> RpcClient::call(int64_t api_id, const std::string& parameter, double timeout_s,
                                         double resend_s) {
  using clock = std::chrono::steady_clock;
  ApiRequest q{};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The SDK's request id is the caller's monotonic clock in ns; strictly increasing here.
    last_id_ = std::max(steady_ns(), last_id_ + 1);
    pending_id_ = last_id_;
    answered_ = false;
    q.header.identity.id = pending_id_;
  }
  q.header.identity.api_id = api_id;
  q.parameter = const_cast<char*>(parameter.c_str());  // serialised by write(), not kept
  const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s));
  const auto resend = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(resend_s));
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    lock.unlock();
    writer_->write(&q);
    ++sent_;
    lock.lock();
    const auto until = std::min(deadline, clock::now() + resend);
    if (cv_.wait_until(lock, until, [&] { return answered_; })) break;
    if (clock::now() >= deadline) {
      pending_id_ = 0;
      return std::nullopt;
    }
  }
  pending_id_ = 0;
  if (answer_.api_id != api_id) return std::nullopt;  // not the call we made (the SDK's API_NOT_MATCH)
  return answer_;
}

RpcServer::RpcServer(DdsParticipant& p, const std::string& service, Handler handler) : handler_(std::move(handler)) {
  writer_ = std::make_unique<DdsWriter>(p, &unitree_api_msg_dds__Response__desc, rpc_response_topic(service));
  // Handlers may create and delete entities (a release deletes the service's state writer): their
  // own thread, not Cyclone's receive thread.
  reader_ = std::make_unique<DdsReader>(p, &unitree_api_msg_dds__Request__desc, rpc_request_topic(service),
                                        sizeof(ApiRequest), [this](const void* m) { on_request(m); }, false,
                                        Delivery::kOwnThread);
}

RpcServer::~RpcServer() {
  reader_.reset();  // no request is being handled past here
  writer_.reset();
}

void RpcServer::on_request(const void* msg) {
  const auto& q = *static_cast<const ApiRequest*>(msg);
  requests_.fetch_add(1, std::memory_order_relaxed);
  const RpcAnswer a = handler_(q.header.identity.api_id, q.parameter ? q.parameter : "");
  if (q.header.policy.noreply) return;
  ApiResponse r{};
  r.header.identity = q.header.identity;
  r.header.status.code = a.code;
  r.data = const_cast<char*>(a.data.c_str());
  writer_->write(&r);
}

MotionSwitcherClient::MotionSwitcherClient(int domain_id, const std::string& network_interface)
    : pp_(std::make_unique<DdsParticipant>(domain_id, network_interface)),
      rpc_(std::make_unique<RpcClient>(*pp_, kMotionSwitcherService)) {}

std::optional<std::string> MotionSwitcherClient::check_mode(double timeout_s) {
  const auto a = rpc_->call(motion_switcher_api::kCheckMode, "{}", timeout_s);
  if (!a || a->code != kRpcOk) return std::nullopt;
  return json_field(a->data, "name").value_or("");
}

std::optional<int32_t> MotionSwitcherClient::select_mode(const std::string& mode, double timeout_s) {
  const auto a = rpc_->call(motion_switcher_api::kSelectMode, "{\"name\":\"" + json_escape(mode) + "\"}", timeout_s);
  if (!a) return std::nullopt;
  return a->code;
}

std::optional<int32_t> MotionSwitcherClient::release_mode(double timeout_s) {
  const auto a = rpc_->call(motion_switcher_api::kReleaseMode, "{}", timeout_s);
  if (!a) return std::nullopt;
  return a->code;
}

}  // namespace vertebra::unitree
