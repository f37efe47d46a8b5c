#!/usr/bin/env python3
"""gen_sweep.py — the NULL-pointer and bad-handle sweeps of FAULTS.md 1 and 2, generated
from include/greenhub.h so that a new function cannot escape them.

Parses every `gh_*` function prototype of the header and the types it uses, and writes
a C test program (harness.h cases, one forked process per case) that, for every
function:

  null_<fn>    calls it once per pointer parameter (function pointers included) with
               that parameter NULL and every other argument valid — a live hub, live
               handles, real fds, zeroed buffers of 1 KiB, sizes 1, timeouts 0 — and
               asserts GH_EINVAL; parameters documented as NULL-allowed are listed in
               NULL_ALLOWED below, each with its reason, and skipped;
  handle_<fn>  calls it once per handle parameter (a `struct gh_X { uint64_t id; }` by
               value, or a `const struct gh_X *` array of them) for each bad value —
               zero, all-ones, 16 random 64-bit values, a live handle of every other
               handle kind, and a handle whose hub was destroyed — and asserts
               GH_EBADHANDLE; then a live handle of another thread's hub (a thread
               holding one of each kind) and asserts GH_EWRONGTHREAD, except for
               functions whose doc says "*Threads*: thread-safe" (FAULTS 5, 17).

Each case ends with a control call: the same call with every argument valid (under an
expired gh_timeout, so nothing waits) must not give the code the case expects — else
the generator's own arguments are wrong and the case would prove nothing.

Each case ends with gh_hub_destroy() and the fd count (and, natively, the mapping
count) back at its start. Arguments are chosen by type (handles, pointers, function
pointers, ints, doubles, size_t), refined by a few parameter names (`fd`, `events`,
`pid`, `signum`, `code`); see valid_value(). A prototype the generator cannot classify —
an unknown by-value type, a function pointer spelt inline, a function with a pointer or
handle parameter whose return type cannot carry an error code, a handle type nothing in
the header creates — fails the generation with the function's name (exit 1), as does
an entry of NULL_ALLOWED that names no parameter of the header. When a new function
documents NULL as allowed for a parameter (e.g. "NULL = remove the hook"), add it to
NULL_ALLOWED with that reason; otherwise its null_<fn> case asserts GH_EINVAL.

Usage: scripts/gen_sweep.py [--header include/greenhub.h] [--out FILE]
       (default out: target/c/gen/test_sweep_gen.c; the file is not committed)
The generated program honours GH_SWEEP_SEED (the random handle values; default fixed).
"""
import argparse
import os
import re
import sys

# Parameters documented in the header as accepting NULL: (function, parameter) -> the
# reason. ("*", name) applies to every function (only for pass-through `void *`).
NULL_ALLOWED = {
    ("*", "arg"): "a user argument passed through untouched",
    ("gh_monitor_set_callback", "cb"): "NULL = back to stderr",
    ("gh_settrace", "hook"): "NULL = remove the hook",
    ("gh_spawn", "out"): "NULL = detached",
    ("gh_spawn_ex", "out"): "NULL = detached",
    ("gh_spawn_ex", "opts"): "NULL = defaults",
    ("gh_spawn_at", "out"): "NULL = detached",
    ("gh_spawn_at", "opts"): "NULL = defaults",
    ("gh_spawn_at", "file"): "NULL = no spawn site",
    ("gh_spawn_later", "out"): "NULL = detached",
    ("gh_join", "result"): "`result` may be NULL",
    ("gh_joinall", "ndone"): "`*ndone` (if not NULL)",
    ("gh_switch", "value"): "a value passed through untouched",
    ("gh_switch", "received"): "`*received` (if not NULL)",
    ("gh_hub_config_init", "cfg"): "NULL is ignored (returns void)",
    ("gh_threadpool_apply", "result"): "`result` NULL or writable",
    ("gh_getaddrinfo", "node"): "`node` or `service` may be NULL (not both)",
    ("gh_getaddrinfo", "service"): "`node` or `service` may be NULL (not both)",
    ("gh_getaddrinfo", "hints"): "`hints` NULL or readable",
    ("gh_waitpid", "status"): "`status` may be NULL",
    ("gh_result_set", "value"): "a value passed through untouched",
    ("gh_result_get", "value"): "`value` may be NULL",
    ("gh_queue_put", "item"): "an item passed through untouched",
    ("gh_queue_put_priority", "item"): "an item passed through untouched",
    ("gh_waiter_switch", "value"): "a value passed through untouched",
    ("gh_waiter_get", "value"): "`value` NULL or writable",
    ("gh_server_new", "opts"): "NULL = defaults",
    ("gh_server_new_fd", "opts"): "NULL = defaults",
    ("gh_server_new_datagram", "opts"): "NULL = defaults",
    ("gh_server_new_datagram_fd", "opts"): "NULL = defaults",
    ("gh_pool_spawn", "out"): "NULL = detached",
    ("gh_sendto", "addr"): "NULL = the connected peer",
    ("gh_sendfile", "offset"): "NULL = the file position",
    ("gh_sendfile", "sent"): "`sent` may be NULL",
    ("gh_local_set", "value"): "a value (NULL clears it)",
    ("gh_local_key_create", "dtor"): "`dtor` may be NULL (no destructor)",
}

