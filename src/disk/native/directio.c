/*
 * directio: the few system calls Node does not expose, for the image writer
 * (src/disk/image-writer.ts). Node-API only, so the compiled addon is ABI-stable
 * across Node versions (NAPI_VERSION 8: Node >= 12.22 / 14.17 / 15.12).
 *
 *   allocAligned(size, alignment)              -> ArrayBuffer (posix_memalign, freed by GC)
 *   zeroRange(fd, offset, length, isBlock)     -> Promise<void> (BLKZEROOUT / fallocate; async work)
 *   dropCache(fd, offset, length)              -> void (posix_fadvise DONTNEED)
 *   logicalBlockSize(fd)                       -> number (BLKSSZGET; files: statx DIO alignment or 512)
 *   blockDeviceSize(fd)                        -> number (BLKGETSIZE64)
 *   seekData(fd, offset)                       -> number (lseek SEEK_DATA; -1 when no data follows)
 *   seekHole(fd, offset)                       -> number (lseek SEEK_HOLE; -1 beyond the end)
 *   pipe(capacity)                             -> [readFd, writeFd] (pipe2 O_CLOEXEC, F_SETPIPE_SZ)
 *   readFull(fd, buffer)                       -> Promise<bytes> (read until full or end of file; async work)
 *
 * The same addon carries the zstd decoder (src/image/native/zstd-decoder.c).
 *
 * Errors are thrown (or rejected) as Error objects shaped like Node's own system errors:
 * message "<syscall>: <strerror>", code "EXXX", errno (negative), syscall.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#include <linux/falloc.h>
#endif

/* Largest integer a JS number holds exactly. */
#define MAX_SAFE_INTEGER 9007199254740991LL

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      throw_status((env), #call);                                          \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static void throw_status(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  char message[256];
  snprintf(message, sizeof message, "directio: %s failed: %s", what,
           info != NULL && info->error_message != NULL ? info->error_message : "N-API error");
  napi_throw_error(env, NULL, message);
}

/* An Error like Node's system errors: code "EXXX", errno -N, syscall. */
static napi_value errno_error(napi_env env, const char *syscall, int err) {
  const char *name = strerrorname_np(err);
  char code_text[32];
  if (name == NULL) {
    snprintf(code_text, sizeof code_text, "E%d", err);
    name = code_text;
  }
  char message[256];
  snprintf(message, sizeof message, "%s: %s (%s)", syscall, strerror(err), name);
  napi_value code, msg, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &errno_value) == napi_ok) napi_set_named_property(env, error, "errno", errno_value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_value);
  return error;
}

static void throw_errno(napi_env env, const char *syscall, int err) {
  napi_value error = errno_error(env, syscall, err);
  if (error != NULL) napi_throw(env, error);
  else napi_throw_error(env, NULL, strerror(err));
}

