/* cxx_raii.cpp — greenhub from C++: small RAII wrappers over the C handles.
 *
 * An example of wrapping the C API in a C++ program, not a second API: a handle is
 * owned by one object (move-only) and given back when the object goes — a greenlet
 * handle with gh_release, a watcher with gh_watcher_close, the thread's hub with
 * gh_hub_destroy. Errors become exceptions on the C++ side only: no exception ever
 * crosses the C library (callbacks and greenlet bodies catch everything), because
 * unwinding through greenhub's frames — the hub's loop, another greenlet's switch —
 * is undefined.
 *
 * What it does: a greenlet (a C++ lambda) waits for a line on a pipe; a repeating
 * timer watcher ticks three times, then writes the line and stops itself; an io
 * watcher sees the pipe become readable too; a second greenlet is killed; main joins
 * and prints the results.
 *
 * Build: c++ -std=c++17 cxx_raii.cpp $(pkg-config --cflags --libs greenhub)
 *    or: target_link_libraries(app PRIVATE greenhub::greenhub) with CMake.
 */
// smoke:
#include <greenhub.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace gh {

/* A greenhub error code as an exception. */
struct error : std::runtime_error {
    int code;
    error(int c, const char *what)
        : std::runtime_error(std::string(what) + ": " + gh_err_name(c) + " (" + gh_strerror(c) + ")"),
          code(c) {}
};

inline int check(int rc, const char *what) {
    if (rc < 0) throw error(rc, what);
    return rc;
}

/* The calling thread's hub, destroyed at the end of the scope. Declare it before every
 * other handle of the thread so it goes last. */
class hub {
  public:
    hub() = default;
    hub(const hub &) = delete;
    hub &operator=(const hub &) = delete;
    ~hub() {
        int rc = gh_hub_destroy();
        if (rc != GH_OK) std::fprintf(stderr, "gh_hub_destroy: %s\n", gh_err_name(rc));
    }
};

/* Owns a greenlet handle; gh_release when it goes (the greenlet itself runs on). */
class greenlet {
  public:
    /* Spawns fn() — any callable returning void * — as a greenlet. An exception escaping
     * fn is caught on the greenlet's own stack and reported as a NULL result. */
    template <class F>
    static greenlet spawn(F fn, const char *name = nullptr) {
        auto body = std::make_unique<F>(std::move(fn));
        gh_spawn_options opts{};
        opts.name = name;
        gh_greenlet g{};
        check(GH_SPAWN_EX(&g, &run<F>, body.get(), &opts), "gh_spawn_ex");
        body.release(); /* run<F> owns it now */
        return greenlet(g);
    }
    greenlet(greenlet &&o) noexcept : g_(std::exchange(o.g_, gh_greenlet{})) {}
    greenlet &operator=(greenlet &&o) noexcept {
        std::swap(g_, o.g_);
        return *this;
    }
    greenlet(const greenlet &) = delete;
    greenlet &operator=(const greenlet &) = delete;
    ~greenlet() {
        if (g_.id) gh_release(g_);
    }

    /* Waits until the greenlet is dead; its function's return value. */
    void *join(double timeout = GH_FOREVER) const {
        void *result = nullptr;
        check(gh_join(g_, timeout, &result), "gh_join");
        return result;
    }
    /* GreenletExit: its blocking calls return GH_ECANCELED from now on. */
    void kill(double timeout = GH_FOREVER) const { check(gh_kill(g_, timeout), "gh_kill"); }
    int state() const { return check(gh_greenlet_state(g_), "gh_greenlet_state"); }
    gh_greenlet get() const { return g_; }

  private:
    explicit greenlet(gh_greenlet g) : g_(g) {}
    /* Never lets an exception unwind into greenhub. A greenlet killed before it started
     * never runs, so its body is leaked then: this example joins everything it spawns. */
    template <class F>
    static void *run(void *arg) noexcept {
        std::unique_ptr<F> fn(static_cast<F *>(arg));
        try {
            return (*fn)();
        } catch (const std::exception &e) {
            std::fprintf(stderr, "greenlet: uncaught %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "greenlet: uncaught exception\n");
        }
        return nullptr;
    }
    gh_greenlet g_{};
};

/* Owns a watcher; the callback is any callable taking (watcher &, int revents). */
class watcher {
  public:
    using callback = std::function<void(watcher &, int)>;

