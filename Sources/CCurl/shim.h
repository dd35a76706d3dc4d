#ifndef AGENTD_CCURL_SHIM_H
#define AGENTD_CCURL_SHIM_H
#include <curl/curl.h>
// The curl thread waits on its sockets with epoll, told which by curl's socket callback.
#include <sys/epoll.h>
#include <sys/eventfd.h>

// curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are variadic, which Swift cannot
// call: one typed wrapper per argument kind.
static inline CURLcode agentd_easy_setopt_long(CURL *easy, CURLoption option, long value) {
    return curl_easy_setopt(easy, option, value);
}
static inline CURLcode agentd_easy_setopt_string(CURL *easy, CURLoption option, const char *value) {
    return curl_easy_setopt(easy, option, value);
}
static inline CURLcode agentd_easy_setopt_pointer(CURL *easy, CURLoption option, void *value) {
    return curl_easy_setopt(easy, option, value);
}
static inline CURLcode agentd_easy_setopt_slist(CURL *easy, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(easy, option, value);
}
static inline CURLcode agentd_easy_setopt_offset(CURL *easy, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(easy, option, value);
}
static inline CURLcode agentd_easy_setopt_write_callback(CURL *easy, size_t (*cb)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, cb);
}
static inline CURLcode agentd_easy_setopt_header_callback(CURL *easy, size_t (*cb)(char *, size_t, size_t, void *)) {
    return curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, cb);
}
static inline CURLcode agentd_easy_getinfo_pointer(CURL *easy, CURLINFO info, void **value) {
    return curl_easy_getinfo(easy, info, value);
}
static inline CURLMcode agentd_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
static inline CURLMcode agentd_multi_setopt_pointer(CURLM *multi, CURLMoption option, void *value) {
    return curl_multi_setopt(multi, option, value);
}
static inline CURLMcode agentd_multi_setopt_socket_callback(
    CURLM *multi, int (*cb)(CURL *, curl_socket_t, int, void *, void *)) {
    return curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, cb);
}
static inline CURLMcode agentd_multi_setopt_timer_callback(CURLM *multi, int (*cb)(CURLM *, long, void *)) {
    return curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, cb);
}

// Function-like and composite macros Swift does not import.
static const long agentd_curl_global_default = CURL_GLOBAL_DEFAULT;
static const int agentd_curlpause_cont = CURLPAUSE_CONT;
static const size_t agentd_curl_writefunc_pause = CURL_WRITEFUNC_PAUSE;
static const long agentd_curl_http_version_2tls = CURL_HTTP_VERSION_2TLS;
static const long agentd_curlpipe_multiplex = CURLPIPE_MULTIPLEX;
static const int agentd_curl_error_size = CURL_ERROR_SIZE;
static const curl_socket_t agentd_curl_socket_timeout = CURL_SOCKET_TIMEOUT;
#endif
