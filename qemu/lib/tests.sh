# shellcheck shell=bash
# The test suite in the guest: build the test binaries once, stage them
# with the files they read, write the guest's runner, sum up the results.
# Sourced after common.sh and initramfs.sh.

# Tests not run in the guest; they run with the host's tests (cargo test
# --workspace), which scripts/test runs first. An entry is a test binary
# (not staged) or BINARY:MODULE (the binary runs with --skip MODULE::):
# - tgt:tgt_spdk_rpc needs Python and the PyPI spdk package, which the
#   guest does not have;
# - the blobstore's corruption suite, power-cut sweep and corrupted-image
#   CLI runs, the lvol suite and the large-config loading tests are pure
#   software (RAM and file devices, no NVMe, no DMA) and take minutes under
#   TCG: a guest run would repeat the host's, twice, at ten times the cost.
HOST_ONLY_TESTS=(tgt:tgt_spdk_rpc lvol blob:blob_corrupt blob:blob_powercut cli:blob_cli_corrupt bdev_rpc_config)

# host_only_skips BINARY: the --skip arguments that leave BINARY's host-only
# modules out, space separated (none for most binaries).
host_only_skips() {
  local entry out=()
  for entry in "${HOST_ONLY_TESTS[@]}"; do
    [[ $entry == "$1":* ]] && out+=(--skip "${entry#*:}::")
  done
  printf '%s\n' "${out[*]}"
}

# module_binary ALL MODULE: the test line of ALL (see build_tests) whose
# binary holds tests named MODULE::..., e.g. bdev for bdev_reset.
module_binary() {
  local kind name pkg exe
  while IFS=$'\t' read -r kind name pkg exe; do
    [[ $kind == test ]] || continue
    # grep reads the whole list: with -q the binary could die of SIGPIPE.
    if "$exe" --list 2>/dev/null | grep "^$1::" >/dev/null; then
      printf '%s\t%s\t%s\t%s\n' "$kind" "$name" "$pkg" "$exe"
      return 0
    fi
  done <"$2"
  return 1
}

# build_tests LIST: cargo test --workspace --no-run; writes one line per
# executable to LIST: KIND<TAB>NAME<TAB>PACKAGE_DIR<TAB>PATH<TAB>ARGS, KIND
# being test (a test harness) or bin (a binary tests may call), ARGS the
# binary's own test arguments (a module filter or host-only skips). With
# ONLY (a comma-separated list of BINARY, BINARY:MODULE or MODULE), only
# those test binaries, or those modules of them.
build_tests() {
  log "cargo test --workspace --no-run"
  (cd "$REPO_DIR" && cargo test --workspace --no-run --message-format=json-render-diagnostics) |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null)
      | [(if .profile.test then "test" else "bin" end), .target.name,
         (.manifest_path | sub("/Cargo.toml$"; "")), .executable] | @tsv' |
    LC_ALL=C sort -t $'\t' -k1,2 >"$1.all"
  local line
  if [[ -n ${ONLY:-} ]]; then
    local name bin module lines
    grep '^bin' "$1.all" >"$1" || true
    IFS=, read -r -a names <<<"$ONLY"
    for name in "${names[@]}"; do
      bin=${name%%:*} module=
      [[ $name == *:* ]] && module=${name#*:}
      lines=$(awk -F '\t' -v n="$bin" '$1 == "test" && $2 == n' "$1.all")
      if [[ -z $lines && -z $module ]] && lines=$(module_binary "$bin" "$1.all"); then
        module=$bin
      fi
      [[ -n $lines ]] ||
        die "--only: no test binary or test module named '$bin' (see: cargo test --workspace -- --list)"
      while IFS= read -r line; do
        if [[ -n $module ]]; then
          printf '%s\t%s\n' "$line" "$module::"
        else
          printf '%s\t%s\n' "$line" "$(host_only_skips "$bin")"
        fi
      done <<<"$lines" >>"$1"
    done
  else
    local skip=" ${HOST_ONLY_TESTS[*]} " kind name rest
    while IFS= read -r line; do
      IFS=$'\t' read -r kind name rest <<<"$line"
      [[ $kind == test && $skip == *" $name "* ]] && continue
      printf '%s\t%s\n' "$line" "$([[ $kind == test ]] && host_only_skips "$name")"
    done <"$1.all" >"$1"
    log "host-only tests, not run in the guest: ${HOST_ONLY_TESTS[*]}"
  fi
  grep -q '^test' "$1" || die "cargo built no test binaries"
}

