# shellcheck shell=bash
# qemu/bench --spdk-perf's report: the "spdkbench TOOL WORKLOAD ROUND JSON"
# lines the guest wrote, turned into one JSON object and a text table.
# Sourced after common.sh. Both tools' JSON carry .total.iops and
# .total.avg_lat_us.

# bench_spdk_json RESULTS: per workload, each tool's IOPS and average
# latency per round, their medians, and the median and range of the
# per-round ratios spdk-io / SPDK (a round's two runs are adjacent in time).
bench_spdk_json() {
  tr -d '\r' <"$1" |
    sed -n 's/^spdkbench \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"tool":"\1","workload":"\2","round":\3,"out":/p' |
    sed 's/$/}/' | jq -s '
      def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r2: if . == null then null else (. * 100 | round) / 100 end;
      def of(t; f): map(select(.tool == t)) | sort_by(.round) | map(.out.total | f);
      (reduce .[] as $r ([]; if any(.[]; . == $r.workload) then . else . + [$r.workload] end)) as $order
      | group_by(.workload) | map({ key: .[0].workload, value: (
          . as $runs
          | [ $runs | group_by(.round)[]
              | (map(select(.tool == "spdk-io")) | first) as $a
              | (map(select(.tool == "spdk")) | first) as $b
              | select($a != null and $b != null and $b.out.total.iops > 0)
              | { round: $a.round, iops: ($a.out.total.iops / $b.out.total.iops),
                  lat: (if $b.out.total.avg_lat_us > 0 then $a.out.total.avg_lat_us / $b.out.total.avg_lat_us else null end) } ] as $pairs
          | { spdk_io_iops: of("spdk-io"; .iops | round), spdk_iops: of("spdk"; .iops | round),
              spdk_io_avg_lat_us: of("spdk-io"; .avg_lat_us | r2), spdk_avg_lat_us: of("spdk"; .avg_lat_us | r2),
              spdk_io_median: (of("spdk-io"; .iops) | median | if . then round else . end),
              spdk_median: (of("spdk"; .iops) | median | if . then round else . end),
              paired_ratio: ($pairs | map(.iops) | median | r2),
              paired_ratio_min: ($pairs | map(.iops) | min | r2),
              paired_ratio_max: ($pairs | map(.iops) | max | r2),
              paired_lat_ratio: ($pairs | map(.lat | select(. != null)) | median | r2) }) })
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
      "\(.paired_ratio_min | c)..\(.paired_ratio_max | c)", .paired_lat_ratio]) | row)' <<<"$1"
}