# How to make a live handle of a kind, where the generic rule (the first function
# `int f(struct gh_X *out, <ints/doubles/sizes>)` of the header) would pick something
# unhelpful. `h` is the handle variable.
CONSTRUCTORS = {
    "gh_greenlet": "gh_spawn(&h, sweep_stub_gh_fn, NULL)",  # a new greenlet, not started
    "gh_watcher": "gh_timer_new(&h, 3600, 0)",
    "gh_timeout": "gh_timeout_start(&h, GH_FOREVER)",  # never expires
    "gh_sem": "gh_sem_new(&h, 1)",
    "gh_queue": "gh_queue_new(&h, 0)",
    # a server listening on an ephemeral loopback port, never started
    "gh_server": 'gh_server_new(&h, "127.0.0.1:0", sweep_stub_gh_server_handler, NULL, NULL)',
    # fd 0 is never read through these (only the control calls read: VALID_BY_FUNCTION)
    "gh_stream": "gh_stream_new(&h, 0, 0)",
    "gh_local_key": "gh_local_key_create(&h, NULL)",
}

# Valid values of int-like parameters by name (the default is 0).
INT_BY_NAME = {
    "fd": "sweep_fd",  # a connected AF_UNIX stream socket
    "events": "GH_READ",
    "signum": "SIGUSR1",
    "pid": "sweep_child_pid()",  # a live child process of this one
    "code": "GH_EIO",  # a valid negative code for gh_throw / gh_result_set_error
    "line": "__LINE__",
    "ref": "1",
}
# Per-function refinements: (function, parameter) -> C expression.
VALID_BY_FUNCTION = {
    ("gh_accept", "fd"): "sweep_lfd",  # a listening socket
    ("gh_child_status", "w"): "sweep_child_watcher()",  # a child watcher
    ("gh_async_send", "w"): "sweep_async_watcher()",  # an async watcher
    ("gh_connect", "fd"): "sweep_socket()",  # a fresh, unconnected socket
    ("gh_connect", "addr"): "(const struct sockaddr *)&sweep_addr",  # the listener's
    ("gh_connect", "addrlen"): "sweep_addrlen",
    ("gh_listen", "address"): '"127.0.0.1:0"',
    ("gh_server_new", "address"): '"127.0.0.1:0"',
    ("gh_server_new_datagram", "address"): '"127.0.0.1:0"',
    ("gh_connect_to", "address"): '"127.0.0.1:1"',  # refused, or timed out at once
    ("gh_server_new_fd", "fd"): "sweep_handover_socket(SOCK_STREAM)",  # the server takes it over
    ("gh_server_new_datagram_fd", "fd"): "sweep_handover_socket(SOCK_DGRAM)",
    ("gh_stream_readline", "len"): "16",  # a line and its NUL need 2 at least
    ("gh_readv", "iovcnt"): "1",  # one (zeroed) iovec: NULL iov is then GH_EINVAL
    ("gh_writev", "iovcnt"): "1",
    ("gh_writev_all", "iovcnt"): "1",
    ("gh_sendto", "addrlen"): "0",  # sweep_fd is connected: no address
}
# One entry waiting for sweep_fd to be writable (ready at once: a zeroed entry's kind 0
# is GH_EINVAL, which the control call must not give).
for _f in ("gh_wait_many", "gh_wait_any"):
    VALID_BY_FUNCTION[(_f, "objects")] = (
        "({ static gh_waitable w_; w_.kind = GH_WAIT_FD; w_.fd = sweep_fd; "
        "w_.events = GH_WRITE; &w_; })")
# A stream over sweep_fd for the stream functions' control calls (a GNU statement
# expression: the sweep is compiled without -pedantic).
for _f in ("gh_stream_read", "gh_stream_read_exact", "gh_stream_read_until",
           "gh_stream_readline", "gh_stream_buffered", "gh_stream_close"):
    VALID_BY_FUNCTION[(_f, "stream")] = (
        "({ gh_stream s_; ASSERT_OK(gh_stream_new(&s_, sweep_fd, 0)); s_; })")

