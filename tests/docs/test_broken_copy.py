#!/usr/bin/env python3
"""The docs suite fails when a doc is wrong: a copy of README.md with a misspelled
subcommand in a runnable block, a misspelled key in a config block and a new unmarked shell
block must make run_docs.py exit 1 and name each of them as FILE:LINE, and nothing else.

    test_broken_copy.py --idp build/src/idp --source-dir .
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_docs  # noqa: E402


def line_in(snippet, prefix):
    """The doc line (1-based) of the snippet's first line starting with `prefix`."""
    for n, row in enumerate(snippet.text.split("\n")):
        if row.strip().startswith(prefix):
            return snippet.content_line + n
    raise AssertionError(f"no line starting with {prefix!r} in the snippet at line {snippet.line}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idp", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="idp-docs-broken-")
    copy = os.path.join(tmp, "README.md")
    shutil.copy(os.path.join(args.source_dir, "README.md"), copy)

    items, errors = run_docs.parse_doc(copy)
    assert not errors, errors
    run = next(s for s in items if s.kind == "run")
    config = next(s for s in items if s.kind == "file" and s.opts.get("check") == "config")
    broken_cmd = line_in(run, "idp create ")
    broken_key = line_in(config, "ttl:")

    with open(copy) as f:
        lines = f.read().split("\n")
    lines[broken_cmd - 1] = lines[broken_cmd - 1].replace("idp create ", "idp craete ", 1)
    lines[broken_key - 1] = lines[broken_key - 1].replace("ttl:", "tll:", 1)
    while lines and lines[-1] == "":
        lines.pop()
    unmarked = len(lines) + 3
    lines += ["", "Then:", "```sh", "idp list", "```", ""]
    with open(copy, "w") as f:
        f.write("\n".join(lines))

    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_docs.py"),
                        "--idp", args.idp, "--source-dir", args.source_dir, "--discard", copy],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    out = r.stdout
    print(out)
    problems = []
    if r.returncode != 1:
        problems.append(f"run_docs.py exited {r.returncode}, expected 1")
    want = {
        broken_cmd: "snippet failed: `idp craete ",
        broken_key: "`idp config validate .idp/config.yml`",
        unmarked: "a ```sh block without a doc-test marker",
    }
    reported = {int(m.group(1)) for m in re.finditer("^" + re.escape(copy) + r":(\d+): ", out, re.M)}
    for line, text in want.items():
        if not re.search("^" + re.escape(f"{copy}:{line}: ") + ".*" + re.escape(text), out, re.M):
            problems.append(f"expected a report of {copy}:{line}: ...{text}...")
    if reported != set(want):
        problems.append(f"reported lines {sorted(reported)}, expected exactly {sorted(want)}")
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        print(f"(copy kept in {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("ok: the broken copy was reported at each broken line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
