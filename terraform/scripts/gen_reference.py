#!/usr/bin/env python3
"""Generate the variable/output reference of terraform/README.md from the .tf files.

    gen_reference.py            rewrite the generated block of terraform/README.md
    gen_reference.py --check    exit 1 if the README is out of date (used by
                                tests/terraform/run_terraform_tests.sh)

Only a small HCL subset is parsed: top-level `variable` and `output` blocks and
their first-level `description`, `type`, `default`, `sensitive` attributes.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "terraform", "README.md")
BEGIN = "<!-- BEGIN GENERATED REFERENCE (terraform/scripts/gen_reference.py) -->"
END = "<!-- END GENERATED REFERENCE -->"


def blocks(text, kind):
    for m in re.finditer(r'^%s\s+"([^"]+)"\s*\{' % kind, text, re.M):
        depth, i = 1, m.end()
        while depth and i < len(text):
            c = text[i]
            if c == '"':  # skip strings
                i += 1
                while i < len(text) and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        yield m.group(1), text[m.end():i - 1]


def attr(body, name):
    """First-level attribute value as source text (multi-line values joined)."""
    lines = body.split("\n")
    depth = 0
    for idx, line in enumerate(lines):
        stripped = line.strip()
        if depth == 0:
            m = re.match(r"%s\s*=\s*(.*)$" % name, stripped)
            if m:
                value = m.group(1)
                h = re.match(r"<<-?(\w+)$", value)
                if h:
                    out = []
                    for l2 in lines[idx + 1:]:
                        if l2.strip() == h.group(1):
                            break
                        out.append(l2.strip())
                    return " ".join(out).strip()
                opened = value.count("{") + value.count("[") + value.count("(")
                closed = value.count("}") + value.count("]") + value.count(")")
                j = idx + 1
                while opened > closed and j < len(lines):
                    value += " " + lines[j].strip()
                    opened = value.count("{") + value.count("[") + value.count("(")
                    closed = value.count("}") + value.count("]") + value.count(")")
                    j += 1
                return value
        depth += stripped.count("{") - stripped.count("}")
    return None


def unquote(s):
    if s and s.startswith('"') and s.endswith('"'):
        return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return s


def cell(s):
    return (s or "").replace("|", "\\|").replace("\n", " ")


def directory_reference(rel):
    path = os.path.join(ROOT, rel)
    text = ""
    for f in sorted(os.listdir(path)):
        if f.endswith(".tf"):
            with open(os.path.join(path, f)) as fh:
                text += fh.read() + "\n"
    out = ["### `%s`" % rel, ""]
    variables = list(blocks(text, "variable"))
    if variables:
        out += ["| variable | type | default | description |", "|---|---|---|---|"]
        for name, body in sorted(variables):
            default = attr(body, "default")
            default = "**required**" if default is None else "`%s`" % cell(default)
            if attr(body, "sensitive") == "true":
                default += " (sensitive)"
            out.append("| `%s` | `%s` | %s | %s |" % (
                name, cell(attr(body, "type") or "any"), default, cell(unquote(attr(body, "description")))))
        out.append("")
    outputs = list(blocks(text, "output"))
    if outputs:
        out += ["| output | description |", "|---|---|"]
        for name, body in sorted(outputs):
            out.append("| `%s` | %s |" % (name, cell(unquote(attr(body, "description")))))
        out.append("")
    return out


def generate():
    dirs = []
    for group in ("terraform/modules", "terraform/shared"):
        base = os.path.join(ROOT, group)
        dirs += ["%s/%s" % (group, d) for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))]
    tdir = os.path.join(ROOT, "templates")
    dirs += ["templates/%s/terraform" % d for d in sorted(os.listdir(tdir))
             if os.path.isdir(os.path.join(tdir, d, "terraform"))]
    lines = [BEGIN, "", "Generated from the `.tf` files; do not edit by hand.", ""]
    for d in dirs:
        lines += directory_reference(d)
    lines.append(END)
    return "\n".join(lines)


def main():
    with open(README) as fh:
        readme = fh.read()
    if BEGIN not in readme or END not in readme:
        sys.exit("terraform/README.md lacks the generated-reference markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + generate() + tail
    if "--check" in sys.argv:
        if new != readme:
            sys.exit("terraform/README.md reference is out of date: run terraform/scripts/gen_reference.py")
        return
    with open(README, "w") as fh:
        fh.write(new)


if __name__ == "__main__":
    main()
