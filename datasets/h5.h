// Small RAII layer over HDF5's C API for the shard reader and writer: handles that close themselves,
// and attribute/dataset helpers that throw convoy::Error naming the file and the object.
// HDF5 (Debian's 1.10.8 is built thread-safe) serializes every call behind one global lock, so nothing
// here belongs on a per-sample path: shards are opened once, and records are read with pread().
#pragma once

#include <hdf5.h>

#include <cstdint>
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

}  // namespace convoy::datasets::h5
