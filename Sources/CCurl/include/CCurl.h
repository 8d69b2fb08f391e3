#ifndef PIER_CCURL_H
#define PIER_CCURL_H
// libcurl for the etcd store, loaded with dlopen on first use rather than linked: libcurl
// brings ~30 shared libraries (OpenSSL, GnuTLS, Kerberos, LDAP...) whose loading would add
// milliseconds to every plugin start, also to the many that never reach a store
// (docs/design.md). Only curl's header is needed to build; its types and constants come
// from there, its functions through the table below. Setopt and getinfo are variadic in C,
// so each argument type gets a typed wrapper Swift can call.
#include <curl/curl.h>
#include <stddef.h>

/// Loads libcurl.so.4 and calls curl_global_init once per process. Returns 0, or -1 with the
/// reason (dlerror or a missing symbol) in `error`.
int pier_curl_load(char *error, size_t size);

CURL *pier_curl_easy_init(void);
void pier_curl_easy_cleanup(CURL *handle);
CURLcode pier_curl_easy_perform(CURL *handle);
const char *pier_curl_easy_strerror(CURLcode code);

CURLcode pier_curl_setopt_long(CURL *handle, CURLoption option, long value);
/// Strings (copied by curl), lists and callback user data.
CURLcode pier_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value);
/// CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION.
typedef size_t (*pier_curl_data_callback)(char *data, size_t size, size_t count, void *context);
CURLcode pier_curl_setopt_callback(CURL *handle, CURLoption option, pier_curl_data_callback callback);

CURLcode pier_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

struct curl_slist *pier_curl_slist_append(struct curl_slist *list, const char *text);
void pier_curl_slist_free_all(struct curl_slist *list);

CURLM *pier_curl_multi_init(void);
void pier_curl_multi_cleanup(CURLM *multi);
CURLMcode pier_curl_multi_add_handle(CURLM *multi, CURL *handle);
CURLMcode pier_curl_multi_remove_handle(CURLM *multi, CURL *handle);
CURLMcode pier_curl_multi_perform(CURLM *multi, int *running);
CURLMcode pier_curl_multi_poll(CURLM *multi, int timeout_ms);
/// 1 when a transfer of `multi` has finished, with its result in `result`; 0 otherwise.
int pier_curl_multi_finished(CURLM *multi, CURLcode *result);

/// The validity period of the first certificate in a PEM file, read with OpenSSL's libcrypto
/// (the one libcurl uses, loaded on demand): 0 when valid now, 1 when expired, 2 when not yet
/// valid, -1 when it cannot tell. `when` receives the date that was crossed (UTC).
int pier_tls_certificate_validity(const char *path, char *when, size_t size);

#endif