    static watcher timer(double after, double repeat) {
        gh_watcher w{};
        check(gh_timer_new(&w, after, repeat), "gh_timer_new");
        return watcher(w);
    }
    static watcher io(int fd, int events) {
        gh_watcher w{};
        check(gh_io_new(&w, fd, events), "gh_io_new");
        return watcher(w);
    }
    watcher(watcher &&o) noexcept : w_(std::exchange(o.w_, gh_watcher{})), cb_(std::move(o.cb_)) {
        if (cb_) cb_->self = this;
    }
    watcher &operator=(watcher &&) = delete;
    watcher(const watcher &) = delete;
    watcher &operator=(const watcher &) = delete;
    ~watcher() {
        if (w_.id) gh_watcher_close(w_);
    }

    /* The callback runs in the hub: it must not block (blocking calls return GH_EPERM
     * there) and must not throw (an exception is caught and reported). */
    void start(callback cb) {
        cb_ = std::make_unique<slot>(slot{std::move(cb), this});
        check(gh_watcher_start(w_, &dispatch, cb_.get()), "gh_watcher_start");
    }
    void stop() { check(gh_watcher_stop(w_), "gh_watcher_stop"); }
    bool active() const { return check(gh_watcher_active(w_), "gh_watcher_active") == 1; }

  private:
    struct slot {
        callback fn;
        watcher *self; /* follows moves of the owning watcher */
    };
    explicit watcher(gh_watcher w) : w_(w) {}
    static void dispatch(gh_watcher, int revents, void *arg) noexcept {
        auto *s = static_cast<slot *>(arg);
        try {
            s->fn(*s->self, revents);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "watcher callback: uncaught %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "watcher callback: uncaught exception\n");
        }
    }
    gh_watcher w_{};
    std::unique_ptr<slot> cb_;
};

} // namespace gh

int main() {
    int fds[2];
    if (pipe(fds) != 0) {
        std::perror("pipe");
        return 1;
    }
    int failures = 0;
    try {
        gh::hub hub; /* first declared, last destroyed */
        std::printf("greenhub %s (header %d.%d.%d), C++ RAII wrappers\n", gh_version_string(),
                    GH_VERSION_MAJOR, GH_VERSION_MINOR, GH_VERSION_PATCH);

        /* A greenlet waiting for a line on the pipe: straight-line, blocking-style code. */
        static char line[64];
        auto reader = gh::greenlet::spawn(
            [fd = fds[0]]() -> void * {
                gh::check(gh_wait_read(fd, 2.0), "gh_wait_read");
                ssize_t n = read(fd, line, sizeof line - 1);
                line[n > 0 ? n : 0] = '\0';
                return line;
            },
            "reader");

        /* A greenlet that would sleep for a minute: killed below. */
        auto sleeper = gh::greenlet::spawn([]() -> void * {
            int rc = gh_sleep(60.0);
            return const_cast<char *>(gh_err_name(rc)); /* GH_ECANCELED once killed */
        });

        /* A repeating timer: three ticks, then it feeds the pipe and stops itself. */
        int ticks = 0;
        auto timer = gh::watcher::timer(0.01, 0.01);
        timer.start([&](gh::watcher &self, int revents) {
            if (revents != GH_TIMER) return;
            if (++ticks == 3) {
                const char msg[] = "hello from a timer callback";
                if (write(fds[1], msg, sizeof msg - 1) != (ssize_t)(sizeof msg - 1)) std::perror("write");
                self.stop();
            }
        });

        /* An io watcher on the same pipe: several watchers (and greenlets) may watch one fd. */
        int readable = 0;
        auto io = gh::watcher::io(fds[0], GH_READ);
        io.start([&](gh::watcher &self, int revents) {
            if (revents & GH_READ) {
                readable++;
                self.stop();
            }
        });

        /* Errors are exceptions on the C++ side: a zero-timeout join of a live greenlet. */
        try {
            sleeper.join(0);
            std::printf("join(0) of a sleeping greenlet returned?!\n");
            failures++;
        } catch (const gh::error &e) {
            std::printf("expected: %s\n", e.what());
            if (e.code != GH_ETIMEDOUT) failures++;
        }

        auto *got = static_cast<const char *>(reader.join(2.0));
        std::printf("reader  -> \"%s\" after %d ticks; io watcher saw the pipe readable: %s\n",
                    got ? got : "(null)", ticks, readable ? "yes" : "no");
        if (!got || std::strcmp(got, "hello from a timer callback") != 0 || ticks != 3 || !readable)
            failures++;

        sleeper.kill(1.0);
        auto *why = static_cast<const char *>(sleeper.join());
        std::printf("sleeper -> killed, gh_sleep returned %s\n", why ? why : "(null)");
        if (!why || std::strcmp(why, "GH_ECANCELED") != 0) failures++;
        if (timer.active() || io.active()) failures++;
        /* reader, sleeper, timer, io go here (gh_release, gh_watcher_close), then the hub. */
    } catch (const gh::error &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        failures++;
    }
    close(fds[0]);
    close(fds[1]);
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
