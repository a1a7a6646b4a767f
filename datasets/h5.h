// Small RAII layer over HDF5's C API for the shard reader and writer: handles that close themselves,
// and attribute/dataset helpers that throw convoy::Error naming the file and the object.
// HDF5 (Debian's 1.10.8 is built thread-safe) serializes every call behind one global lock, so nothing
// here belongs on a per-sample path: shards are opened once, and records are read with pread().
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace convoy::datasets::h5 {

// An hid_t that is closed with the right H5?close when it goes out of scope.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  ~Handle() { reset(); }
  void reset();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Turns off HDF5's own printing of error stacks for the calling thread (convoy reports errors itself).
void quiet_errors();

// The innermost message on HDF5's error stack of this thread, or "" (used to explain a failed call).
std::string last_error();

Handle create_file(const std::string& path);
Handle open_file_readonly(const std::string& path);

bool has_object(hid_t loc, const std::string& name);
bool has_attribute(hid_t loc, const std::string& name);

// Root attributes. Strings are variable-length UTF-8 (h5py reads them as str).
void write_string_attribute(hid_t loc, const std::string& name, const std::string& value);
void write_int_attribute(hid_t loc, const std::string& name, int64_t value);
void write_double_array_attribute(hid_t loc, const std::string& name, const std::vector<double>& values);
std::string read_string_attribute(hid_t loc, const std::string& name, const std::string& file);
int64_t read_int_attribute(hid_t loc, const std::string& name, const std::string& file);
std::vector<double> read_double_array_attribute(hid_t loc, const std::string& name, const std::string& file);

// A contiguous (unchunked, uncompressed) dataset with the given shape, written whole from `data`
// (`mem_type` describes `data`). Contiguous storage has one file offset, which readers pread() from.
void write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                   const std::vector<hsize_t>& dims, const void* data);
// A 1-D dataset of variable-length UTF-8 strings.
void write_string_dataset(hid_t loc, const std::string& name, const std::vector<std::string>& values);

// Opens dataset `name`; throws naming `file` if it is missing.
Handle open_dataset(hid_t loc, const std::string& name, const std::string& file);
// Shape of dataset `name`; throws naming `file` if it is missing.
std::vector<hsize_t> dataset_dims(hid_t loc, const std::string& name, const std::string& file);
// Reads a whole dataset converting to `mem_type`; `out` must hold the dataset's element count.
void read_dataset(hid_t loc, const std::string& name, hid_t mem_type, void* out, const std::string& file);
// Element `i` of a 1-D string dataset (fixed or variable length).
std::string read_string_element(hid_t loc, const std::string& name, hsize_t i, const std::string& file);

// Runs `read` (HDF5 calls on `file`, a file from outside) in a forked child process and returns what it
// returned (bytes: the caller serializes its result). Throws convoy::Error naming the file when HDF5
// crashes there, does not finish within the time limit, or `read` throws (its message). HDF5 1.10
// crashes, reads wild memory and loops forever on some damaged files (tools/fuzz.sh found all three);
// its memory errors make it behave differently from one process to the next, so this process never
// runs HDF5 on such a file itself. The limit is 60 s (or CONVOY_HDF5_TIMEOUT_S) plus 1 s per 20 MB of
// the file. Only the calling thread exists in the child: `read` must not use thread pools (OpenMP,
// oneDNN) or locks other threads may hold.
std::string contain(const std::string& file, const std::function<std::string()>& read);

// Appends and reads back plain values, vectors of them and strings: contain()'s results.
class Bytes {
 public:
  template <typename T>
  void put(const T& v) { s_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  template <typename T>
  void put(const std::vector<T>& v) { put(v.size()), s_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)); }
  void put(const std::string& v) { put(v.size()), s_.append(v); }
  void put_raw(const void* p, size_t n) { s_.append(static_cast<const char*>(p), n); }
  std::string take() { return std::move(s_); }

  explicit Bytes(std::string s = {}) : s_(std::move(s)) {}
  template <typename T>
  void get(T& v) { copy(&v, sizeof v); }
  template <typename T>
  void get(std::vector<T>& v) { size_t n = 0; get(n); v.resize(n); copy(v.data(), n * sizeof(T)); }
  void get(std::string& v) { size_t n = 0; get(n); v.resize(n); copy(v.data(), n); }
  void get_raw(void* out, size_t n) { copy(out, n); }

 private:
  void copy(void* out, size_t n);
  std::string s_;
  size_t at_ = 0;
};

}  // namespace convoy::datasets::h5