# Functions whose success value is a new fd the caller owns (the control call closes it).
FD_RESULT = {"gh_accept", "gh_listen", "gh_connect_to"}

INT_TYPES = {
    "int", "unsigned int", "unsigned", "long", "unsigned long", "long long",
    "unsigned long long", "size_t", "ssize_t", "socklen_t", "pid_t", "uint32_t",
    "int32_t", "uint64_t", "int64_t", "uint16_t", "int16_t", "uint8_t", "int8_t",
}
FLOAT_TYPES = {"double", "float"}
CODE_RETURNS = {"int", "ssize_t", "long", "long long", "int64_t", "int32_t"}
NRANDOM = 16


class GenError(Exception):
    pass


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


class Param:
    def __init__(self, func, raw, index):
        self.raw = " ".join(raw.split())
        self.func = func
        m = re.match(r"^(.*?)([A-Za-z_]\w*)\s*$", self.raw)
        if not m or "(" in self.raw or "[" in self.raw:
            raise GenError(f"{func}: cannot parse parameter '{self.raw}'")
        self.name = m.group(2)
        t = m.group(1)
        self.depth = t.count("*")
        words = t.replace("*", " ").split()
        self.const = "const" in words[:1] or (self.depth and "const" in words)
        words = [w for w in words if w not in ("const", "struct", "volatile", "restrict")]
        self.base = " ".join(words)
        if not self.base:
            raise GenError(f"{func}: parameter '{self.raw}' has no type (unnamed?)")
        self.index = index
        self.ctype = t.strip()  # as written, for casts


class Header:
    def __init__(self, path):
        raw = open(path).read()
        # the doc comment in front of each prototype: name -> text
        self.docs = {}
        for m in re.finditer(r"/\*\*((?:(?!\*/).)*)\*/\s*[^;/{}]*?\b(gh_\w+)\s*\(", raw, re.S):
            self.docs[m.group(2)] = " ".join(m.group(1).replace("*", " ").split())
        text = strip_comments(raw)
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        self.handles = []  # handle struct names, in header order
        self.structs = set()
        for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{([^}]*)\}\s*(\w+)\s*;", text):
            name, body = m.group(1), " ".join(m.group(2).split())
            if body == "uint64_t id;":
                self.handles.append(name)
            else:
                self.structs.add(name)
        self.fnptrs = {}  # typedef name -> (return type, [param types])
        for m in re.finditer(r"typedef\s+([^;()]*?)\(\s*\*\s*(\w+)\s*\)\s*\(([^()]*)\)\s*;", text):
            ret, name, params = " ".join(m.group(1).split()), m.group(2), m.group(3)
            plist = [] if params.strip() in ("", "void") else [
                Param(name, p, i) for i, p in enumerate(params.split(","))]
            self.fnptrs[name] = (ret, plist)
        body = text.replace("{", ";").replace("}", ";")
        self.funcs = []  # (name, return type, [Param])
        seen = set()
        for stmt in body.split(";"):
            s = " ".join(stmt.split())
            if s.startswith("typedef") or not re.search(r"\bgh_\w+\s*\(", s):
                continue
            if s.startswith("extern "):
                continue
            m = re.match(r"^([\w\s\*]+?)\s*\b(gh_\w+)\s*\((.*)\)$", s)
            if not m:
                name = re.search(r"\b(gh_\w+)\s*\(", s).group(1)
                raise GenError(f"{name}: cannot parse the prototype '{s}'")
            ret, name, params = " ".join(m.group(1).split()), m.group(2), m.group(3)
            if "(" in params:
                raise GenError(f"{name}: a parameter spelt as an inline function pointer "
                               f"('{params}'): use a typedef")
            plist = [] if params.strip() in ("", "void") else [
                Param(name, p, i) for i, p in enumerate(params.split(","))]
            if name in seen:
                raise GenError(f"{name}: declared twice")
            seen.add(name)
            self.funcs.append((name, ret.replace("struct ", "").strip(), plist))
        if not self.funcs:
            raise GenError("no gh_* prototypes found")


def kind_of(h, p):
    """'handle', 'handles' (const array of handles), 'fnptr', 'ptr', 'int', 'float'."""
    if p.depth == 0:
        if p.base in h.handles:
            return "handle"
        if p.base in h.fnptrs:
            return "fnptr"
        if p.base in INT_TYPES:
            return "int"
        if p.base in FLOAT_TYPES:
            return "float"
        raise GenError(f"{p.func}: parameter '{p.raw}': unknown by-value type '{p.base}'")
    if p.depth == 1 and p.const and p.base in h.handles:
        return "handles"
    return "ptr"


