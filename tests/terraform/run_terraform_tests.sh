#!/usr/bin/env bash
# Offline checks of every Terraform directory of mini-idp:
#   terraform/modules/*, terraform/shared/*, templates/*/terraform
# For each: fmt -check, init (offline, -plugin-dir, private TF_DATA_DIR) and `test`, which
# validates (the tests mock the aws provider: nothing reaches AWS). Plus repository level
# checks (standard template files linked from terraform/template-common, no hard-coded
# region, static-site has no VPC/ECS, the IAM policy file parses).
#
# Everything runs in a temporary copy of the tree, so no .terraform/, lock file or
# state is ever written into the work tree.
#
# Exit: 0 all passed; 1 something failed (the failing directories are printed);
#       125 skipped (no terraform/tofu >= 1.7, or no aws provider plugin found).
#
# Environment:
#   IDP_TF_BIN          terraform or tofu binary to use (default: tofu if on PATH, else terraform)
#   IDP_TF_PLUGIN_DIR   plugin directory holding registry.terraform.io/hashicorp/aws/...
#                       (default: found by searching for terraform-provider-aws*)
#   IDP_TF_JOBS         directories checked in parallel (default: number of CPUs)
#   IDP_TF_ONLY         only directories whose path contains this substring
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SKIP=125

log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- tool discovery
TF="${IDP_TF_BIN:-}"
if [[ -z "$TF" ]]; then
  if command -v tofu >/dev/null 2>&1; then TF=tofu
  elif command -v terraform >/dev/null 2>&1; then TF=terraform
  else log "SKIP: neither tofu nor terraform is installed"; exit $SKIP
  fi
fi
if ! command -v "$TF" >/dev/null 2>&1; then log "SKIP: $TF not found"; exit $SKIP; fi

TF_VERSION="$("$TF" version 2>/dev/null | head -n1 | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)"
ver_major="${TF_VERSION%%.*}"; ver_rest="${TF_VERSION#*.}"; ver_minor="${ver_rest%%.*}"
if [[ -z "$TF_VERSION" ]] || (( ver_major < 1 || (ver_major == 1 && ver_minor < 7) )); then
  log "SKIP: $TF $TF_VERSION is older than 1.7 (mock_provider needs 1.7+)"; exit $SKIP
fi

