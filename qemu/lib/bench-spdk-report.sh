# shellcheck shell=bash
# qemu/bench --spdk-perf's report: the "spdkbench TOOL WORKLOAD ROUND JSON"
# lines the guest wrote, turned into one JSON object and a text table.
# Sourced after common.sh. Both tools' JSON carry .total.iops and
# .total.avg_lat_us.

# bench_spdk_json RESULTS [EMU_RUNS SECONDS [TRACE_RUNS]]: per workload,
# each tool's IOPS and average latency per round, their medians, and the
# median and range of the per-round ratios spdk-io / SPDK (a round's two
# runs are adjacent in time); each tool's latency percentiles (p50, p99,
# p99.9, p99.99, max) per round and their medians, with the paired p99.9
# ratio. With EMU_RUNS (emu_cpu_runs' array) and the seconds per run, also
# the emulator's CPU nanoseconds per I/O of every run and the share of the
# wall clock QEMU's threads were on a CPU; with TRACE_RUNS
# (nvme_trace_runs' array), the NVMe controller's traced events per I/O.
bench_spdk_json() {
  local emu=${2:-[]} secs=${3:-1} trace=${4:-[]}
  tr -d '\r' <"$1" |
    sed -n 's/^spdkbench \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"tool":"\1","workload":"\2","round":\3,"out":/p' |
    sed 's/$/}/' | jq -s --argjson emu "$emu" --argjson secs "$secs" --argjson trace "$trace" '
      map(. as $r
        | ([$emu[] | select(.tool == $r.tool and .workload == $r.workload and .round == $r.round)]
           | first) as $e
        | ([$trace[] | select(.tool == $r.tool and .workload == $r.workload and .round == $r.round) | .events]
           | first) as $t
        | ($r.out.total.iops * $secs) as $ios
        | $r + { emu_ns_per_io: (if $e != null and $ios > 0 then $e.emu_ns / $ios else null end),
                 threads: (if $e != null and $e.main_util != null
                           then { main_loop: $e.main_util, vcpu: $e.vcpu_util, other: $e.other_util,
                                  main_loop_wait: $e.main_wait, vcpu_wait: $e.vcpu_wait } else null end),
                 trace_per_io: (if $t != null and $ios > 0 then ($t | map_values(. / $ios)) else null end) })
      | def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r2: if . == null then null else (. * 100 | round) / 100 end;
      def of(t; f): map(select(.tool == t)) | sort_by(.round) | map(.out.total | f);
      def emu(t): map(select(.tool == t)) | sort_by(.round) | map(.emu_ns_per_io | if . then round else . end);
      def emu_pairs(a; b): [ group_by(.round)[]
        | (map(select(.tool == a)) | first | .emu_ns_per_io) as $a
        | (map(select(.tool == b)) | first | .emu_ns_per_io) as $b
        | select($a != null and $b != null and $b > 0) | $a / $b ];
      (reduce .[] as $r ([]; if any(.[]; . == $r.workload) then . else . + [$r.workload] end)) as $order
      | group_by(.workload) | map({ key: .[0].workload, value: (
          . as $runs
          # pairs(a; b): per round, a over b in IOPS and in average latency.
          | def pairs(a; b): [ $runs | group_by(.round)[]
              | (map(select(.tool == a)) | first) as $a
              | (map(select(.tool == b)) | first) as $b
              | select($a != null and $b != null and $b.out.total.iops > 0)
              | { round: $a.round, iops: ($a.out.total.iops / $b.out.total.iops),
                  lat: (if $b.out.total.avg_lat_us > 0 then $a.out.total.avg_lat_us / $b.out.total.avg_lat_us else null end) } ];
            # pct(t; k): the percentile k of tool t ("p99.9", or "max") per round, null where absent.
            def pct(t; k): map(select(.tool == t)) | sort_by(.round)
              | map(if k == "max" then .out.total.max_lat_us else .out.total.percentiles_us[k] end);
            def lat(t): . as $all | reduce ("p50", "p99", "p99.9", "p99.99", "max") as $k ({ rounds: {}, median: {} };
              ($all | pct(t; $k) | map(if . == null then null else r2 end)) as $v
              | .rounds[$k] = $v | .median[$k] = ($v | map(select(. != null)) | median | r2));
            # pct_pairs(a; b; k): per round, a over b at percentile k.
            def pct_pairs(a; b; k): [ $runs | group_by(.round)[]
              | (map(select(.tool == a)) | first) as $a
              | (map(select(.tool == b)) | first) as $b
              | select($a != null and $b != null)
              | (if k == "max" then [$a.out.total.max_lat_us, $b.out.total.max_lat_us]
                 else [$a.out.total.percentiles_us[k], $b.out.total.percentiles_us[k]] end)
              | select(.[0] != null and .[1] != null and .[1] > 0) | .[0] / .[1] ];
            ["spdk-io", "spdk", "spdk-io-variant"] as $tools
          | pairs("spdk-io"; "spdk") as $pairs
          | { spdk_io_iops: of("spdk-io"; .iops | round), spdk_iops: of("spdk"; .iops | round),
              spdk_io_avg_lat_us: of("spdk-io"; .avg_lat_us | r2), spdk_avg_lat_us: of("spdk"; .avg_lat_us | r2),
              spdk_io_median: (of("spdk-io"; .iops) | median | if . then round else . end),
              spdk_median: (of("spdk"; .iops) | median | if . then round else . end),
              paired_ratio: ($pairs | map(.iops) | median | r2),
              paired_ratio_min: ($pairs | map(.iops) | min | r2),
              paired_ratio_max: ($pairs | map(.iops) | max | r2),
              paired_lat_ratio: ($pairs | map(.lat | select(. != null)) | median | r2) }
            + { latency_us: ([$tools[] as $t | select(any($runs[]; .tool == $t))
                  | { key: $t, value: ($runs | lat($t)) }] | from_entries) }
            + (pct_pairs("spdk-io"; "spdk"; "p99.9") as $p
              | { p999_paired_ratio: ($p | median | r2), p999_paired_ratio_min: ($p | min | r2),
                  p999_paired_ratio_max: ($p | max | r2), p999_rounds: ($p | map(r2)),
                  p999_rounds_at_or_below: ($p | map(select(. <= 1)) | length),
                  max_paired_ratio: (pct_pairs("spdk-io"; "spdk"; "max") | median | r2) })
            + (if any($runs[]; .out.namespaces[0].transport_stats? != null) then
                { driver_stats: ([$tools[] as $t | select(any($runs[]; .tool == $t and .out.namespaces[0].transport_stats? != null))
                  | { key: $t, value: ($runs | map(select(.tool == $t) | .out.namespaces[0].transport_stats? | select(. != null)) as $st
                      | def per(f): $st | map(f | select(. != null)) | median | if . == null then null else (. * 1000 | round) / 1000 end;
                      { completions_per_busy_poll: per(if .polls > .idle_polls then .completions / (.polls - .idle_polls) else null end),
                        idle_poll_share: per(if .polls > 0 then .idle_polls / .polls else null end),
                        sq_mmio_per_io: per(if .completions > 0 then .sq_mmio_doorbell_updates / .completions else null end),
                        cq_mmio_per_io: per(if .completions > 0 then .cq_mmio_doorbell_updates / .completions else null end),
                        shadow_per_io: per(if .completions > 0 then (.sq_shadow_doorbell_updates + .cq_shadow_doorbell_updates) / .completions else null end),
                        kicks_per_io: per(if .completions > 0 then .doorbell_kicks / .completions else null end) }) }]
                  | from_entries) }
              else {} end)
            + (if any($runs[]; .out.namespaces[0].timeline? != null) then
                { timeline: ([$tools[] as $t | select(any($runs[]; .tool == $t and .out.namespaces[0].timeline? != null))
                  | { key: $t, value: ([$runs[] | select(.tool == $t) | .out.namespaces[]?.timeline? | select(. != null)] as $tl
                      | def per(f): $tl | map(f | select(. != null)) | median | if . == null then null else (. * 1000 | round) / 1000 end;
                      { completions_per_batch: per(.completions_per_batch),
                        guest_mean_us: per(.guest_us.mean), guest_p50_us: per(.guest_us.p50), guest_p99_us: per(.guest_us.p99),
                        reap_mean_us: per(.reap_us.mean), reap_p50_us: per(.reap_us.p50),
                        submit_mean_us: per(.submit_us.mean), submit_p50_us: per(.submit_us.p50),
                        build_mean_us: per(.build_us.mean), build_p50_us: per(.build_us.p50),
                        doorbell_mean_us: per(.doorbell_us.mean), doorbell_p50_us: per(.doorbell_us.p50),
                        controller_mean_us: per(.controller_us.mean), controller_p50_us: per(.controller_us.p50),
                        controller_p99_us: per(.controller_us.p99), account_mean_us: per(.account_us.mean),
                        guest_share: per(.guest_share) }) }] | from_entries) }
              else {} end)
            + (if any($runs[]; .threads != null) then
                { threads: ([$tools[] as $t | select(any($runs[]; .tool == $t and .threads != null))
                  | { key: $t, value: ($runs | map(select(.tool == $t and .threads != null) | .threads) as $th
                      | { main_loop: ($th | map(.main_loop) | median | r2),
                          vcpu: ($th | map(.vcpu) | median | r2),
                          other: ($th | map(.other) | median | r2),
                          main_loop_wait: ($th | map(.main_loop_wait | select(. != null)) | median | r2),
                          vcpu_wait: ($th | map(.vcpu_wait | select(. != null)) | median | r2) }) }] | from_entries) }
              else {} end)
            + (if any($runs[]; .trace_per_io != null) then
                { trace_per_io: ([$tools[] as $t | select(any($runs[]; .tool == $t and .trace_per_io != null))
                  | { key: $t, value: ($runs | map(select(.tool == $t and .trace_per_io != null) | .trace_per_io) as $tr
                      | ($tr | map(keys[]) | unique) as $names
                      | [$names[] as $n | { key: $n, value: ($tr | map(.[$n] // 0) | median
                          | . * 1000 | round / 1000) }] | from_entries) }] | from_entries) }
              else {} end)
            + (if any($runs[]; .emu_ns_per_io != null) then
                { spdk_io_emu_ns_per_io: ($runs | emu("spdk-io")), spdk_emu_ns_per_io: ($runs | emu("spdk")),
                  emu_paired_ratio: ($runs | emu_pairs("spdk-io"; "spdk") | median | r2) }
                + (if any($runs[]; .tool == "spdk-io-variant") then
                    { variant_emu_ns_per_io: ($runs | emu("spdk-io-variant")),
                      variant_emu_paired_ratio: ($runs | emu_pairs("spdk-io-variant"; "spdk") | median | r2) }
                  else {} end)
              else {} end)
            + (if any($runs[]; .tool == "spdk-io-variant") then
                pairs("spdk-io-variant"; "spdk") as $v | pairs("spdk-io-variant"; "spdk-io") as $w
                | { variant_iops: of("spdk-io-variant"; .iops | round),
                    variant_avg_lat_us: of("spdk-io-variant"; .avg_lat_us | r2),
                    variant_median: (of("spdk-io-variant"; .iops) | median | if . then round else . end),
                    variant_paired_ratio: ($v | map(.iops) | median | r2),
                    variant_paired_ratio_min: ($v | map(.iops) | min | r2),
                    variant_paired_ratio_max: ($v | map(.iops) | max | r2),
                    variant_paired_lat_ratio: ($v | map(.lat | select(. != null)) | median | r2),
                    variant_over_spdk_io: ($w | map(.iops) | median | r2),
                    variant_over_spdk_io_rounds: ($w | map(.iops | r2)) }
              else {} end)) })
      | from_entries as $m | [$order[] | {key: ., value: $m[.]}] | from_entries'
}

# bench_spdk_table JSON: one row per workload.
bench_spdk_table() {
  jq -r '
    def c: if . == null then "-" else tostring end;
    def pad(n): c | if length < n then (" " * (n - length)) + . else . end;
    def row: "\(.[0] | if length < 20 then . + " " * (20 - length) else . end)\(.[1:] | map(pad(13)) | join(" "))";
    def na: if . == null then "n/a" else tostring end;
    def lrow: "\(.[0] | if length < 34 then . + " " * (34 - length) else . end)\(.[1:] | map(na | if length < 9 then (" " * (9 - length)) + . else . end) | join(" "))";
    def name: {"spdk-io": "spdk-io", "spdk": "SPDK", "spdk-io-variant": "variant"}[.] // .;
    (["workload", "spdk-io IOPS", "SPDK IOPS", "IOPS ratio", "ratio range", "latency ratio"] | row),
    (["", "median", "median", "paired median", "per round", "paired median"] | row),
    (to_entries[] | [.key] + (.value | [.spdk_io_median, .spdk_median, .paired_ratio,
      "\(.paired_ratio_min | c)..\(.paired_ratio_max | c)", .paired_lat_ratio]) | row),
    (to_entries[] | select(.value.variant_median != null)
      | ["\(.key) variant"] + (.value | [.variant_median, .spdk_median, .variant_paired_ratio,
        "\(.variant_paired_ratio_min | c)..\(.variant_paired_ratio_max | c)", .variant_paired_lat_ratio]) | row),
    (to_entries[] | select(.value.variant_median != null)
      | "\(.key): variant / spdk-io per round \(.value.variant_over_spdk_io_rounds | map(tostring) | join(" ")), median \(.value.variant_over_spdk_io)"),
    (to_entries[] | select(.value.emu_paired_ratio != null)
      | "\(.key): emulator CPU ns per I/O, spdk-io \(.value.spdk_io_emu_ns_per_io | map(c) | join(" ")), SPDK \(.value.spdk_emu_ns_per_io | map(c) | join(" "))"
        + (if .value.variant_emu_ns_per_io then ", variant \(.value.variant_emu_ns_per_io | map(c) | join(" "))" else "" end)
        + "; paired median spdk-io/SPDK \(.value.emu_paired_ratio)"),
    "",
    "latency (us), median of the rounds; n/a: the tool printed no such figure",
    (["workload", "p50", "p99", "p99.9", "p99.99", "max"] | lrow),
    (to_entries[] | .key as $w | .value.latency_us // {} | to_entries[]
      | ["\($w) \(.key | name)"] + (.value.median | [.p50, .p99, .["p99.9"], .["p99.99"], .max]) | lrow),
    (to_entries[] | select(.value.p999_rounds != null and (.value.p999_rounds | length) > 0)
      | "\(.key): p99.9 spdk-io/SPDK per round \(.value.p999_rounds | map(tostring) | join(" ")), paired median \(.value.p999_paired_ratio), at or below SPDK in \(.value.p999_rounds_at_or_below) of \(.value.p999_rounds | length) rounds; max paired median \(.value.max_paired_ratio | c)"),
    (to_entries[] | select(.value.threads != null) | .key as $w | .value.threads | to_entries[]
      | "\($w) \(.key | name): QEMU threads, share of the wall clock on a CPU (waiting for one): main loop \(.value.main_loop | c) (\(.value.main_loop_wait | c)), vCPU \(.value.vcpu | c) (\(.value.vcpu_wait | c)), other \(.value.other | c)"),
    (to_entries[] | select(.value.driver_stats != null) | .key as $w | .value.driver_stats | to_entries[]
      | "\($w) \(.key | name): driver counters (medians): completions per busy poll \(.value.completions_per_busy_poll | c), idle polls \(.value.idle_poll_share | c), MMIO doorbell writes per I/O SQ \(.value.sq_mmio_per_io | c) CQ \(.value.cq_mmio_per_io | c), shadow writes per I/O \(.value.shadow_per_io | c), re-rings per I/O \(.value.kicks_per_io | c)"),
    (to_entries[] | select(.value.timeline != null) | .key as $w | .value.timeline | to_entries[]
      | "\($w) \(.key | name): per batch (queue pair), medians of the runs, us mean/p50/p99: guest \(.value.guest_mean_us | c)/\(.value.guest_p50_us | c)/\(.value.guest_p99_us | c) (reap \(.value.reap_mean_us | c)/\(.value.reap_p50_us | c), submit \(.value.submit_mean_us | c)/\(.value.submit_p50_us | c): build \(.value.build_mean_us | c)/\(.value.build_p50_us | c), doorbell \(.value.doorbell_mean_us | c)/\(.value.doorbell_p50_us | c)), controller \(.value.controller_mean_us | c)/\(.value.controller_p50_us | c)/\(.value.controller_p99_us | c), account after the doorbell \(.value.account_mean_us | c); guest share \(.value.guest_share | c), completions per batch \(.value.completions_per_batch | c)"),
    (to_entries[] | select(.value.trace_per_io != null) | .key as $w | .value.trace_per_io | to_entries[]
      | "\($w) \(.key | name): NVMe controller events per I/O (traced): \(.value | to_entries | map("\(.key) \(.value)") | join(", "))")' <<<"$1"
}
