/*
 * test_svc_probe.c - the health prober's parsers (svc_health_int.h).
 *
 * Goal: check URLs split into host, port and path the way the probe sends
 * them, and anything that would break the request line or that we do not
 * speak (userinfo, a bad port, other schemes) is refused; https URLs say
 * so and default to port 443; status lines give their
 * code and anything else is refused. Method: table-driven calls of
 * hc_url_parse and hc_status_parse. No sockets, no loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "registry/services/svc_health_int.h"

static void url_forms_split_into_host_port_path(void **state)
{
    static const struct {
        const char *url, *host, *path;
        int port;
    } ok[] = {
        {"http://127.0.0.1:8080/health", "127.0.0.1", "/health", 8080},
        {"http://svc.local/", "svc.local", "/", 80},
        {"http://svc.local", "svc.local", "/", 80},
        {"http://h:1?x=1", "h", "/?x=1", 1},
        {"http://h/a/b?c=d#frag", "h", "/a/b?c=d", 80},
        {"http://[::1]:9000/ping", "::1", "/ping", 9000},
        {"http://[fe80::1]/", "fe80::1", "/", 80},
        {"https://svc.local/health", "svc.local", "/health", 443},
        {"https://127.0.0.1:8443", "127.0.0.1", "/", 8443},
        {"https://[::1]:9443/x", "::1", "/x", 9443},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct hc_target t;
        assert_int_equal(hc_url_parse(ok[i].url, &t), 0);
        assert_int_equal(t.type, strncmp(ok[i].url, "https", 5) == 0 ? HC_HTTPS
                                                                     : HC_HTTP);
        assert_string_equal(t.host, ok[i].host);
        assert_string_equal(t.path, ok[i].path);
        assert_int_equal(t.port, ok[i].port);
    }
}

static void url_refusals(void **state)
{
    static const char *const bad[] = {
        "https://",       "http://",      "http:///x",      "http://h:0/",
        "http://h:65536", "http://h:x/",  "http://h:80:90", "http://u@h/",
        "http://[::1/",   "http://h/a b", "ftp://h/",       "http://[::1]x/",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hc_target t;
        assert_int_equal(hc_url_parse(bad[i], &t), ERR_INVALID);
    }
    assert_int_equal(hc_url_parse(NULL, &(struct hc_target){0}), ERR_INVALID);
    char big[HC_URL_MAX + 16];
    memset(big, 'a', sizeof(big));
    memcpy(big, "http://h/", 9);
    big[sizeof(big) - 1] = '\0';
    struct hc_target t;
    assert_int_equal(hc_url_parse(big, &t), ERR_INVALID); /* at the bound */
}

static void status_lines(void **state)
{
    static const struct {
        const char *line;
        int code; /* 0: refused */
    } t[] = {
        {"HTTP/1.0 200 OK\r\n", 200},
        {"HTTP/1.1 302 Found\r\n", 302},
        {"HTTP/1.1 503 Service Unavailable\r\n", 503},
        {"HTTP/1.1 204\r\n", 204},
        {"HTTP/1.1 200", 200},
        {"HTTP/1.1 099 x\r\n", 0},
        {"HTTP/1.1 20x OK\r\n", 0},
        {"HTTP/1.1 2000 OK\r\n", 0},
        {"SSH-2.0-OpenSSH\r\n", 0},
        {"", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int code = 0;
        int rc = hc_status_parse(t[i].line, strlen(t[i].line), &code);
        if (t[i].code == 0) {
            assert_int_equal(rc, ERR_INVALID);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(code, t[i].code);
        }
    }
}

/* One binary per module: test_services.c's main runs this group too. */
int test_svc_probe_run(void);
int test_svc_probe_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_forms_split_into_host_port_path),
        cmocka_unit_test(url_refusals),
        cmocka_unit_test(status_lines),
    };
    return cmocka_run_group_tests_name("svc_probe", tests, NULL, NULL);
}
