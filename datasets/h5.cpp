#include "datasets/h5.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define CONVOY_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONVOY_SANITIZED 1
#endif
#endif
#ifndef CONVOY_SANITIZED
#define CONVOY_SANITIZED 0
#endif
#if CONVOY_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

namespace convoy::datasets::h5 {
namespace {

herr_t innermost(unsigned, const H5E_error2_t* e, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (s->empty() && e->desc) {
    *s = e->desc;
    for (char& c : *s)  // HDF5's write-failure text spans lines; a message is one line
      if (c == '\n') c = ' ';
  }
  return 0;
}

std::string explain() {
  std::string e = last_error();
  return e.empty() ? "" : " (HDF5: " + e + ")";
}

Handle open_attribute(hid_t loc, const std::string& name, const std::string& file) {
  CONVOY_CHECK(has_attribute(loc, name),
               file << " has no root attribute `" << name << "`; it is not a convoy shard of this format or it "
                    << "was written incompletely: convert the data again.");
  Handle a(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
  CONVOY_CHECK(a.valid(), "Cannot open attribute `" << name << "` of " << file << explain() << ".");
  return a;
}

Handle string_type() {
  Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& file) {
  CONVOY_CHECK(has_object(loc, name), file << " has no dataset `" << name
                                           << "`; the shard is incomplete or damaged: convert the data again.");
  Handle d(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
  CONVOY_CHECK(d.valid(), "Cannot open dataset `" << name << "` of " << file << explain() << ".");
  return d;
}

void quiet_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string last_error() {
  std::string s;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &s);
  return s;
}

Handle create_file(const std::string& path) {
  quiet_errors();
  Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  CONVOY_CHECK(f.valid(), "Cannot create " << path << explain() << "; check that the folder exists and is writable.");
  return f;
}

Handle open_file_readonly(const std::string& path) {
  quiet_errors();
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  CONVOY_CHECK(f.valid(), "Cannot open " << path << " as an HDF5 file" << explain()
                                         << "; the shard is missing, truncated or not HDF5: convert the data again.");
  return f;
}

bool has_object(hid_t loc, const std::string& name) { return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0; }
bool has_attribute(hid_t loc, const std::string& name) { return H5Aexists(loc, name.c_str()) > 0; }

void write_string_attribute(hid_t loc, const std::string& name, const std::string& value) {
  Handle type = string_type();
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char* p = value.c_str();
  CONVOY_CHECK(a.valid() && H5Awrite(a.get(), type.get(), &p) >= 0,
               "Cannot write attribute `" << name << "`" << explain() << ".");
}

void write_int_attribute(hid_t loc, const std::string& name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(loc, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  CONVOY_CHECK(a.valid() && H5Awrite(a.get(), H5T_NATIVE_INT64, &value) >= 0,
               "Cannot write attribute `" << name << "`" << explain() << ".");
}

void write_double_array_attribute(hid_t loc, const std::string& name, const std::vector<double>& values) {
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle a(H5Acreate2(loc, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  CONVOY_CHECK(a.valid() && H5Awrite(a.get(), H5T_NATIVE_DOUBLE, values.data()) >= 0,
               "Cannot write attribute `" << name << "`" << explain() << ".");
}

// One string stored as variable-length or fixed-length UTF-8: `read(mem_type, buffer)` performs the
// attribute or dataset read; it returns false on failure, and `what` names the object in the error.
template <typename Read>
std::string read_one_string(hid_t file_type, const Read& read, const std::string& what) {
  if (H5Tis_variable_str(file_type) > 0) {
    Handle mtype = string_type();
    char* p = nullptr;
    CONVOY_CHECK(read(mtype.get(), static_cast<void*>(&p)), "Cannot read " << what << explain() << ".");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  const size_t size = H5Tget_size(file_type);
  std::string s(size, '\0');
  Handle mtype(H5Tcopy(H5T_C_S1));
  H5Tset_size(mtype.get(), size);
  CONVOY_CHECK(read(mtype.get(), static_cast<void*>(s.data())), "Cannot read " << what << explain() << ".");
  s.resize(std::min(s.size(), s.find('\0')));
  return s;
}

std::string read_string_attribute(hid_t loc, const std::string& name, const std::string& file) {
  Handle a = open_attribute(loc, name, file);
  Handle ftype(H5Aget_type(a.get()));
  CONVOY_CHECK(H5Tget_class(ftype.get()) == H5T_STRING,
               "Attribute `" << name << "` of " << file << " is not a string; the shard is damaged.");
  return read_one_string(
      ftype.get(), [&](hid_t mtype, void* buf) { return H5Aread(a.get(), mtype, buf) >= 0; },
      "attribute `" + name + "` of " + file);
}

int64_t read_int_attribute(hid_t loc, const std::string& name, const std::string& file) {
  Handle a = open_attribute(loc, name, file);
  Handle ftype(H5Aget_type(a.get()));
  Handle space(H5Aget_space(a.get()));
  CONVOY_CHECK(H5Tget_class(ftype.get()) == H5T_INTEGER && H5Sget_simple_extent_npoints(space.get()) == 1,
               "Attribute `" << name << "` of " << file << " is not an integer; the shard is damaged.");
  int64_t v = 0;
  CONVOY_CHECK(H5Aread(a.get(), H5T_NATIVE_INT64, &v) >= 0,
               "Cannot read attribute `" << name << "` of " << file << explain() << ".");
  return v;
}

std::vector<double> read_double_array_attribute(hid_t loc, const std::string& name, const std::string& file) {
  Handle a = open_attribute(loc, name, file);
  Handle space(H5Aget_space(a.get()));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  CONVOY_CHECK(n >= 0, "Cannot read the shape of attribute `" << name << "` of " << file << ".");
  std::vector<double> v(static_cast<size_t>(n));
  CONVOY_CHECK(H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()) >= 0,
               "Attribute `" << name << "` of " << file << " is not numeric" << explain() << "; the shard is damaged.");
  return v;
}

void write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                   const std::vector<hsize_t>& dims, const void* data) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS);
  H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY);
  Handle d(H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  CONVOY_CHECK(d.valid(), "Cannot create dataset `" << name << "`" << explain() << ".");
  hsize_t n = 1;
  for (hsize_t v : dims) n *= v;
  if (n > 0)
    CONVOY_CHECK(H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
                 "Cannot write dataset `" << name << "`" << explain() << "; is the disk full?");
}

void write_string_dataset(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  Handle type = string_type();
  write_dataset(loc, name, type.get(), type.get(), {values.size()}, ptrs.data());
}

std::vector<hsize_t> dataset_dims(hid_t loc, const std::string& name, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle space(H5Dget_space(d.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  CONVOY_CHECK(rank >= 0, "Cannot read the shape of dataset `" << name << "` of " << file << explain() << ".");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

void read_dataset(hid_t loc, const std::string& name, hid_t mem_type, void* out, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle space(H5Dget_space(d.get()));
  if (H5Sget_simple_extent_npoints(space.get()) == 0) return;
  CONVOY_CHECK(H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0,
               "Cannot read dataset `" << name << "` of " << file << explain()
                                       << "; the shard is damaged or has the wrong types: convert the data again.");
}

std::string read_string_element(hid_t loc, const std::string& name, hsize_t i, const std::string& file) {
  Handle d = open_dataset(loc, name, file);
  Handle ftype(H5Dget_type(d.get()));
  CONVOY_CHECK(H5Tget_class(ftype.get()) == H5T_STRING, "Dataset `" << name << "` of " << file << " is not strings.");
  Handle fspace(H5Dget_space(d.get()));
  CONVOY_CHECK(H5Sget_simple_extent_npoints(fspace.get()) > static_cast<hssize_t>(i),
               "Dataset `" << name << "` of " << file << " has no element " << i << ".");
  const hsize_t one = 1;
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &i, nullptr, &one, nullptr);
  Handle mspace(H5Screate_simple(1, &one, nullptr));
  return read_one_string(
      ftype.get(),
      [&](hid_t mtype, void* buf) { return H5Dread(d.get(), mtype, mspace.get(), fspace.get(), H5P_DEFAULT, buf) >= 0; },
      "`" + name + "`[" + std::to_string(i) + "] of " + file);
}

}  // namespace convoy::datasets::h5

namespace convoy::datasets::h5 {

std::string contain(const std::string& file, const std::function<std::string()>& read) {
  static const double base_s = [] {
    const char* env = std::getenv("CONVOY_HDF5_TIMEOUT_S");
    return env && std::atof(env) > 0 ? std::atof(env) : 60.0;
  }();
  // A large checkpoint on slow storage (a 1 GB VGG-16 checkpoint is read twice: hashed, then shipped)
  // takes longer than a shard's tables: 1 s more per 20 MB of file.
  struct stat st {};
  const double limit_s = base_s + (::stat(file.c_str(), &st) == 0 ? static_cast<double>(st.st_size) / 20e6 : 0.0);
  int fds[2];
  CONVOY_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "cannot create a pipe to check " << file << ": " << std::strerror(errno));
  std::fflush(nullptr);  // the child must not flush this process's buffered output a second time
  const pid_t pid = ::fork();
  CONVOY_CHECK(pid >= 0, "cannot fork to check " << file << ": " << std::strerror(errno));
  if (pid == 0) {  // the child: read, report an error's message, never return into the caller
    ::close(fds[0]);
    // A crash must end the child by its signal, whatever handlers this process installed (a sanitizer's,
    // a fuzzer's): that is how the parent tells a crash from an error.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, SIG_DFL);
    // A stop signal is the parent's to handle (common/stop.h); a launcher that signals the whole process
    // group must not kill the read and so make the file look damaged. The parent's timeout still holds.
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGUSR1);
    ::pthread_sigmask(SIG_BLOCK, &stops, nullptr);
#if CONVOY_SANITIZED
    // Under a sanitizer (tests, fuzzing) its report on HDF5's memory errors ends the child too, without
    // the death callback a fuzzer registered (which would record the contained crash as its own).
    __sanitizer_set_death_callback(nullptr);
#endif
    int code = 0;
    std::string message;
    try {
      message = read();  // the result, sent to the parent
    } catch (const Error& e) {
      message = e.message(), code = 2;
    } catch (const std::exception& e) {
      message = e.what(), code = 2;
    }
    for (size_t done = 0; done < message.size();) {
      const ssize_t n = ::write(fds[1], message.data() + done, message.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string message;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  bool timed_out = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    // Read straight into the result, 1 MB at a time: a checkpoint's tensors come back this way.
    const size_t at = message.size();
    message.resize(at + (1 << 20));
    const ssize_t n = ::read(fds[0], message.data() + at, 1 << 20);
    message.resize(at + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed its end: it is exiting
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CONVOY_CHECK(!timed_out, file << ": HDF5 did not finish reading it within " << limit_s
                                << " s (HDF5 1.10 loops forever on some damaged files): the file is damaged; copy "
                                   "or convert it again");
  if (WIFSIGNALED(status))
    CONVOY_FAIL(file << ": HDF5 crashed reading it (" << strsignal(WTERMSIG(status))
                     << "): the file is damaged or not a convoy file; copy or convert it again");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2) CONVOY_FAIL(message);
  CONVOY_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               file << ": the process checking it ended with status " << status);
  return message;
}

}  // namespace convoy::datasets::h5

namespace convoy::datasets::h5 {

void Bytes::copy(void* out, size_t n) {
  CONVOY_CHECK(at_ + n <= s_.size(), "internal: a contained read returned " << s_.size() << " bytes, fewer than expected");
  if (n) std::memcpy(out, s_.data() + at_, n);
  at_ += n;
}

}  // namespace convoy::datasets::h5
