#!/usr/bin/env python3
"""Runs the marked snippets of Markdown docs against a real `idp serve` (see README.md here).

    run_docs.py --idp build/src/idp --source-dir . README.md docs/*.md

Each fenced block in a shell, YAML or JSON language must follow a marker comment:
    <!-- doc-test: run [exit=N] [skip=REGEX] [follow=REGEX] [output=TEXT] -->   run it with bash
    <!-- doc-test: file=PATH [check=config|serve|none] [exit=N] [env="K=V ..."] -->
    <!-- doc-test: no (why not) -->                                 never run; say why
Hidden steps a reader has already done, and the server's environment:
    <!-- doc-test: setup
    bash lines
    -->
    <!-- doc-test: server K=V ... -->
A failure is reported as FILE:LINE of the doc. Exit 0 when every snippet did what it should.
Python 3 standard library only.
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Languages whose fenced blocks must carry a marker: what a reader would paste into a
# shell or a file. Untagged fences (diagrams, sample output) are prose.
MARKED_LANGUAGES = {"sh", "bash", "shell", "console", "yaml", "yml", "json"}
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*(-->)?\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)(.*)$")
RUN_TIMEOUT_S = 300       # one run block (idp create waits for the app to serve)
FOLLOW_SECONDS = 2        # how long a `follow=` line runs before it is stopped
SERVER_START_TIMEOUT_S = 60
PRELUDE = r"""set -eE -o pipefail
trap '__doc_rc=$?; echo "__doc_test_failed__ $LINENO $__doc_rc" >&2' ERR
# A command that runs until stopped (idp logs --follow): it must not fail before it is.
__doc_follow() {
  local rc=0
  timeout "$1" bash -c "$2" || rc=$?
  if [ "$rc" -eq 124 ]; then return 0; fi
  return "$rc"
}
"""


class DocError(Exception):
    pass


class Snippet:
    def __init__(self, kind, line, opts, text="", lang="", content_line=0):
        self.kind = kind              # run | file | no | setup | server
        self.line = line              # doc line of the marker
        self.opts = opts              # parsed marker options
        self.text = text              # the fence's (or setup's) content
        self.lang = lang
        self.content_line = content_line  # doc line of the first content line


def parse_marker(body, where):
    """'run exit=1 skip="^idp serve"' -> ('run', {'exit': '1', 'skip': ..., 'reason': ...})."""
    reason = ""
    m = re.search(r"\((.*)\)\s*$", body)
    if m:
        reason = m.group(1).strip()
        body = body[: m.start()]
    try:
        words = shlex.split(body)
    except ValueError as e:
        raise DocError(f"{where}: cannot parse the doc-test marker: {e}")
    if not words:
        raise DocError(f"{where}: empty doc-test marker")
    kind, opts = words[0], {"reason": reason}
    if "=" in kind:  # file=PATH first
        kind, words = "file", words
    else:
        words = words[1:]
    for w in words:
        if "=" not in w:
            raise DocError(f"{where}: doc-test marker: expected KEY=VALUE, got {w!r}")
        k, v = w.split("=", 1)
        opts[k] = v
    known = {
        "run": {"exit", "skip", "follow", "output", "reason"},
        "file": {"file", "check", "exit", "env", "reason"},
        "no": {"reason"},
        "server": None,
    }
    if kind not in known:
        raise DocError(f"{where}: unknown doc-test marker {kind!r} (expected run, file=PATH, no, setup or server)")
    if known[kind] is not None:
        for k in opts:
            if k not in known[kind]:
                raise DocError(f"{where}: doc-test {kind}: unknown option {k!r}")
    if kind == "no" and not reason:
        raise DocError(f"{where}: doc-test no: say why in parentheses, e.g. no (needs AWS)")
    if kind == "file" and opts.get("check", "none") not in ("config", "serve", "none"):
        raise DocError(f"{where}: doc-test file: check must be config, serve or none")
    return kind, opts


def parse_doc(path):
    """Every marked item of the doc, in order; DocError for unmarked or malformed ones."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    items, errors = [], []
    pending = None  # (kind, opts, line) waiting for its fence
    i = 0
    while i < len(lines):
        line = lines[i]
        where = f"{path}:{i + 1}"
        m = MARKER.match(line)
        if m:
            try:
                body = m.group(1)
                if body.split(None, 1)[0:1] == ["setup"]:
                    # Multi-line: everything up to the closing -->.
                    j, text = i + 1, []
                    while j < len(lines) and lines[j].strip() != "-->":
                        text.append(lines[j])
                        j += 1
                    if j == len(lines):
                        raise DocError(f"{where}: doc-test setup without a closing -->")
                    items.append(Snippet("setup", i + 1, {}, "\n".join(text) + "\n", "sh", i + 2))
                    i = j + 1
                    continue
                if not m.group(2):
                    raise DocError(f"{where}: a doc-test marker must end on its line with -->")
                kind, opts = parse_marker(body, where)
                if kind == "server":
                    items.append(Snippet("server", i + 1, opts))
                else:
                    if pending:
                        raise DocError(f"{path}:{pending[2]}: doc-test marker with no fenced block after it")
                    pending = (kind, opts, i + 1)
            except DocError as e:
                errors.append(str(e))
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            indent, fence, lang = f.group(1), f.group(2), f.group(3).lower()
            j, text = i + 1, []
            close = re.compile(r"^\s*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
            while j < len(lines) and not close.match(lines[j]):
                text.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
                j += 1
            if pending:
                kind, opts, mline = pending
                items.append(Snippet(kind, mline, opts, "\n".join(text) + "\n", lang, i + 2))
                pending = None
            elif lang in MARKED_LANGUAGES:
                errors.append(f"{where}: a ```{lang} block without a doc-test marker before it: mark it "
                              f"<!-- doc-test: run -->, <!-- doc-test: file=PATH check=... --> or "
                              f"<!-- doc-test: no (why) --> (tests/docs/README.md)")
            i = j + 1
            continue
        if pending and line.strip():
            errors.append(f"{path}:{pending[2]}: doc-test marker not followed by a fenced block")
            pending = None
        i += 1
    if pending:
        errors.append(f"{path}:{pending[2]}: doc-test marker not followed by a fenced block")
    return items, errors


def tail(text, n=25):
    rows = text.rstrip("\n").split("\n")
    return "\n".join("    " + r for r in rows[-n:]) if text.strip() else "    (nothing)"


class Server:
    """A private `idp serve`: its own home, API on port 0, started in the scratch dir."""

    def __init__(self, idp, home, cwd, env):
        self.idp, self.home, self.cwd, self.env = idp, home, cwd, env
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(home), "serve.log")

    def start(self):
        os.makedirs(self.home, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.idp, "serve", "--home", self.home, "--listen", "127.0.0.1:0"],
                                     cwd=self.cwd, env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        info = os.path.join(self.home, "daemon.json")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DocError(f"idp serve exited with {self.proc.returncode}:\n{tail(self.log())}")
            try:
                with open(info) as f:
                    if json.load(f).get("pid") == self.proc.pid:
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)  # polling daemon.json until the deadline
        raise DocError(f"idp serve did not write {info} within {SERVER_START_TIMEOUT_S}s:\n{tail(self.log())}")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Whatever the docs started for this home (apps, shims, Caddy): the drivers mark
        # them with IDP_HOME_ID / IDP_ROUTER_HOME_ID.
        home_id = hashlib.sha256(os.path.abspath(self.home).encode()).hexdigest()[:12]
        markers = {f"IDP_HOME_ID={home_id}".encode(), f"IDP_ROUTER_HOME_ID={home_id}".encode()}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if markers & set(f.read().split(b"\0")):
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


