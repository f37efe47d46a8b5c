#!/usr/bin/env python3
"""docs_check.py — checks the documentation site scripts/docs.sh generated.

  links    every generated page (*.html) and the tree view's index (navtree*.js): each
           local href and src must name a file of the site, and each #anchor an id (or
           name) of that page. External links (http:, mailto:, …) are not followed.
  render   the main pages — the main page, the module and page indexes, every guide page,
           every reference group, the header's page — opened in headless Chromium
           (`chromium --headless --dump-dom`, the page's JavaScript run), and the pages
           moved out of the README (docs/*.md, labelled *_page): each must come
           out with its title, non-empty contents, the navigation tree filled in, and no
           JavaScript error on the console.

Usage: scripts/docs_check.py [HTMLDIR]     (default: target/docs/html)
       --no-browser   the link check only
Env:   GH_CHROMIUM    the browser to run (default: chromium, else chromium-browser)
Prints one line per problem and a summary; exits 1 on any problem, 2 when it cannot run
(no site, no browser).
"""
import concurrent.futures
import glob
import html.parser
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Page(html.parser.HTMLParser):
    """The ids and the local links of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key) is not None:
                self.links.append((tag, key, a[key], self.getpos()[0]))


def local(url):
    """(path, fragment) of a link into the site, or None for an external one."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url):  # http:, mailto:, javascript:, data:
        return None
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.unquote(parts.path), parts.fragment


def check_links(site):
    pages, problems = {}, []
    files = sorted(glob.glob(os.path.join(site, "**", "*.html"), recursive=True))
    for f in files:
        p = Page()
        with open(f, encoding="utf-8", errors="replace") as fh:
            p.feed(fh.read())
        pages[os.path.abspath(f)] = p
    checked = 0

    def check(src, line, url, where):
        nonlocal checked
        loc = local(url)
        if loc is None:
            return
        path, frag = loc
        target = os.path.abspath(os.path.join(os.path.dirname(src), path)) if path else os.path.abspath(src)
        rel = os.path.relpath(src, site)
        checked += 1
        if not os.path.exists(target):
            problems.append(f"{rel}:{line}: {where} {url!r}: no such file")
        elif frag and target.endswith(".html"):
            page = pages.get(target)
            if page is not None and frag not in page.ids:
                problems.append(f"{rel}:{line}: {where} {url!r}: no anchor #{frag} in "
                                f"{os.path.relpath(target, site)}")

    for f, p in pages.items():
        for tag, key, url, line in p.links:
            if url == "" and key == "href":
                continue  # doxygen's <a href=""> placeholders
            check(f, line, url, f"<{tag} {key}>")
    # the tree view's entries live in JavaScript: ["title","page.html#anchor",...]
    for js in sorted(glob.glob(os.path.join(site, "navtree*.js"))):
        with open(js, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for m in re.finditer(r'"([^"\s]+\.html(?:#[^"\s]*)?)"', text):
            check(js, text.count("\n", 0, m.start()) + 1, m.group(1), "tree entry")
    return len(files), checked, problems


def browser():
    for name in (os.environ.get("GH_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


NOISE = re.compile(r"dbus|idle_linux|vaapi|sandbox_linux|unexpected operator|gpu|GPU|viz_main|"
                   r"Fontconfig|ALSA|udev|crashpad|disk_cache|Gtk|atk|ozone|x11|egl|gl_")


def render(chrome, site, page):
    """Problems seen opening `page` (relative to `site`) in headless Chromium."""
    url = "file://" + urllib.parse.quote(os.path.join(os.path.abspath(site), page))
    cmd = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--virtual-time-budget=3000", "--enable-logging=stderr",
           "--v=0", "--user-data-dir=" + os.path.join(site, "..", ".docs_check_profile", page),
           "--dump-dom", url]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return [f"{page}: Chromium took over 60 s"]
    dom, problems = r.stdout, []
    if r.returncode != 0 or not dom.strip():
        tail = [l for l in r.stderr.splitlines() if not NOISE.search(l)][-5:]
        return [f"{page}: Chromium exit {r.returncode}, no DOM: " + " | ".join(tail)]
    for l in r.stderr.splitlines():
        if "CONSOLE" in l and re.search(r"Uncaught|Error|Failed", l):
            problems.append(f"{page}: JavaScript: {l.split('] ', 1)[-1]}")
    title = re.search(r'<div class="title">(.*?)</div>', dom, re.S)
    if not title or not re.sub(r"<[^>]+>", "", title.group(1)).strip():
        problems.append(f"{page}: no page title rendered")
    contents = re.search(r'<div class="contents">(.*)', dom, re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", contents.group(1))) if contents else ""
    if len(text.strip()) < 200:
        problems.append(f"{page}: the contents did not render ({len(text.strip())} characters of text)")
    nav = dom.find('id="nav-tree-contents"')
    if nav < 0 or dom[nav:nav + 20000].count("<a ") < 5:
        problems.append(f"{page}: the navigation tree did not render (JavaScript)")
    return problems


def main():
    args = [a for a in sys.argv[1:] if a != "--no-browser"]
    use_browser = "--no-browser" not in sys.argv[1:]
    if any(a.startswith("-") for a in args) or len(args) > 1:
        print(__doc__.split("Usage:")[1].split("Prints")[0].rstrip(), file=sys.stderr)
        return 2
    site = args[0] if args else os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                             "docs", "html")
    if not os.path.isfile(os.path.join(site, "index.html")):
        print(f"docs_check: no site at {site} (run scripts/docs.sh first)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    n_files, n_links, problems = check_links(site)
    print(f"== links: {n_files} pages, {n_links} local links and tree entries checked, "
          f"{len(problems)} broken")
    rendered = 0
    if use_browser:
        chrome = browser()
        if not chrome:
            print("docs_check: no chromium (apt-get install chromium), or --no-browser", file=sys.stderr)
            return 2
        main_pages = ["index.html", "modules.html", "pages.html", "greenhub_8h.html"]
        main_pages += sorted(os.path.basename(p) for p in glob.glob(os.path.join(site, "guide*.html")))
        main_pages += sorted(os.path.basename(p) for p in glob.glob(os.path.join(site, "group__*.html")))
        main_pages += sorted(os.path.basename(p) for p in glob.glob(os.path.join(site, "*_page.html")))
        missing = [p for p in main_pages[:4] if not os.path.exists(os.path.join(site, p))]
        problems += [f"{p}: not generated" for p in missing]
        if not any(p.startswith("guide") for p in main_pages):
            problems.append("no guide pages (guide*.html) generated")
        if not any(p.startswith("group__") for p in main_pages):
            problems.append("no reference groups (group__*.html) generated")
        todo = [p for p in main_pages if p not in missing]
        profile = os.path.join(site, "..", ".docs_check_profile")
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for result in pool.map(lambda p: render(chrome, site, p), todo):
                problems += result
        shutil.rmtree(profile, ignore_errors=True)
        rendered = len(todo)
        print(f"== render: {rendered} pages opened in {os.path.basename(chrome)} --headless")
    for p in problems:
        print(f"docs_check: {p}")
    took = time.monotonic() - t0
    if problems:
        print(f"docs_check: FAILED — {len(problems)} problem(s) ({took:.0f} s)")
        return 1
    print(f"docs_check: ok — {n_files} pages, {n_links} links, {rendered} pages rendered ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
