// Overview — pidfds: holding on to one child process until it is reaped.
//
// An exec scanner's program is a child of this process, spawned by a pool worker's event loop. When the pool gives
// the scan up, that worker is destroyed with the loop that would have waited for the child: the killed child stays
// a zombie until the daemon exits. The main thread reaps it instead — through a pidfd, because pids are reused
// (pid_max is 32768 on these machines): a pidfd opened while the child is still ours names that process and no
// other, so a later waitid(P_PIDFD) can never take the exit status of an unrelated child that got the same pid.
// Must not: wait for anything without WNOHANG (this runs on the JS main thread).
#include <napi.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace blessd {

namespace {

// pidfdOpen(pid): a pidfd (O_CLOEXEC by default), or -1 if the process is gone (already reaped).
Napi::Value PidfdOpen(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "pidfdOpen(pid)");
  int pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 1) throw Napi::RangeError::New(env, "pidfdOpen: pid must be > 1");
  long fd = syscall(SYS_pidfd_open, pid, 0);
  return Napi::Number::New(env, fd < 0 ? -1 : (double)fd);
}

// pidfdReap(fd): 'reaped' (it had exited: its status is collected), 'running' (not exited yet: ask again), or
// 'gone' (someone else reaped it, or it is not our child). The fd stays open: the caller closes it.
Napi::Value PidfdReap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "pidfdReap(fd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  siginfo_t si{};
  int r;
  do r = waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Napi::String::New(env, "gone");
  return Napi::String::New(env, si.si_pid == 0 ? "running" : "reaped");
}

}  // namespace

void InitPidfd(Napi::Env env, Napi::Object exports) {
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdReap", Napi::Function::New(env, PidfdReap, "pidfdReap"));
}

}  // namespace blessd