/* Reads argument `index` as a non-negative integer that fits a JS number exactly. */
static bool get_uint(napi_env env, napi_value *argv, size_t argc, size_t index, const char *name, int64_t *out) {
  napi_valuetype type = napi_undefined;
  if (index >= argc || napi_typeof(env, argv[index], &type) != napi_ok || type != napi_number) {
    char message[128];
    snprintf(message, sizeof message, "directio: %s must be a number", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  double value = 0;
  napi_get_value_double(env, argv[index], &value);
  if (!(value >= 0) || value > (double)MAX_SAFE_INTEGER || value != (double)(int64_t)value) {
    char message[128];
    snprintf(message, sizeof message, "directio: %s must be a non-negative integer", name);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  *out = (int64_t)value;
  return true;
}

static bool get_fd(napi_env env, napi_value *argv, size_t argc, int *fd) {
  int64_t value = 0;
  if (!get_uint(env, argv, argc, 0, "fd", &value)) return false;
  if (value > INT32_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "directio: fd out of range");
    return false;
  }
  *fd = (int)value;
  return true;
}

/* ---- allocAligned(size, alignment) ------------------------------------------------- */

static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value alloc_aligned(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t size = 0, alignment = 0;
  if (!get_uint(env, argv, argc, 0, "size", &size)) return NULL;
  if (!get_uint(env, argv, argc, 1, "alignment", &alignment)) return NULL;
  if (size == 0 || alignment < (int64_t)sizeof(void *) || (alignment & (alignment - 1)) != 0 ||
      alignment > (1 << 20)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                           "directio: allocAligned needs size > 0 and a power-of-two alignment (8 B .. 1 MiB)");
    return NULL;
  }
  void *memory = NULL;
  int err = posix_memalign(&memory, (size_t)alignment, (size_t)size);
  if (err != 0) {
    throw_errno(env, "posix_memalign", err);
    return NULL;
  }
  napi_value result;
  napi_status status = napi_create_external_arraybuffer(env, memory, (size_t)size, free_aligned, NULL, &result);
  if (status != napi_ok) {
    free(memory);
    throw_status(env, "napi_create_external_arraybuffer");
    return NULL;
  }
  return result;
}

/* ---- zeroRange(fd, offset, length, isBlockDevice) -> Promise ------------------------ */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  bool block;
  int64_t offset;
  int64_t length;
  int err;
  const char *syscall;
} zero_request;

static int retry_fallocate(int fd, int mode, int64_t offset, int64_t length) {
  int r;
  do r = fallocate(fd, mode, (off_t)offset, (off_t)length);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

/* Runs on a libuv threadpool thread: no N-API calls here. */
static void zero_execute(napi_env env, void *data) {
  (void)env;
  zero_request *req = data;
  if (req->length == 0) return;
  if (req->block) {
    /* Writes zeroes (device offload when available, else the kernel writes zero pages);
       never leaves old data readable. */
    uint64_t range[2] = {(uint64_t)req->offset, (uint64_t)req->length};
    int r;
    do r = ioctl(req->fd, BLKZEROOUT, range);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
      req->err = errno;
      req->syscall = "ioctl(BLKZEROOUT)";
    }
    return;
  }
  int err = retry_fallocate(req->fd, FALLOC_FL_ZERO_RANGE, req->offset, req->length);
  if (err == 0) return;
  if (err == EOPNOTSUPP) {
    err = retry_fallocate(req->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, req->offset, req->length);
    if (err == 0) return;
    req->syscall = "fallocate(PUNCH_HOLE)";
  } else {
    req->syscall = "fallocate(ZERO_RANGE)";
  }
  req->err = err;
}

static void zero_complete(napi_env env, napi_status status, void *data) {
  zero_request *req = data;
  napi_value value = NULL;
  if (status == napi_ok && req->err == 0) {
    napi_get_undefined(env, &value);
    napi_resolve_deferred(env, req->deferred, value);
  } else {
    if (status != napi_ok) {
      napi_value msg;
      napi_create_string_utf8(env, "directio: zeroRange was cancelled", NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, NULL, msg, &value);
    } else {
      value = errno_error(env, req->syscall, req->err);
    }
    if (value == NULL) napi_get_undefined(env, &value);
    napi_reject_deferred(env, req->deferred, value);
  }
  napi_delete_async_work(env, req->work);
  free(req);
}