def thread_safe(h, func):
    """Documented as callable from any thread (its *Threads* line says thread-safe):
    another thread's handle is no error for it."""
    doc = h.docs.get(func, "")
    return re.search(r"Threads\s*:\s*thread-safe", doc) is not None


def null_allowed(func, p):
    if (func, p.name) in NULL_ALLOWED:
        return NULL_ALLOWED[(func, p.name)]
    if ("*", p.name) in NULL_ALLOWED and p.base == "void" and p.depth == 1 and not p.const:
        return NULL_ALLOWED[("*", p.name)]
    return None


def valid_value(h, func, p, k):
    if (func, p.name) in VALID_BY_FUNCTION:
        return VALID_BY_FUNCTION[(func, p.name)]
    if k == "handle":
        return f"sweep_make_{p.base}()"
    if k == "fnptr":
        return f"sweep_stub_{p.base}"
    if k == "int":
        if p.name in INT_BY_NAME:
            return INT_BY_NAME[p.name]
        return "1" if p.base in ("size_t", "socklen_t", "unsigned int", "unsigned") else "0"
    if k == "float":
        return "0.0"  # "do not wait"
    if k == "handles":  # an array of one live handle, in its own buffer
        return (f"({p.ctype})sweep_fill_{p.base}(sweep_mem[{p.index}], "
                f"sweep_make_{p.base}())")
    # any other pointer: its own zeroed, aligned 1 KiB buffer
    return f"({p.ctype})sweep_mem[{p.index}]"


def constructor(h, handle):
    if handle in CONSTRUCTORS:
        expr = CONSTRUCTORS[handle]
        fn = re.match(r"(?:h = )?(gh_\w+)", expr).group(1)
        if fn not in {f for f, _, _ in h.funcs}:
            raise GenError(f"CONSTRUCTORS[{handle}] calls {fn}, which the header lacks")
        return expr
    for name, ret, params in h.funcs:  # int f(struct H *out, simple args...)
        if (ret == "int" and params and params[0].base == handle and params[0].depth == 1
                and not params[0].const
                and all(kind_of(h, q) in ("int", "float") for q in params[1:])):
            args = ["&h"] + [valid_value(h, name, q, kind_of(h, q)) for q in params[1:]]
            return f"{name}({', '.join(args)})"
    for name, ret, params in h.funcs:  # struct H f(void)
        if ret == handle and not params:
            return f"h = {name}()"
    raise GenError(f"handle type {handle}: no function of the header creates one "
                   f"(add it to CONSTRUCTORS in scripts/gen_sweep.py)")


def control(func, params, kinds, h, code):
    """The same call with every argument valid, under an expired gh_timeout (so a call
    that would wait returns at once): it must not give `code` — else the sweep's own
    arguments are wrong and the expected code above proves nothing. Its stderr is
    captured: a valid call may report its failure there (gh_assert_switches_end's
    GH_ENOSWITCH report), but a call that succeeds must say nothing."""
    call = c_call(func, [valid_value(h, func, q, kq) for q, kq in zip(params, kinds)])
    return [
        "    /* control: every argument valid -> not " + code + " */",
        "    sweep_clear();",
        "    sweep_control_begin();",
        "    {",
        "        const char *err_;",
        "        gh_test_capture_stderr_begin();",
        f"        long long rc_ = (long long)({call});",
        "        err_ = gh_test_capture_stderr_end();",
        "        sweep_control_end();",
        "        if (err_[0] && rc_ >= 0)",
        f"            fprintf(stderr, \"control call of {func} returned %lld and wrote: %s\", rc_, err_);",
        "        ASSERT_TRUE(!err_[0] || rc_ < 0);",
        *([f"        if (rc_ >= 0) ASSERT_OK(close((int)rc_)); /* a new fd */"]
          if func in FD_RESULT else []),
        f"        if (rc_ == {code})",
        f"            fprintf(stderr, \"control call of {func} with valid arguments gave {code}:"
        " the sweep's arguments are wrong\\n\");",
        f"        ASSERT_NE(rc_, {code});",
        "    }",
    ]


def c_call(func, args):
    return f"{func}({', '.join(args)})"


