# shellcheck shell=bash
# qemu/bench --spdk-perf's report: the "spdkbench TOOL WORKLOAD ROUND JSON"
# lines the guest wrote, turned into one JSON object and a text table.
# Sourced after common.sh. Both tools' JSON carry .total.iops and
# .total.avg_lat_us.

# bench_spdk_json RESULTS [EMU_RUNS SECONDS]: per workload, each tool's
# IOPS and average latency per round, their medians, and the median and
# range of the per-round ratios spdk-io / SPDK (a round's two runs are
# adjacent in time). With EMU_RUNS (emu_cpu_runs' array) and the seconds
# per run, also the emulator's CPU nanoseconds per I/O of every run.
bench_spdk_json() {
  local emu=${2:-[]} secs=${3:-1}
  tr -d '\r' <"$1" |
    sed -n 's/^spdkbench \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"tool":"\1","workload":"\2","round":\3,"out":/p' |
    sed 's/$/}/' | jq -s --argjson emu "$emu" --argjson secs "$secs" '
      map(. as $r
        | ([$emu[] | select(.tool == $r.tool and .workload == $r.workload and .round == $r.round) | .emu_ns]
           | first) as $ns
        | $r + { emu_ns_per_io: (if $ns != null and $r.out.total.iops > 0
                                 then $ns / ($r.out.total.iops * $secs) else null end) })
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
            pairs("spdk-io"; "spdk") as $pairs
          | { spdk_io_iops: of("spdk-io"; .iops | round), spdk_iops: of("spdk"; .iops | round),
              spdk_io_avg_lat_us: of("spdk-io"; .avg_lat_us | r2), spdk_avg_lat_us: of("spdk"; .avg_lat_us | r2),
              spdk_io_median: (of("spdk-io"; .iops) | median | if . then round else . end),
              spdk_median: (of("spdk"; .iops) | median | if . then round else . end),
              paired_ratio: ($pairs | map(.iops) | median | r2),
              paired_ratio_min: ($pairs | map(.iops) | min | r2),
              paired_ratio_max: ($pairs | map(.iops) | max | r2),
              paired_lat_ratio: ($pairs | map(.lat | select(. != null)) | median | r2) }
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
        + "; paired median spdk-io/SPDK \(.value.emu_paired_ratio)")' <<<"$1"
}