find_plugin_dir() {
  local bin=""
  if [[ -n "${IDP_TF_PLUGIN_DIR:-}" ]]; then
    bin="$(find "$IDP_TF_PLUGIN_DIR" -name 'terraform-provider-aws*' -type f 2>/dev/null | head -n1)"
  else
    local d
    for d in /opt/tf-plugins "$HOME/.terraform.d/plugins" "$HOME/.local/share/terraform/plugins" \
             /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
      [[ -d "$d" ]] || continue
      bin="$(find "$d" -name 'terraform-provider-aws*' -type f 2>/dev/null | head -n1)"
      [[ -n "$bin" ]] && break
    done
    if [[ -z "$bin" ]]; then
      bin="$(find / -name 'terraform-provider-aws*' -type f -not -path '/proc/*' -not -path '/sys/*' 2>/dev/null | head -n1)"
    fi
  fi
  [[ -n "$bin" ]] || return 1
  # .../<plugin dir>/<host>/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*
  local dir; dir="$(dirname "$bin")"
  dir="$(cd "$dir/../../../../.." && pwd)" || return 1
  printf '%s\n' "$dir"
}
PLUGIN_SRC="$(find_plugin_dir)" || { log "SKIP: no terraform-provider-aws plugin found (set IDP_TF_PLUGIN_DIR)"; exit $SKIP; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/idp-tf-tests.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# A plugin dir that serves the providers under both registry host names, so that
# OpenTofu (registry.opentofu.org) and Terraform (registry.terraform.io) find them.
# Real directories with symlinked binaries: Terraform's directory scan does not
# descend into symlinked directories.
PLUGIN_DIR="$WORK/plugins"
mkdir -p "$PLUGIN_DIR"
mirror_host() { # $1 source host dir, $2 target host name
  local src="$1" dst="$PLUGIN_DIR/$2" f rel
  while IFS= read -r -d '' f; do
    rel="${f#"$src"/}"
    mkdir -p "$dst/$(dirname "$rel")"
    ln -sf "$f" "$dst/$rel"
  done < <(find "$src" \( -type f -o -type l \) -print0)
}
first_host=""
for host_dir in "$PLUGIN_SRC"/*/; do
  host_dir="${host_dir%/}"
  [[ -d "$host_dir" ]] || continue
  mirror_host "$host_dir" "$(basename "$host_dir")"
  [[ -z "$first_host" ]] && first_host="$host_dir"
done
for host in registry.terraform.io registry.opentofu.org; do
  [[ -e "$PLUGIN_DIR/$host" || -z "$first_host" ]] || mirror_host "$first_host" "$host"
done

# ---------------------------------------------------------------- copy of the tree
SRC="$WORK/src"
mkdir -p "$SRC/templates"
cp -R "$ROOT/terraform" "$SRC/terraform"
for t in "$ROOT"/templates/*/terraform; do
  [[ -d "$t" ]] || continue
  name="$(basename "$(dirname "$t")")"
  mkdir -p "$SRC/templates/$name"
  cp -R "$t" "$SRC/templates/$name/terraform"
done
# Anything a developer left behind must not influence the run.
find "$SRC" \( -name .terraform -o -name '.terraform.lock.hcl' -o -name '*.tfstate' -o -name '*.tfstate.backup' -o -name 'backend_override.tf' \) -prune -exec rm -rf {} +

: >"$WORK/cli.tfrc"
export TF_CLI_CONFIG_FILE="$WORK/cli.tfrc"
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
unset TF_PLUGIN_CACHE_DIR TF_WORKSPACE

DIRS=()
for d in "$SRC"/terraform/modules/*/ "$SRC"/terraform/shared/*/ "$SRC"/templates/*/terraform/; do
  [[ -d "$d" ]] || continue
  rel="${d#"$SRC"/}"; rel="${rel%/}"
  if [[ -n "${IDP_TF_ONLY:-}" && "$rel" != *"$IDP_TF_ONLY"* ]]; then continue; fi
  DIRS+=("$rel")
done

# ---------------------------------------------------------------- one directory
check_dir() {
  local rel="$1" dir="$SRC/$1" slug
  slug="$(printf '%s' "$rel" | tr '/' '_')"
  local out="$WORK/logs/$slug.log"
  local data="$WORK/data/$slug"
  mkdir -p "$data"
  export TF_DATA_DIR="$data"
  local start=$SECONDS
  (
    echo "=== $rel"
    cd "$dir" || exit 1
    [[ -n "$(ls tests/*.tftest.hcl 2>/dev/null)" ]] || { echo "FAIL: no tests/*.tftest.hcl"; exit 1; }
    "$TF" fmt -check -recursive -diff -no-color || { echo "FAIL: fmt -check"; exit 1; }
    "$TF" init -backend=false -input=false -no-color -plugin-dir="$PLUGIN_DIR" >/dev/null || {
      "$TF" init -backend=false -input=false -no-color -plugin-dir="$PLUGIN_DIR"; echo "FAIL: init"; exit 1; }
    # No separate `validate`: `terraform test` validates the whole configuration before each
    # run block (an undeclared reference fails the test), and a `validate` costs a provider
    # start, about 5 s of CPU per directory on top of the tests. Every directory has tests
    # (checked above).
    "$TF" test -no-color || { echo "FAIL: test (validation or a run block)"; exit 1; }
  ) >"$out" 2>&1
  local rc=$?
  printf '%-48s %s (%ss)\n' "$rel" "$([[ $rc -eq 0 ]] && echo ok || echo FAILED)" "$((SECONDS - start))" >>"$WORK/summary"
  return $rc
}
export -f check_dir
export SRC WORK TF PLUGIN_DIR

# ---------------------------------------------------------------- repository checks
repo_checks() {
  local failed=0
  # 1. Standard files are links to terraform/template-common, never copies of their own.
  local f t
  for f in "$SRC"/terraform/template-common/*.tf; do
    f="$(basename "$f")"
    for t in "$SRC"/templates/*/terraform; do
      [[ -e "$t/$f" || -L "$t/$f" ]] || continue
      if [[ ! -L "$t/$f" || "$(readlink -f "$t/$f")" != "$(readlink -f "$SRC/terraform/template-common/$f")" ]]; then
        log "FAIL: ${t#"$SRC"/}/$f must be a link to terraform/template-common/$f (ln -s ../../../terraform/template-common/$f)"
        failed=1
      fi
    done
  done
  for t in api-service api-database scheduled-worker static-site; do
    for f in versions.tf providers.tf standard_variables.tf; do
      [[ -L "$SRC/templates/$t/terraform/$f" ]] || { log "FAIL: templates/$t/terraform/$f missing"; failed=1; }
    done
  done
  # 2. No hard-coded us-east-1 (the original's region defect); the ELB account map is data.
  local hits
  hits="$(grep -rn --include='*.tf' 'us-east-1' "$SRC/terraform" "$SRC/templates" | grep -v '/elb_accounts.tf:' | grep -vE '^\S+:[0-9]+:\s*(#|//)' | grep -v 'description' || true)"
  if [[ -n "$hits" ]]; then log "FAIL: hard-coded us-east-1:"; log "${hits//"$SRC"\//}"; failed=1; fi
  # 3. Every provider block takes its region from var.aws_region.
  local p
  while IFS= read -r p; do
    if ! awk '/^provider "aws"/{inb=1} inb && /region *= *var\.aws_region/{ok=1} inb && /^}/{inb=0} END{exit ok?0:1}' "$p"; then
      log "FAIL: ${p#"$SRC"/}: provider \"aws\" without region = var.aws_region"; failed=1
    fi
  done < <(grep -rl --include='*.tf' '^provider "aws"' "$SRC/terraform" "$SRC/templates")
  # 4. Modules never configure providers or backends; templates declare no backend.
  if grep -rn --include='*.tf' -E '^(provider "|  backend ")' "$SRC/terraform/modules" >/dev/null; then
    log "FAIL: a module configures a provider or backend"; failed=1
  fi
  if grep -rn --include='*.tf' -E '^\s*backend\s+"' "$SRC/templates" "$SRC/terraform/shared" >/dev/null; then
    log "FAIL: a template or shared stack declares a backend (the driver writes backend_override.tf)"; failed=1
  fi
  # 5. static-site: no VPC, no ECS, no ALB anywhere in its configuration graph.
  if [[ -d "$SRC/templates/static-site/terraform" ]]; then
    local g
    g="$(cd "$SRC/templates/static-site/terraform" && TF_DATA_DIR="$WORK/data/templates_static-site_terraform" "$TF" graph 2>&1)"
    if [[ $? -ne 0 ]]; then
      log "FAIL: terraform graph of templates/static-site/terraform"; log "$g"; failed=1
    elif grep -Eq 'aws_(vpc|subnet|nat_gateway|internet_gateway|ecs_|lb\b|lb_|db_instance)' <<<"$g"; then
      log "FAIL: templates/static-site/terraform contains VPC/ECS/ALB/RDS resources"; failed=1
    elif ! grep -q 'aws_cloudfront_distribution' <<<"$g"; then
      log "FAIL: templates/static-site/terraform graph has no CloudFront distribution"; failed=1
    fi
  fi
  # 6. The IAM policy for the idp server parses, has unique Sids, no Action "*", and fits.
  local pol="$SRC/terraform/iam/idp-server-policy.json"
  if [[ -f "$pol" ]]; then
    if command -v python3 >/dev/null 2>&1; then
      python3 - "$pol" <<'PY' || failed=1
import json, sys
p = json.load(open(sys.argv[1]))
assert p.get("Version") == "2012-10-17", "Version"
sids = set()
for s in p["Statement"]:
    acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
    assert "*" not in acts, "Action * in " + s.get("Sid", "?")
    assert s.get("Sid") and s["Sid"] not in sids, "missing/duplicate Sid"
    sids.add(s["Sid"])
# Attached as an inline role policy (limit 10240 chars without whitespace).
assert len(json.dumps(p, separators=(",", ":"))) <= 10240, "policy larger than the 10240-char inline limit"
# Roles idp creates always carry the preview boundary: CreateRole (and changing a role's
# boundary) only under an iam:PermissionsBoundary condition, and the boundary cannot be
# removed or rewritten.
for s in p["Statement"]:
    acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
    if s["Effect"] == "Allow" and ({"iam:CreateRole", "iam:PutRolePermissionsBoundary"} & set(acts) or
                                   any(a in ("iam:*", "iam:Create*", "iam:Put*") for a in acts)):
        cond = s.get("Condition", {}).get("ArnLike", {}).get("iam:PermissionsBoundary", "")
        assert cond.endswith(":policy/idp-preview-boundary"), "CreateRole without the permissions boundary condition in " + s["Sid"]
deny = [a for s in p["Statement"] if s["Effect"] == "Deny" for a in s["Action"]]
assert "iam:DeleteRolePermissionsBoundary" in deny and "iam:CreatePolicyVersion" in deny, "the boundary must be protected"
b = json.load(open(sys.argv[1].replace("idp-server-policy.json", "idp-preview-boundary.json")))
assert b.get("Version") == "2012-10-17" and b["Statement"], "boundary policy"
for s in b["Statement"]:
    acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
    assert not any(a == "*" or a.startswith("iam:") and a != "iam:PassRole" for a in acts), "boundary grants IAM: " + s["Sid"]
PY
    fi
  else
    log "FAIL: terraform/iam/idp-server-policy.json missing"; failed=1
  fi
  # 7. terraform/README.md's generated variable/output reference is current.
  if command -v python3 >/dev/null 2>&1; then
    python3 "$ROOT/terraform/scripts/gen_reference.py" --check || failed=1
  fi
  return $failed
}

