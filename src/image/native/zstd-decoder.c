/*
 * zstd decoding inside snf-image (libzstd), for src/image/decompress.ts: the image is
 * decoded on a libuv threadpool thread straight into the caller's buffers, instead of a
 * zstd process writing a pipe that this process reads (two copies of every byte, and a
 * decoder that stalls whenever the reader is late). Compiled into the directio addon
 * (scripts/build-native.ts); registered by register_zstd_decoder().
 *
 *   zstdDecoder()                                   -> handle (ZSTD_DStream, freed by GC)
 *   zstdDecode(handle, input, inOffset, output, outOffset)
 *        -> Promise<[consumed, produced, frameEnded]>   (async work)
 *
 * One zstdDecode call decodes until the input is used up or the output is full.
 * frameEnded is 1 when the last ZSTD_decompressStream call completed a frame (a stream
 * that ends otherwise is truncated). Errors reject with zstd's own message and code
 * "EZSTD", or "EZSTDWINDOW" for a frame whose window is over the 128 MiB allowed. The
 * input and output arrays are referenced until the call completes.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define MAX_SAFE_INTEGER 9007199254740991LL

typedef struct {
  ZSTD_DStream *stream;
  bool busy; /* one call at a time: the stream is not thread-safe */
} decoder;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  decoder *dec;
  napi_ref input_ref, output_ref, handle_ref;
  const uint8_t *in;
  size_t in_size, in_pos;
  uint8_t *out;
  size_t out_size, out_pos;
  size_t in_start, out_start;
  bool frame_ended;
  bool window_too_large;
  const char *error; /* static string from ZSTD_getErrorName */
} decode_request;

static void throw_message(napi_env env, const char *code, const char *message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, code, message);
}

static void free_decoder(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  decoder *dec = data;
  ZSTD_freeDStream(dec->stream);
  free(dec);
}

static napi_value zstd_decoder(napi_env env, napi_callback_info info) {
  (void)info;
  decoder *dec = calloc(1, sizeof *dec);
  if (dec == NULL || (dec->stream = ZSTD_createDStream()) == NULL) {
    free(dec);
    throw_message(env, "ENOMEM", "zstd: cannot create a decoder");
    return NULL;
  }
  /* Windows up to 128 MiB (zstd --long=27), the zstd program's own default limit: a
     hostile image cannot make this process take more for its window. */
  ZSTD_DCtx_setParameter(dec->stream, ZSTD_d_windowLogMax, 27);
  napi_value handle;
  if (napi_create_external(env, dec, free_decoder, NULL, &handle) != napi_ok) {
    free_decoder(env, dec, NULL);
    throw_message(env, NULL, "zstd: cannot create the decoder handle");
    return NULL;
  }
  return handle;
}

/* Runs on a threadpool thread: no N-API calls. */
static void decode_execute(napi_env env, void *data) {
  (void)env;
  decode_request *req = data;
  ZSTD_inBuffer in = {req->in, req->in_size, req->in_pos};
  ZSTD_outBuffer out = {req->out, req->out_size, req->out_pos};
  for (;;) {
    size_t ret = ZSTD_decompressStream(req->dec->stream, &out, &in);
    if (ZSTD_isError(ret)) {
      req->error = ZSTD_getErrorName(ret);
      req->window_too_large = ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge;
      break;
    }
    req->frame_ended = ret == 0;
    /* Output full; or every input byte taken with room left in the output, which means
       zstd has flushed all it could (its documented contract). */
    if (out.pos == out.size || in.pos == in.size) break;
  }
  req->in_pos = in.pos;
  req->out_pos = out.pos;
}