def generate(h, header_path):
    out = []
    w = out.append
    used_handles = set()
    cases = []  # (case name, body lines)
    stats = {"null_calls": 0, "null_funcs": 0, "allowed": [], "handle_params": 0,
             "handle_funcs": 0, "plain": [], "wrong_thread": 0, "thread_safe": set()}

    for func, ret, params in h.funcs:
        kinds = [kind_of(h, p) for p in params]
        for p, k in zip(params, kinds):
            if k in ("handle", "handles"):
                used_handles.add(p.base)
        ptrs = [(p, k) for p, k in zip(params, kinds) if k in ("ptr", "fnptr", "handles")]
        hparams = [(p, k) for p, k in zip(params, kinds) if k in ("handle", "handles")]
        nulls = []
        for p, k in ptrs:
            why = null_allowed(func, p)
            if why:
                stats["allowed"].append(f"{func}({p.name}): {why}")
            else:
                nulls.append((p, k))
        if not nulls and not hparams:
            if not ptrs:
                stats["plain"].append(func)
            continue
        if ret not in CODE_RETURNS:
            raise GenError(f"{func}: returns '{ret}', which cannot carry GH_EINVAL / "
                           f"GH_EBADHANDLE, yet takes a pointer or handle")
        if nulls:
            body = []
            for p, k in nulls:
                args = [valid_value(h, func, q, kq) if q is not p else "NULL"
                        for q, kq in zip(params, kinds)]
                body.append(f"    sweep_clear();")
                body.append(f"    ASSERT_CODE({c_call(func, args)}, GH_EINVAL); /* {p.name} */")
                stats["null_calls"] += 1
            body += control(func, params, kinds, h, "GH_EINVAL")
            stats["null_funcs"] += 1
            cases.append((f"null_{func}", body, f"{func}: NULL for each required pointer "
                                                f"({', '.join(p.name for p, _ in nulls)}) "
                                                f"-> GH_EINVAL. FAULTS 1."))
        if hparams:
            body = []
            for p, k in hparams:
                stats["handle_params"] += 1
                args = ["BAD" if q is p else valid_value(h, func, q, kq)
                        for q, kq in zip(params, kinds)]
                if k == "handles":
                    args[p.index] = f"({p.ctype})sweep_fill_{p.base}(sweep_mem[{p.index}], BAD)"
                call = c_call(func, args)
                body.append(f"    /* {p.name} */")
                body.append(f"    for (i = 0; i < sweep_nbad; i++) {{")
                body.append(f"        {p.base} BAD;")
                body.append(f"        BAD.id = sweep_bad_id(i, \"{p.base}\");")
                body.append(f"        sweep_clear();")
                body.append(f"        SWEEP_EXPECT({call}, GH_EBADHANDLE, i);")
                body.append(f"    }}")
                if thread_safe(h, func):
                    stats["thread_safe"].add(func)
                    continue
                # a live handle of another thread's hub (FAULTS 5, 17)
                stats["wrong_thread"] += 1
                body.append(f"    sweep_peer_start();")
                body.append(f"    {{")
                body.append(f"        {p.base} BAD;")
                body.append(f"        BAD.id = sweep_peer_id(\"{p.base}\");")
                body.append(f"        sweep_clear();")
                body.append(f"        SWEEP_EXPECT({call}, GH_EWRONGTHREAD, -1);")
                body.append(f"    }}")
                body.append(f"    sweep_peer_stop();")
            body += control(func, params, kinds, h, "GH_EBADHANDLE")
            stats["handle_funcs"] += 1
            cases.append((f"handle_{func}", ["    int i;"] + body,
                          f"{func}: zero, all-ones, random, other-kind and destroyed-hub "
                          f"values for each handle ({', '.join(p.name for p, _ in hparams)})"
                          f" -> GH_EBADHANDLE; another thread's live handle -> "
                          f"GH_EWRONGTHREAD{' (not: thread-safe)' if thread_safe(h, func) else ''}."
                          f" FAULTS 2, 5, 17."))

    # stale allow-list entries
    names = {f: {p.name for p in ps} for f, _, ps in h.funcs}
    for (f, pn) in NULL_ALLOWED:
        if f != "*" and (f not in names or pn not in names[f]):
            raise GenError(f"NULL_ALLOWED names {f}({pn}), which the header does not declare")

    for hd in h.handles:
        used_handles.add(hd)
    handles = [hd for hd in h.handles if hd in used_handles]

    w("/* test_sweep_gen.c — GENERATED by scripts/gen_sweep.py from include/greenhub.h;")
    w(" * do not edit, do not commit (scripts/test.sh regenerates it).")
    w(" *")
    w(f" * {len(h.funcs)} functions: {stats['null_funcs']} with required pointer parameters "
      f"({stats['null_calls']} NULL calls),")
    w(f" * {stats['handle_funcs']} with handle parameters ({stats['handle_params']} "
      f"parameters x (3 + {NRANDOM} random + {len(handles) - 1} other kinds) values);")
    w(f" * {stats['wrong_thread']} handle parameters also given another thread's live handle "
      f"(GH_EWRONGTHREAD; not to the thread-safe {', '.join(sorted(stats['thread_safe']))});")
    w(f" * {len(stats['allowed'])} NULL-allowed parameters skipped:")
    for a in stats["allowed"]:
        w(f" *   {a}")
    w(f" * no pointer or handle parameter: {', '.join(stats['plain'])}.")
    w(" */")
    w('#include "harness.h"')
    w("")
    w("#include <fcntl.h>")
    w("#include <pthread.h>")
    w("#include <signal.h>")
    w("#include <stdint.h>")
    w("#include <sys/socket.h>")
    w("#include <sys/un.h>")
    w("")
    w("#define SWEEP_HELPER static __attribute__((unused)) /* not every helper is used */")
    w("")
    w("static _Alignas(16) unsigned char sweep_mem[16][1024]; /* one buffer per parameter */")
    w("static int sweep_fd = -1, sweep_peer = -1, sweep_lfd = -1, sweep_pid = -1;")
    w("static int sweep_socks[8], sweep_nsocks;")
    w("static struct sockaddr_un sweep_addr; /* sweep_lfd's address */")
    w("static socklen_t sweep_addrlen;")
    w("static gh_timeout sweep_ctl;")
    w("static uint64_t sweep_seed = 0x9E3779B97F4A7C15ull, sweep_seed0 = 0x9E3779B97F4A7C15ull;")
    w("")
    w("static void sweep_clear(void) { memset(sweep_mem, 0, sizeof sweep_mem); }")
    w("")
    w("/* The function pointers passed where one is required (never called here). */")
    for name, (fret, fparams) in h.fnptrs.items():
        ps = ", ".join(f"{q.ctype} p{i}" for i, q in enumerate(fparams)) or "void"
        w(f"SWEEP_HELPER {fret} sweep_stub_{name}({ps}) {{")
        for i in range(len(fparams)):
            w(f"    (void)p{i};")
        if fret != "void":
            w(f"    {{ {fret} r; memset(&r, 0, sizeof r); return r; }}")
        w("}")
    w("")
    w("/* A fresh AF_UNIX stream socket, closed at the end of the case. */")
    w("SWEEP_HELPER int sweep_socket(void) {")
    w("    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);")
    w("    ASSERT_TRUE(fd >= 0 && sweep_nsocks < 8);")
    w("    sweep_socks[sweep_nsocks++] = fd;")
    w("    return fd;")
    w("}")
    w("")
    w("/* A fresh AF_UNIX socket of `type` a successful call takes over (gh_server_new_fd,")
    w(" * gh_server_new_datagram_fd):")
    w(" * closed at the end of the case if still open (after gh_hub_destroy, which closes")
    w(" * what a server owns). */")
    w("static int sweep_handover[8], sweep_nhandover;")
    w("SWEEP_HELPER int sweep_handover_socket(int type) {")
    w("    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);")
    w("    ASSERT_TRUE(fd >= 0 && sweep_nhandover < 8);")
    w("    sweep_handover[sweep_nhandover++] = fd;")
    w("    return fd;")
    w("}")
    w("")
    w("/* Control calls run under an expired deadline: a call that would wait returns. */")
    w("static void sweep_control_begin(void) { ASSERT_OK(gh_timeout_start(&sweep_ctl, 0)); }")
    w("static void sweep_control_end(void) { ASSERT_OK(gh_timeout_cancel(sweep_ctl)); }")
    w("")
    w("/* A live child process (pause()s until the case ends). */")
    w("SWEEP_HELPER int sweep_child_pid(void) {")
    w("    if (sweep_pid < 0) {")
    w("        sweep_pid = fork();")
    w("        ASSERT_TRUE(sweep_pid >= 0);")
    w("        if (sweep_pid == 0) { for (;;) pause(); }")
    w("    }")
    w("    return sweep_pid;")
    w("}")
    w("")
    w("/* Live handles of every kind (GH_OK from their constructor asserted). */")
    for hd in handles:
        w(f"SWEEP_HELPER {hd} sweep_make_{hd}(void) {{")
        w(f"    {hd} h;")
        w(f"    memset(&h, 0, sizeof h);")
        expr = constructor(h, hd)
        if expr.startswith("h = "):
            w(f"    {expr};")
            w(f"    ASSERT_TRUE(h.id != 0);")
        else:
            w(f"    ASSERT_OK({expr});")
        w(f"    return h;")
        w("}")
        w(f"SWEEP_HELPER void *sweep_fill_{hd}(void *mem, {hd} h) {{")
        w(f"    memcpy(mem, &h, sizeof h);")
        w(f"    return mem;")
        w("}")
    w("/* Watchers of the kinds VALID_BY_FUNCTION asks for. */")
    w("SWEEP_HELPER gh_watcher sweep_child_watcher(void) {")
    w("    gh_watcher h;")
    w("    ASSERT_OK(gh_child_new(&h, sweep_child_pid()));")
    w("    return h;")
    w("}")
    w("SWEEP_HELPER gh_watcher sweep_async_watcher(void) {")
    w("    gh_watcher h;")
    w("    ASSERT_OK(gh_async_new(&h));")
    w("    return h;")
    w("}")
    w("")
    w("/* Bad handle values for a parameter of kind `kind`: 0 = zero, 1 = all ones, then")
    w(" * one live handle of each other kind, then a handle of a destroyed hub, then")
    w(f" * {NRANDOM} pseudo-random 64-bit values (splitmix64 from GH_SWEEP_SEED). */")
    w("static uint64_t sweep_next_random(void) {")
    w("    uint64_t z = (sweep_seed += 0x9E3779B97F4A7C15ull);")
    w("    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;")
    w("    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;")
    w("    return z ^ (z >> 31);")
    w("}")
    w(f"static const int sweep_nbad = 2 + {len(handles) - 1} + 1 + {NRANDOM};")
    w("static uint64_t sweep_bad_id(int i, const char *kind) {")
    w("    if (i == 0) return 0;")
    w("    if (i == 1) return ~(uint64_t)0;")
    w("    i -= 2;")
    for hd in handles:
        w(f"    if (strcmp(kind, \"{hd}\") != 0 && i-- == 0) return sweep_make_{hd}().id;")
    w("    if (i-- == 0) { /* live handle of the same kind, then its hub destroyed */")
    w("        uint64_t id = 0;")
    for hd in handles:
        w(f"        if (strcmp(kind, \"{hd}\") == 0) id = sweep_make_{hd}().id;")
    w("        ASSERT_OK(gh_hub_destroy());")
    w("        return id;")
    w("    }")
    w("    return sweep_next_random();")
    w("}")
    w("")
    w("/* The peer: a thread with its own hub holding a live handle of every kind, until")
    w(" * sweep_peer_stop (then it destroys its hub and exits). */")
    w(f"static uint64_t sweep_peer_ids[{len(handles)}];")
    w("static int sweep_peer_ready[2] = {-1, -1}, sweep_peer_quit[2] = {-1, -1};")
    w("static pthread_t sweep_peer_thread;")
    w("static void *sweep_peer_main(void *arg) {")
    w("    char c = 0;")
    w("    (void)arg;")
    for i, hd in enumerate(handles):
        w(f"    sweep_peer_ids[{i}] = sweep_make_{hd}().id;")
    w("    if (write(sweep_peer_ready[1], &c, 1) != 1) return (void *)1;")
    w("    if (read(sweep_peer_quit[0], &c, 1) != 1) return (void *)2;")
    w("    if (gh_hub_destroy() != GH_OK) return (void *)3;")
    w("    return NULL;")
    w("}")
    w("SWEEP_HELPER void sweep_peer_start(void) {")
    w("    char c;")
    w("    ASSERT_OK(pipe(sweep_peer_ready));")
    w("    ASSERT_OK(pipe(sweep_peer_quit));")
    w("    ASSERT_OK(pthread_create(&sweep_peer_thread, NULL, sweep_peer_main, NULL));")
    w("    ASSERT_EQ(read(sweep_peer_ready[0], &c, 1), 1);")
    w("}")
    w("SWEEP_HELPER void sweep_peer_stop(void) {")
    w("    void *r = (void *)1;")
    w("    ASSERT_EQ(write(sweep_peer_quit[1], \"q\", 1), 1);")
    w("    ASSERT_OK(pthread_join(sweep_peer_thread, &r));")
    w("    ASSERT_TRUE(r == NULL);")
    w("    ASSERT_OK(close(sweep_peer_ready[0]));")
    w("    ASSERT_OK(close(sweep_peer_ready[1]));")
    w("    ASSERT_OK(close(sweep_peer_quit[0]));")
    w("    ASSERT_OK(close(sweep_peer_quit[1]));")
    w("}")
    w("SWEEP_HELPER uint64_t sweep_peer_id(const char *kind) {")
    for i, hd in enumerate(handles):
        w(f"    if (strcmp(kind, \"{hd}\") == 0) return sweep_peer_ids[{i}];")
    w("    return 0;")
    w("}")
    w("")
    w("#define SWEEP_EXPECT(call, code, i)                                              \\")
    w("    do {                                                                         \\")
    w("        long long got_ = (long long)(call);                                      \\")
    w("        if (got_ != (code))                                                      \\")
    w("            fprintf(stderr, \"bad value #%d (-1: another thread's handle; \"          \\")
    w("                    \"GH_SWEEP_SEED=%llu)\\n\", (i), (unsigned long long)sweep_seed0); \\")
    w("        ASSERT_CODE(got_, code);                                                 \\")
    w("    } while (0)")
    w("")
    w("static int sweep_fd0;")
    w("static long sweep_maps0;")
    w("")
    w("/* fds of the case: a connected socket pair and a listening socket (abstract AF_UNIX). */")
    w("static void sweep_begin(void) {")
    w("    int sv[2];")
    w("    const char *seed = getenv(\"GH_SWEEP_SEED\");")
    w("    if (seed && *seed) sweep_seed = sweep_seed0 = strtoull(seed, NULL, 0);")
    w("    sweep_fd0 = gh_test_fd_count();")
    w("    sweep_maps0 = gh_test_map_count();")
    w("    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));")
    w("    sweep_fd = sv[0];")
    w("    sweep_peer = sv[1];")
    w("    memset(&sweep_addr, 0, sizeof sweep_addr);")
    w("    sweep_addr.sun_family = AF_UNIX;")
    w("    snprintf(sweep_addr.sun_path + 1, sizeof sweep_addr.sun_path - 1, \"gh-sweep-%d\",")
    w("             (int)getpid());")
    w("    sweep_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +")
    w("                                strlen(sweep_addr.sun_path + 1));")
    w("    sweep_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);")
    w("    ASSERT_TRUE(sweep_lfd >= 0);")
    w("    ASSERT_OK(bind(sweep_lfd, (struct sockaddr *)&sweep_addr, sweep_addrlen));")
    w("    ASSERT_OK(listen(sweep_lfd, 4));")
    w("}")
    w("")
    w("/* Hub destroyed, fds closed, child reaped: counts back at the start. */")
    w("static void sweep_end(void) {")
    w("    ASSERT_OK(gh_hub_destroy());")
    w("    ASSERT_OK(close(sweep_fd));")
    w("    ASSERT_OK(close(sweep_peer));")
    w("    ASSERT_OK(close(sweep_lfd));")
    w("    while (sweep_nsocks > 0) ASSERT_OK(close(sweep_socks[--sweep_nsocks]));")
    w("    while (sweep_nhandover > 0) {")
    w("        int fd = sweep_handover[--sweep_nhandover];")
    w("        if (fcntl(fd, F_GETFD) >= 0) ASSERT_OK(close(fd));")
    w("    }")
    w("    if (sweep_pid > 0) {")
    w("        int st;")
    w("        kill(sweep_pid, SIGKILL);")
    w("        ASSERT_EQ(waitpid(sweep_pid, &st, 0), sweep_pid);")
    w("    }")
    w("    ASSERT_EQ(gh_test_fd_count(), sweep_fd0);")
    w("    /* (valgrind's and ASan's own memory moves the mapping count: checked natively) */")
    w("    if (!gh_test_under_valgrind() && !GH_TEST_ASAN)")
    w("        ASSERT_EQ(gh_test_map_count(), sweep_maps0);")
    w("}")
    w("")
    for name, body, doc in cases:
        w(f"/* {doc} */")
        w(f"TEST({name}) {{")
        if body[0].startswith("    int i;"):
            w(body[0])
            body = body[1:]
        if "    sweep_peer_start();" in body:
            # a first thread leaves mappings behind (glibc's thread-stack cache and
            # malloc arena): let it do so before the counts are taken
            w("    sweep_peer_start();")
            w("    sweep_peer_stop();")
        w("    sweep_begin();")
        for line in body:
            w(line)
        w("    sweep_end();")
        w("}")
        w("")
    w("int main(int argc, char **argv) {")
    w("    TEST_INIT(argc, argv);")
    for name, _, _ in cases:
        w(f"    RUN({name});")
    w("    return TEST_DONE();")
    w("}")
    return "\n".join(out) + "\n", stats, handles


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", default=os.path.join(root, "include", "greenhub.h"))
    ap.add_argument("--out", default=os.path.join(root, "target", "c", "gen",
                                                  "test_sweep_gen.c"))
    a = ap.parse_args()
    try:
        h = Header(a.header)
        src, stats, handles = generate(h, a.header)
    except GenError as e:
        print(f"gen_sweep: {e}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(src)
    nbad = 3 + NRANDOM + len(handles) - 1
    print(f"gen_sweep: {len(h.funcs)} functions in {os.path.relpath(a.header, root)}: "
          f"{stats['null_funcs']} with required pointers ({stats['null_calls']} NULL calls), "
          f"{stats['handle_funcs']} with handles ({stats['handle_params']} parameters x "
          f"{nbad} bad values = {stats['handle_params'] * nbad} calls, "
          f"{stats['wrong_thread']} other-thread calls), "
          f"{len(stats['allowed'])} NULL-allowed parameters skipped, "
          f"{len(stats['plain'])} without pointer or handle -> {os.path.relpath(a.out, root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