# ---------------------------------------------------------------- run
mkdir -p "$WORK/logs" "$WORK/data"
: >"$WORK/summary"
JOBS="${IDP_TF_JOBS:-$(nproc 2>/dev/null || echo 2)}"
log "Using $TF $TF_VERSION, plugins from $PLUGIN_SRC, $JOBS parallel jobs, ${#DIRS[@]} directories"
START=$SECONDS

status=0
printf '%s\0' "${DIRS[@]}" | xargs -0 -n1 -P "$JOBS" bash -c 'check_dir "$0"' || status=1

# The graph check needs the static-site data dir initialised by check_dir above.
if [[ -z "${IDP_TF_ONLY:-}" ]]; then
  repo_checks || status=1
fi

sort "$WORK/summary"
failed_dirs="$(grep 'FAILED' "$WORK/summary" | awk '{print $1}')"
if [[ -n "$failed_dirs" ]]; then
  for rel in $failed_dirs; do
    log ""
    log "----- log of $rel"
    cat "$WORK/logs/$(printf '%s' "$rel" | tr '/' '_').log" >&2
  done
  log ""
  log "FAILED directories:"
  for rel in $failed_dirs; do log "  $rel"; done
  status=1
fi

passed=$(grep -c ' ok ' "$WORK/summary" || true)
nfailed=$(grep -c 'FAILED' "$WORK/summary" || true)
echo "wall time: $((SECONDS - START))s with $TF $TF_VERSION, $JOBS jobs"
echo "terraform: $passed passed, $nfailed failed"
exit $status