static napi_value zero_range(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1;
  int64_t offset = 0, length = 0;
  bool block = false;
  if (!get_fd(env, argv, argc, &fd)) return NULL;
  if (!get_uint(env, argv, argc, 1, "offset", &offset)) return NULL;
  if (!get_uint(env, argv, argc, 2, "length", &length)) return NULL;
  if (argc < 4 || napi_get_value_bool(env, argv[3], &block) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "directio: isBlockDevice must be a boolean");
    return NULL;
  }
  zero_request *req = calloc(1, sizeof *req);
  if (req == NULL) {
    throw_errno(env, "calloc", ENOMEM);
    return NULL;
  }
  req->fd = fd;
  req->block = block;
  req->offset = offset;
  req->length = length;
  napi_value promise, name;
  if (napi_create_promise(env, &req->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "directio.zeroRange", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, zero_execute, zero_complete, req, &req->work) != napi_ok) {
    free(req);
    throw_status(env, "zeroRange setup");
    return NULL;
  }
  if (napi_queue_async_work(env, req->work) != napi_ok) {
    napi_delete_async_work(env, req->work);
    free(req);
    throw_status(env, "napi_queue_async_work");
    return NULL;
  }
  return promise;
}

/* ---- dropCache(fd, offset, length) -------------------------------------------------- */

static napi_value drop_cache(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1;
  int64_t offset = 0, length = 0;
  if (!get_fd(env, argv, argc, &fd)) return NULL;
  if (!get_uint(env, argv, argc, 1, "offset", &offset)) return NULL;
  if (!get_uint(env, argv, argc, 2, "length", &length)) return NULL;
  /* length 0 would mean "to the end of the file" for posix_fadvise: nothing to do instead. */
  if (length == 0) return NULL;
  int err = posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_DONTNEED);
  if (err != 0) throw_errno(env, "posix_fadvise(DONTNEED)", err);
  return NULL;
}

/* ---- logicalBlockSize(fd), blockDeviceSize(fd) --------------------------------------- */

static napi_value logical_block_size(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1;
  if (!get_fd(env, argv, argc, &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    throw_errno(env, "fstat", errno);
    return NULL;
  }
  int size = 512;
  if (S_ISBLK(st.st_mode)) {
    if (ioctl(fd, BLKSSZGET, &size) != 0) {
      throw_errno(env, "ioctl(BLKSSZGET)", errno);
      return NULL;
    }
  } else {
#ifdef STATX_DIOALIGN
    /* Linux >= 6.1 reports the O_DIRECT file offset alignment of regular files. */
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) != 0 &&
        sx.stx_dio_offset_align > 0)
      size = (int)sx.stx_dio_offset_align;
#endif
  }
  napi_value result;
  CHECK(env, napi_create_int32(env, size, &result));
  return result;
}

static napi_value block_device_size(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1;
  if (!get_fd(env, argv, argc, &fd)) return NULL;
  uint64_t bytes = 0;
  if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
    throw_errno(env, "ioctl(BLKGETSIZE64)", errno);
    return NULL;
  }
  napi_value result;
  CHECK(env, napi_create_double(env, (double)bytes, &result));
  return result;
}

/* ---- seekData(fd, offset), seekHole(fd, offset) ------------------------------------ */

static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *syscall) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1;
  int64_t offset = 0;
  if (!get_fd(env, argv, argc, &fd)) return NULL;
  if (!get_uint(env, argv, argc, 1, "offset", &offset)) return NULL;
  off_t found = lseek(fd, (off_t)offset, whence);
  if (found < 0 && errno != ENXIO) {
    throw_errno(env, syscall, errno);
    return NULL;
  }
  napi_value result;
  CHECK(env, napi_create_double(env, found < 0 ? -1.0 : (double)found, &result));
  return result;
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
}

static napi_value seek_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
}

/* ---- pipe(capacity) ------------------------------------------------------------------ */

/* A pipe whose read end the caller reads with fs.read into buffers it reuses (a child's
 * output without one new Buffer per 64 KiB). Both ends close-on-exec: the write end reaches
 * a child through spawn's stdio (dup2 clears the flag there). The capacity is a hint:
 * F_SETPIPE_SZ may refuse it (pipe-max-size), and the pipe then keeps its default. */
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t capacity = 0;
  if (!get_uint(env, argv, argc, 0, "capacity", &capacity)) return NULL;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw_errno(env, "pipe2", errno);
    return NULL;
  }
  if (capacity > 0 && capacity <= INT32_MAX) (void)fcntl(fds[1], F_SETPIPE_SZ, (int)capacity);
  napi_value result, read_end, write_end;
  CHECK(env, napi_create_array_with_length(env, 2, &result));
  CHECK(env, napi_create_int32(env, fds[0], &read_end));
  CHECK(env, napi_create_int32(env, fds[1], &write_end));
  CHECK(env, napi_set_element(env, result, 0, read_end));
  CHECK(env, napi_set_element(env, result, 1, write_end));
  return result;
}

