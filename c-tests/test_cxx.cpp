/* test_cxx.cpp — C++ exceptions and greenlets (issue 19, item 2).
 *
 * The C++ runtime keeps its exception state per thread (`__cxa_get_globals`: the stack
 * of exceptions being handled, and the count of exceptions thrown and not yet caught).
 * greenhub gives each greenlet its own, swapped at every switch, so a greenlet that
 * blocks inside a `catch` handler or in a destructor run during unwinding shares that
 * state with no other: `throw;` rethrows its own exception, `std::current_exception()`
 * is its own, `std::uncaught_exceptions()` counts its own. Before, greenlet A's `throw;`
 * rethrew B's exception and ASan reported a heap-use-after-free when A left its handler.
 *
 * Built by scripts/test.sh with every C++ compiler it finds (g++, clang++; libstdc++).
 */
#include "harness.h"

#include <exception>
#include <stdexcept>
#include <string>

/* ---- rethrow and current_exception inside handlers that block ------------- */

struct handler_result {
    const char *name;
    std::string rethrown;  /* what `throw;` rethrew after blocking */
    std::string current;   /* what std::current_exception() held after blocking */
    int nested_ok;         /* a nested throw/catch inside the handler left it intact */
};

static std::string what_of(std::exception_ptr p) {
    try {
        if (p) std::rethrow_exception(p);
    } catch (const std::exception &e) {
        return e.what();
    }
    return "(none)";
}

static void *blocking_handler(void *arg) {
    handler_result *r = static_cast<handler_result *>(arg);
    try {
        throw std::runtime_error(r->name);
    } catch (...) {
        gh_sleep(0.01); /* the other greenlet throws and catches meanwhile */
        try {
            throw std::logic_error("nested");
        } catch (const std::logic_error &) {
        }
        gh_sleep(0); /* and once more after the nested one */
        r->nested_ok = 1;
        r->current = what_of(std::current_exception());
        try {
            throw;
        } catch (const std::exception &e) {
            r->rethrown = e.what();
        }
    }
    return NULL;
}

TEST(rethrow_in_blocking_handler_is_own_exception) {
    handler_result a = {"from A", "", "", 0}, b = {"from B", "", "", 0};
    gh_greenlet ga, gb;
    ASSERT_OK(GH_SPAWN(&ga, blocking_handler, &a));
    ASSERT_OK(GH_SPAWN(&gb, blocking_handler, &b));
    ASSERT_OK(gh_join(ga, 5, NULL));
    ASSERT_OK(gh_join(gb, 5, NULL));
    ASSERT_TRUE(a.nested_ok && b.nested_ok);
    ASSERT_STREQ(a.rethrown.c_str(), "from A");
    ASSERT_STREQ(b.rethrown.c_str(), "from B");
    ASSERT_STREQ(a.current.c_str(), "from A");
    ASSERT_STREQ(b.current.c_str(), "from B");
    /* Main's own state is untouched by theirs. */
    ASSERT_TRUE(std::current_exception() == nullptr);
    ASSERT_EQ(std::uncaught_exceptions(), 0);
    ASSERT_OK(gh_release(ga));
    ASSERT_OK(gh_release(gb));
    ASSERT_OK(gh_hub_destroy());
}

/* Main blocked inside its own handler while greenlets throw and catch: main's
 * exception is still the one it handles. */
static void *thrower(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) {
        try {
            throw std::runtime_error("greenlet");
        } catch (const std::exception &) {
            gh_sleep(0.002);
        }
    }
    return NULL;
}

TEST(main_handler_survives_greenlets) {
    gh_greenlet g;
    std::string seen;
    ASSERT_OK(GH_SPAWN(&g, thrower, NULL));
    try {
        throw std::runtime_error("main");
    } catch (...) {
        ASSERT_OK(gh_join(g, 5, NULL));
        try {
            throw;
        } catch (const std::exception &e) {
            seen = e.what();
        }
    }
    ASSERT_STREQ(seen.c_str(), "main");
    ASSERT_OK(gh_release(g));
    ASSERT_OK(gh_hub_destroy());
}

/* ---- uncaught_exceptions during unwinding --------------------------------- */

static int counted[2];
struct blocks_in_destructor {
    int *out;
    ~blocks_in_destructor() {
        gh_sleep(0.01); /* blocks while its exception unwinds */
        *out = std::uncaught_exceptions();
    }
};

static void *unwinding(void *arg) {
    int *out = static_cast<int *>(arg);
    try {
        blocks_in_destructor d{out};
        throw 1;
    } catch (int) {
    }
    return NULL;
}

static void *calm(void *arg) {
    int *out = static_cast<int *>(arg);
    gh_sleep(0.005); /* runs while the other is blocked in its destructor */
    *out = std::uncaught_exceptions();
    return NULL;
}

TEST(uncaught_exceptions_counted_per_greenlet) {
    gh_greenlet a, b;
    counted[0] = counted[1] = -1;
    ASSERT_OK(GH_SPAWN(&a, unwinding, &counted[0]));
    ASSERT_OK(GH_SPAWN(&b, calm, &counted[1]));
    ASSERT_OK(gh_join(a, 5, NULL));
    ASSERT_OK(gh_join(b, 5, NULL));
    ASSERT_EQ(counted[0], 1); /* its own exception, in flight */
    ASSERT_EQ(counted[1], 0); /* not the other's */
    ASSERT_EQ(std::uncaught_exceptions(), 0);
    ASSERT_OK(gh_release(a));
    ASSERT_OK(gh_release(b));
    ASSERT_OK(gh_hub_destroy());
}

/* Many greenlets each parked inside a handler, resumed in turn several times. */
#define MANY 50
static void *many_handler(void *arg) {
    intptr_t id = reinterpret_cast<intptr_t>(arg);
    try {
        throw static_cast<int>(id);
    } catch (int) {
        for (int i = 0; i < 3; i++) gh_sleep(0);
        try {
            throw;
        } catch (int got) {
            return reinterpret_cast<void *>(static_cast<intptr_t>(got == id));
        }
    }
    return NULL;
}

TEST(many_greenlets_in_handlers) {
    gh_greenlet g[MANY];
    for (intptr_t i = 0; i < MANY; i++) ASSERT_OK(GH_SPAWN(&g[i], many_handler, reinterpret_cast<void *>(i)));
    for (int i = 0; i < MANY; i++) {
        void *r = NULL;
        ASSERT_OK(gh_join(g[i], 5, &r));
        ASSERT_TRUE(r == reinterpret_cast<void *>(1));
        ASSERT_OK(gh_release(g[i]));
    }
    ASSERT_OK(gh_hub_destroy());
}

int main(int argc, char **argv) {
    TEST_INIT(argc, argv);
    RUN(rethrow_in_blocking_handler_is_own_exception);
    RUN(main_handler_survives_greenlets);
    RUN(uncaught_exceptions_counted_per_greenlet);
    RUN(many_greenlets_in_handlers);
    return TEST_DONE();
}