static void decode_complete(napi_env env, napi_status status, void *data) {
  decode_request *req = data;
  req->dec->busy = false;
  napi_value value = NULL;
  if (status == napi_ok && req->error == NULL) {
    napi_value consumed, produced, ended;
    napi_create_array_with_length(env, 3, &value);
    napi_create_double(env, (double)(req->in_pos - req->in_start), &consumed);
    napi_create_double(env, (double)(req->out_pos - req->out_start), &produced);
    napi_create_int32(env, req->frame_ended ? 1 : 0, &ended);
    napi_set_element(env, value, 0, consumed);
    napi_set_element(env, value, 1, produced);
    napi_set_element(env, value, 2, ended);
    napi_resolve_deferred(env, req->deferred, value);
  } else {
    napi_value code, msg;
    char text[256];
    snprintf(text, sizeof text, "zstd: %s", status != napi_ok ? "decoding was cancelled" : req->error);
    napi_create_string_utf8(env, req->window_too_large ? "EZSTDWINDOW" : "EZSTD", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &value);
    napi_reject_deferred(env, req->deferred, value);
  }
  napi_delete_reference(env, req->input_ref);
  napi_delete_reference(env, req->output_ref);
  napi_delete_reference(env, req->handle_ref);
  napi_delete_async_work(env, req->work);
  free(req);
}

/* A Uint8Array argument: its bytes and length. */
static bool get_bytes(napi_env env, napi_value value, const char *name, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t count = 0, offset = 0;
  void *bytes = NULL;
  napi_value buffer;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, &count, &bytes, &buffer, &offset) != napi_ok ||
      type != napi_uint8_array) {
    char message[96];
    snprintf(message, sizeof message, "zstd: %s must be a Uint8Array", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  *data = bytes;
  *length = count;
  return true;
}

static bool get_offset(napi_env env, napi_value value, const char *name, size_t limit, size_t *out) {
  double number = -1;
  if (napi_get_value_double(env, value, &number) != napi_ok || !(number >= 0) || number > (double)limit ||
      number != (double)(int64_t)number || number > (double)MAX_SAFE_INTEGER) {
    char message[96];
    snprintf(message, sizeof message, "zstd: %s must be an integer in 0..%zu", name, limit);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  *out = (size_t)number;
  return true;
}

static napi_value zstd_decode(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "zstd: zstdDecode(handle, input, inOffset, output, outOffset)");
    return NULL;
  }
  decoder *dec = NULL;
  napi_valuetype type;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, argv[0], (void **)&dec) != napi_ok || dec == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "zstd: handle must come from zstdDecoder()");
    return NULL;
  }
  if (dec->busy) {
    throw_message(env, "ERR_INVALID_STATE", "zstd: a decode call is already running on this decoder");
    return NULL;
  }
  decode_request *req = calloc(1, sizeof *req);
  if (req == NULL) {
    throw_message(env, "ENOMEM", "zstd: out of memory");
    return NULL;
  }
  uint8_t *in = NULL, *out = NULL;
  if (!get_bytes(env, argv[1], "input", &in, &req->in_size) ||
      !get_offset(env, argv[2], "inOffset", req->in_size, &req->in_pos) ||
      !get_bytes(env, argv[3], "output", &out, &req->out_size) ||
      !get_offset(env, argv[4], "outOffset", req->out_size, &req->out_pos)) {
    free(req);
    return NULL;
  }
  req->dec = dec;
  req->in = in;
  req->out = out;
  req->in_start = req->in_pos;
  req->out_start = req->out_pos;
  napi_value promise, name;
  if (napi_create_reference(env, argv[0], 1, &req->handle_ref) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &req->input_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &req->output_ref) != napi_ok ||
      napi_create_promise(env, &req->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "zstd.decode", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, decode_execute, decode_complete, req, &req->work) != napi_ok ||
      napi_queue_async_work(env, req->work) != napi_ok) {
    throw_message(env, NULL, "zstd: cannot start decoding");
    return NULL; /* the request leaks only on this N-API failure */
  }
  dec->busy = true;
  return promise;
}

bool register_zstd_decoder(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"zstdDecoder", NULL, zstd_decoder, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zstdDecode", NULL, zstd_decode, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) == napi_ok;
}
