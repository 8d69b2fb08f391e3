#include "CCurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

// The functions used, resolved from libcurl.so.4. Their types come from curl's own
// declarations, so a mismatch is a compile error rather than a crash.
static struct {
    __typeof__(&curl_global_init) global_init;
    __typeof__(&curl_easy_init) easy_init;
    __typeof__(&curl_easy_cleanup) easy_cleanup;
    __typeof__(&curl_easy_perform) easy_perform;
    __typeof__(&curl_easy_strerror) easy_strerror;
    __typeof__(&curl_easy_setopt) easy_setopt;
    __typeof__(&curl_easy_getinfo) easy_getinfo;
    __typeof__(&curl_slist_append) slist_append;
    __typeof__(&curl_slist_free_all) slist_free_all;
    __typeof__(&curl_multi_init) multi_init;
    __typeof__(&curl_multi_cleanup) multi_cleanup;
    __typeof__(&curl_multi_add_handle) multi_add_handle;
    __typeof__(&curl_multi_remove_handle) multi_remove_handle;
    __typeof__(&curl_multi_perform) multi_perform;
    __typeof__(&curl_multi_poll) multi_poll;
    __typeof__(&curl_multi_info_read) multi_info_read;
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512] = "libcurl did not load";

#define RESOLVE(library, field, name)                                                              \
    do {                                                                                           \
        *(void **)&curl.field = dlsym(library, name);                                              \
        if (curl.field == NULL) {                                                                  \
            snprintf(load_error, sizeof load_error, "libcurl.so.4 lacks %s (libcurl 7.66 or newer needed)", \
                     name);                                                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void load(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *reason = dlerror();
        snprintf(load_error, sizeof load_error, "%s", reason ? reason : "cannot load libcurl.so.4");
        return;
    }
    RESOLVE(library, global_init, "curl_global_init");
    RESOLVE(library, easy_init, "curl_easy_init");
    RESOLVE(library, easy_cleanup, "curl_easy_cleanup");
    RESOLVE(library, easy_perform, "curl_easy_perform");
    RESOLVE(library, easy_strerror, "curl_easy_strerror");
    RESOLVE(library, easy_setopt, "curl_easy_setopt");
    RESOLVE(library, easy_getinfo, "curl_easy_getinfo");
    RESOLVE(library, slist_append, "curl_slist_append");
    RESOLVE(library, slist_free_all, "curl_slist_free_all");
    RESOLVE(library, multi_init, "curl_multi_init");
    RESOLVE(library, multi_cleanup, "curl_multi_cleanup");
    RESOLVE(library, multi_add_handle, "curl_multi_add_handle");
    RESOLVE(library, multi_remove_handle, "curl_multi_remove_handle");
    RESOLVE(library, multi_perform, "curl_multi_perform");
    RESOLVE(library, multi_poll, "curl_multi_poll");
    RESOLVE(library, multi_info_read, "curl_multi_info_read");
    // curl_global_init is not thread-safe on its own; pthread_once makes it run exactly once.
    CURLcode code = curl.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "curl_global_init: %s", curl.easy_strerror(code));
        return;
    }
    load_error[0] = '\0';
}

int pier_curl_load(char *error, size_t size) {
    pthread_once(&load_once, load);
    if (load_error[0] == '\0') return 0;
    snprintf(error, size, "%s", load_error);
    return -1;
}

CURL *pier_curl_easy_init(void) { return curl.easy_init(); }
void pier_curl_easy_cleanup(CURL *handle) { curl.easy_cleanup(handle); }
CURLcode pier_curl_easy_perform(CURL *handle) { return curl.easy_perform(handle); }
const char *pier_curl_easy_strerror(CURLcode code) { return curl.easy_strerror(code); }

CURLcode pier_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl.easy_setopt(handle, option, value);
}

CURLcode pier_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl.easy_setopt(handle, option, value);
}

CURLcode pier_curl_setopt_callback(CURL *handle, CURLoption option, pier_curl_data_callback callback) {
    return curl.easy_setopt(handle, option, callback);
}

CURLcode pier_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl.easy_getinfo(handle, info, value);
}

struct curl_slist *pier_curl_slist_append(struct curl_slist *list, const char *text) {
    return curl.slist_append(list, text);
}