# stage_tests STAGE LIST [TEST-ARGS...]: every test binary of LIST under
# /payload/tests, every binary at its host path and on PATH, the
# workspace's examples/*.json configs and each
# package's tests/fixtures at its host path (tests find them through
# CARGO_MANIFEST_DIR or relative to the package), and /payload/cmd that
# runs each test binary from its package directory. After each binary,
# every NVMe function is bound to the mode's driver again, and a binary
# that left one elsewhere is named.
stage_tests() {
  local stage=$1 list=$2 kind name pkg exe own n=0 seen=" " args own_q own_words
  shift 2
  args=$(sh_quote --include-ignored --test-threads=1 "$@")
  {
    echo 'failed=0'
    echo 'export RUST_BACKTRACE=1'
  } >"$stage/payload/cmd"
  while IFS=$'\t' read -r kind name pkg exe own; do
    if [[ $seen != *" $pkg "* ]]; then
      seen+="$pkg "
      mkdir -p "$stage$pkg"
      [[ -d $pkg/tests/fixtures ]] && mkdir -p "$stage$pkg/tests" && cp -a "$pkg/tests/fixtures" "$stage$pkg/tests/"
    fi
    # The example configs the tools' tests load (examples/bdevperf.json).
    if [[ $seen != *" examples "* && -d $REPO_DIR/examples ]]; then
      seen+="examples "
      mkdir -p "$stage$REPO_DIR/examples"
      cp -a "$REPO_DIR"/examples/*.json "$stage$REPO_DIR/examples/" 2>/dev/null || true
    fi
    if [[ $kind == bin ]]; then
      stage_binary "$stage" "$exe" "${exe#/}"
      stage_binary "$stage" "$exe"
      continue
    fi
    n=$((n + 1))
    local dest
    dest=/payload/tests/$(printf '%02d' "$n")-${exe##*/}
    stage_binary "$stage" "$exe" "${dest#/}"
    own_q=
    read -r -a own_words <<<"$own"
    if ((${#own_words[@]})); then
      own_q=$(sh_quote "${own_words[@]}")
    fi
    cat >>"$stage/payload/cmd" <<RUN
echo "==> $name (${exe##*/})${own:+ $own}"
(cd $(sh_quote "$pkg") && CARGO_MANIFEST_DIR=$(sh_quote "$pkg") timeout $TEST_TIMEOUT $dest $args $own_q)
rc=\$?
[ \$rc -eq 143 ] && echo "spdk-io-guest: $name killed after ${TEST_TIMEOUT}s (--test-timeout)"
spdk-io-guest-bind "\$SPDK_IO_GUEST_DRIVER" $(sh_quote "$name") || rc=125
echo "spdk-io-test: $name \$rc" >/dev/ttyS1
[ \$rc -eq 0 ] || failed=\$((failed + 1))
RUN
  done <"$list"
  # shellcheck disable=SC2016 # expanded in the guest
  echo 'exit $((failed > 0))' >>"$stage/payload/cmd"
  log "staged $n test binaries ($(du -sh "$stage" | cut -f1))"
}

# mode_summary MODE DIR: one line with cargo test's counts summed over
# DIR/console.log and the binaries that failed.
mode_summary() {
  local mode=$1 dir=$2 counts bad
  counts=$(tr -d '\r' <"$dir/console.log" | awk '
    /^test result: / {
      for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^passed/) p += $i
        if ($(i + 1) ~ /^failed/) f += $i
        if ($(i + 1) ~ /^ignored/) g += $i
      }
      b++
    }
    END { printf "%d passed, %d failed, %d ignored in %d binaries", p, f, g, b }')
  bad=$(sed -n 's/^spdk-io-test: \(.*\) [1-9][0-9]*\r*$/\1/p' "$dir/results" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
  printf 'mode %s: %s%s (guest status %s, %ss)\n' "$mode" "$counts" \
    "${bad:+; failed binaries: $bad}" "$GUEST_STATUS" "$GUEST_SECONDS"
}