/* ---- readFull(fd, buffer) -> Promise<number> ---------------------------------------- */

/* Fills `buffer` from `fd` (a pipe), looping over read() on one threadpool thread until it
 * is full or the stream ends. A decompressor writes its pipe in 8 KiB pieces: one fs.read
 * per piece cost this process a threadpool round trip (two futex wakeups and an event-loop
 * turn) per 30 KiB on average; this costs one per buffer. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer_ref;
  int fd;
  uint8_t *data;
  size_t length;
  size_t done;
  int err;
} read_request;

static void read_execute(napi_env env, void *data) {
  (void)env;
  read_request *req = data;
  while (req->done < req->length) {
    ssize_t n = read(req->fd, req->data + req->done, req->length - req->done);
    if (n > 0) {
      req->done += (size_t)n;
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      req->err = errno;
      break;
    }
  }
}

static void read_complete(napi_env env, napi_status status, void *data) {
  read_request *req = data;
  napi_value value = NULL;
  if (status == napi_ok && req->err == 0) {
    napi_create_double(env, (double)req->done, &value);
    napi_resolve_deferred(env, req->deferred, value);
  } else {
    value = errno_error(env, "read", status == napi_ok ? req->err : ECANCELED);
    if (value == NULL) napi_get_undefined(env, &value);
    napi_reject_deferred(env, req->deferred, value);
  }
  napi_delete_reference(env, req->buffer_ref);
  napi_delete_async_work(env, req->work);
  free(req);
}

static napi_value read_full(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = -1;
  if (!get_fd(env, argv, argc, &fd)) return NULL;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length = 0, byte_offset = 0;
  void *bytes = NULL;
  napi_value arraybuffer;
  if (argc < 2 || napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, &arraybuffer, &byte_offset) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "directio: buffer must be a Uint8Array");
    return NULL;
  }
  read_request *req = calloc(1, sizeof *req);
  if (req == NULL) {
    throw_errno(env, "calloc", ENOMEM);
    return NULL;
  }
  req->fd = fd;
  req->data = bytes;
  req->length = length;
  napi_value promise, name;
  if (napi_create_reference(env, argv[1], 1, &req->buffer_ref) != napi_ok ||
      napi_create_promise(env, &req->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "directio.readFull", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, read_execute, read_complete, req, &req->work) != napi_ok) {
    free(req);
    throw_status(env, "readFull setup");
    return NULL;
  }
  if (napi_queue_async_work(env, req->work) != napi_ok) {
    napi_delete_async_work(env, req->work);
    napi_delete_reference(env, req->buffer_ref);
    free(req);
    throw_status(env, "napi_queue_async_work");
    return NULL;
  }
  return promise;
}

bool register_zstd_decoder(napi_env env, napi_value exports);

/* ---- module ---------------------------------------------------------------------------- */

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
      {"allocAligned", NULL, alloc_aligned, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropCache", NULL, drop_cache, NULL, NULL, NULL, napi_enumerable, NULL},
      {"logicalBlockSize", NULL, logical_block_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockDeviceSize", NULL, block_device_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pipe", NULL, make_pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readFull", NULL, read_full, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) {
    throw_status(env, "napi_define_properties");
    return NULL;
  }
  if (!register_zstd_decoder(env, exports)) {
    throw_status(env, "register_zstd_decoder");
    return NULL;
  }
  return exports;
}