void pier_curl_slist_free_all(struct curl_slist *list) { curl.slist_free_all(list); }

CURLM *pier_curl_multi_init(void) { return curl.multi_init(); }
void pier_curl_multi_cleanup(CURLM *multi) { curl.multi_cleanup(multi); }
CURLMcode pier_curl_multi_add_handle(CURLM *multi, CURL *handle) { return curl.multi_add_handle(multi, handle); }
CURLMcode pier_curl_multi_remove_handle(CURLM *multi, CURL *handle) {
    return curl.multi_remove_handle(multi, handle);
}
CURLMcode pier_curl_multi_perform(CURLM *multi, int *running) { return curl.multi_perform(multi, running); }
CURLMcode pier_curl_multi_poll(CURLM *multi, int timeout_ms) {
    return curl.multi_poll(multi, NULL, 0, timeout_ms, NULL);
}

int pier_curl_multi_finished(CURLM *multi, CURLcode *result) {
    int left = 0;
    CURLMsg *message;
    while ((message = curl.multi_info_read(multi, &left)) != NULL) {
        if (message->msg == CURLMSG_DONE) {
            *result = message->data.result;
            return 1;
        }
    }
    return 0;
}

// libcrypto, declared by hand (OpenSSL's headers are not needed to build): only what reading
// a certificate's validity period takes.
static struct {
    void *(*bio_new_file)(const char *path, const char *mode);
    int (*bio_free)(void *bio);
    void *(*pem_read_bio_x509)(void *bio, void **x509, void *callback, void *context);
    void (*x509_free)(void *x509);
    const void *(*x509_get0_not_before)(const void *x509);
    const void *(*x509_get0_not_after)(const void *x509);
    int (*x509_cmp_current_time)(const void *time);
    int (*asn1_time_to_tm)(const void *time, struct tm *tm);
} crypto;
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_loaded;

static void load_crypto(void) {
    void *library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) return;
    *(void **)&crypto.bio_new_file = dlsym(library, "BIO_new_file");
    *(void **)&crypto.bio_free = dlsym(library, "BIO_free");
    *(void **)&crypto.pem_read_bio_x509 = dlsym(library, "PEM_read_bio_X509");
    *(void **)&crypto.x509_free = dlsym(library, "X509_free");
    *(void **)&crypto.x509_get0_not_before = dlsym(library, "X509_get0_notBefore");
    *(void **)&crypto.x509_get0_not_after = dlsym(library, "X509_get0_notAfter");
    *(void **)&crypto.x509_cmp_current_time = dlsym(library, "X509_cmp_current_time");
    *(void **)&crypto.asn1_time_to_tm = dlsym(library, "ASN1_TIME_to_tm");
    crypto_loaded = crypto.bio_new_file && crypto.bio_free && crypto.pem_read_bio_x509 && crypto.x509_free &&
                    crypto.x509_get0_not_before && crypto.x509_get0_not_after && crypto.x509_cmp_current_time &&
                    crypto.asn1_time_to_tm;
}

static void format_time(const void *time, char *when, size_t size) {
    struct tm tm;
    if (size == 0) return;
    when[0] = '\0';
    if (crypto.asn1_time_to_tm(time, &tm) == 1) strftime(when, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int pier_tls_certificate_validity(const char *path, char *when, size_t size) {
    pthread_once(&crypto_once, load_crypto);
    if (!crypto_loaded) return -1;
    void *bio = crypto.bio_new_file(path, "r");
    if (bio == NULL) return -1;
    void *certificate = crypto.pem_read_bio_x509(bio, NULL, NULL, NULL);
    crypto.bio_free(bio);
    if (certificate == NULL) return -1;
    int verdict = 0;
    const void *not_after = crypto.x509_get0_not_after(certificate);
    const void *not_before = crypto.x509_get0_not_before(certificate);
    // X509_cmp_current_time: -1 when the time is at or before now, 1 when after, 0 on error.
    if (not_after != NULL && crypto.x509_cmp_current_time(not_after) == -1) {
        verdict = 1;
        format_time(not_after, when, size);
    } else if (not_before != NULL && crypto.x509_cmp_current_time(not_before) == 1) {
        verdict = 2;
        format_time(not_before, when, size);
    }
    crypto.x509_free(certificate);
    return verdict;
}