class DocRun:
    def __init__(self, path, args):
        self.path = path
        self.args = args
        self.root = tempfile.mkdtemp(prefix="idp-docs-")
        self.scratch = os.path.join(self.root, "work")
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.scratch)
        self.failures = []
        self.counts = {"run": 0, "file": 0, "no": 0, "setup": 0}
        self.server_env = {}
        self.server = None
        idp_dir = os.path.dirname(os.path.abspath(args.idp))
        # No session bus: `idp login` in a snippet must not reach the user's own keyring.
        env = {k: v for k, v in os.environ.items()
               if (not k.startswith("IDP_") or k in ("IDP_BINARY", "IDP_SOURCE_DIR"))
               and k != "DBUS_SESSION_BUS_ADDRESS"}
        env.update({
            "PATH": idp_dir + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
            "IDP_HOME": self.home,           # how the CLI finds the server and its admin token
            "XDG_CONFIG_HOME": os.path.join(self.root, "config"),  # where `idp login` keeps tokens
            "IDP_SOURCE_DIR": os.path.abspath(args.source_dir),
            "NO_COLOR": "1",
            "COLUMNS": "100",
            "GIT_AUTHOR_NAME": "doc-test", "GIT_AUTHOR_EMAIL": "doc-test@idp.local",
            "GIT_COMMITTER_NAME": "doc-test", "GIT_COMMITTER_EMAIL": "doc-test@idp.local",
        })
        self.env = env

    def fail(self, line, what, detail=""):
        self.failures.append(f"{self.path}:{line}: {what}" + (f"\n{detail}" if detail else ""))

    def ensure_server(self):
        if self.server is None:
            env = dict(self.env)
            env.pop("IDP_HOME", None)
            env.update({k: v.replace("{scratch}", self.scratch) for k, v in self.server_env.items()})
            self.server = Server(os.path.abspath(self.args.idp), self.home, self.scratch, env)
            self.server.start()

    def run_script(self, text, timeout=RUN_TIMEOUT_S, env=None):
        prelude = os.path.join(self.root, "prelude.sh")
        with open(prelude, "w") as f:
            f.write(PRELUDE)
        script = os.path.join(self.root, "snippet.sh")
        with open(script, "w") as f:
            f.write(f"source {shlex.quote(prelude)}\n" + text)
        p = subprocess.Popen(["bash", script], cwd=self.scratch, env=env or self.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            return None, out.decode(errors="replace"), err.decode(errors="replace"), None
        err = err.decode(errors="replace")
        failed_at = None
        m = re.search(r"^__doc_test_failed__ (\d+) (\d+)$", err, re.M)
        if m:
            failed_at = int(m.group(1)) - 1  # the line of the snippet (line 1 is the prelude)
            err = err[: m.start()] + err[m.end() + 1:]
        return p.returncode, out.decode(errors="replace"), err, failed_at

    def do_setup(self, s):
        self.counts["setup"] += 1
        rc, out, err, at = self.run_script(s.text)
        if rc != 0:
            line = s.content_line + at - 1 if at else s.line
            self.fail(line, f"doc-test setup failed (exit {rc})", f"  stdout:\n{tail(out)}\n  stderr:\n{tail(err)}")
            return False
        return True

    def do_run(self, s):
        self.counts["run"] += 1
        self.ensure_server()
        skip = re.compile(s.opts["skip"]) if "skip" in s.opts else None
        follow = re.compile(s.opts["follow"]) if "follow" in s.opts else None
        rows = s.text.rstrip("\n").split("\n")
        body = []
        for row in rows:
            cmd = row.strip()
            if skip and cmd and not cmd.startswith("#") and skip.search(cmd):
                body.append(":  # doc-test: skipped")
            elif follow and cmd and not cmd.startswith("#") and follow.search(cmd):
                body.append(f"__doc_follow {FOLLOW_SECONDS} {shlex.quote(cmd)}")
            else:
                body.append(row)
        want = int(s.opts.get("exit", "0"))
        rc, out, err, at = self.run_script("\n".join(body) + "\n")
        if self.args.verbose:
            print(f"{self.path}:{s.content_line}: exit {rc}\n  stdout:\n{tail(out, 1000)}\n  stderr:\n{tail(err, 1000)}")
        detail = f"  stdout:\n{tail(out)}\n  stderr:\n{tail(err)}"
        if rc == want:
            if "output" in s.opts and s.opts["output"] not in out + err:
                self.fail(s.content_line, f"snippet's output lacks {s.opts['output']!r}", detail)
                return False
            return True
        if rc is None:
            self.fail(s.content_line, f"snippet still running after {RUN_TIMEOUT_S}s", detail)
        elif at:
            line = s.content_line + at - 1
            self.fail(line, f"snippet failed: `{rows[at - 1].strip()}` exited {rc} (expected {want})", detail)
        else:
            self.fail(s.content_line, f"snippet exited {rc}, expected {want}", detail)
        return False

    def do_file(self, s):
        self.counts["file"] += 1
        name = s.opts["file"]
        target = os.path.join(self.scratch, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(s.text)
        check = s.opts.get("check", "none")
        if check == "none":
            return True
        env = dict(self.env)
        for kv in shlex.split(s.opts.get("env", "")):
            k, _, v = kv.partition("=")
            env[k] = v
        if check == "config":
            argv = ["idp", "config", "validate", name]
        else:
            argv = ["idp", "serve", "--check-config", "--config", name]
        want = int(s.opts.get("exit", "0"))
        rc, out, err, _ = self.run_script(shlex.join(argv) + "\n", env=env)
        if rc == want:
            return True
        # The validators name FILE:LINE:COL; point at the doc's line instead.
        line = s.content_line
        m = re.search(re.escape(name) + r":(\d+):\d+:", err + out)
        if m:
            line = s.content_line + int(m.group(1)) - 1
        self.fail(line, f"`{shlex.join(argv)}` on the block as {name} exited {rc} (expected {want})",
                  f"  stdout:\n{tail(out)}\n  stderr:\n{tail(err)}")
        return True  # a config file stands alone: later snippets still run

    def run(self):
        try:
            items, errors = parse_doc(self.path)
        except (OSError, UnicodeDecodeError) as e:
            self.failures.append(f"{self.path}: cannot read: {e}")
            return
        self.failures.extend(errors)
        runs_ok = True
        try:
            for s in items:
                if s.kind == "no":
                    self.counts["no"] += 1
                elif s.kind == "server":
                    self.server_env.update({k: v for k, v in s.opts.items() if k != "reason"})
                elif s.kind == "file":
                    self.do_file(s)
                elif not runs_ok:
                    continue  # later commands build on the failed one
                elif s.kind == "setup":
                    runs_ok = self.do_setup(s)
                else:
                    runs_ok = self.do_run(s)
        except DocError as e:
            self.failures.append(f"{self.path}: {e}")
        finally:
            if self.server:
                self.server.stop()
                if self.failures:
                    self.failures.append(f"{self.path}: the server's log (last lines):\n{tail(self.server.log(), 40)}")
        if self.failures and not self.args.keep and not self.args.discard:
            self.failures.append(f"{self.path}: scratch directory kept: {self.root}")
        elif not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idp", required=True, help="the idp binary to put first on PATH")
    ap.add_argument("--source-dir", required=True, help="the source tree (IDP_SOURCE_DIR for setup steps)")
    ap.add_argument("--keep", action="store_true", help="keep every scratch directory")
    ap.add_argument("--discard", action="store_true", help="remove the scratch directory even on failure")
    ap.add_argument("--verbose", action="store_true", help="print what every run block printed")
    ap.add_argument("docs", nargs="+")
    args = ap.parse_args()
    if not os.access(args.idp, os.X_OK):
        print(f"run_docs: {args.idp}: not an executable idp binary", file=sys.stderr)
        return 2
    failed = 0
    for path in args.docs:
        r = DocRun(path, args)
        r.run()
        c = r.counts
        print(f"{path}: {c['run']} run, {c['file']} files, {c['setup']} setup, {c['no']} not runnable"
              + (f": {len(r.failures)} problem(s)" if r.failures else ": ok"))
        for msg in r.failures:
            print(msg)
        failed += bool(r.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
