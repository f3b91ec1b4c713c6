# shellcheck shell=bash
# qemu/bench-bdev's report: the "bdevbench BUILD TOOL QD ROUND JSON" lines
# the guest wrote, turned into one JSON object and a text table. Sourced
# after common.sh. Both tools report their total IOPS in .total.iops.

# bench_bdev_json RESULTS: per build and queue depth ("qd32"), each tool's
# IOPS per round, their medians, the layer's cost of the medians
# (1 - bdevperf/perf, per cent) and the median and range of the per-round
# costs (a round's two runs ran one after the other).
bench_bdev_json() {
  tr -d '\r' <"$1" |
    sed -n 's/^bdevbench \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"build":"\1","tool":"\2","qd":\3,"round":\4,"out":/p' |
    sed 's/$/}/' | jq -s '
      def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def cost(b; p): if b != null and p != null and p > 0 then ((1 - b / p) * 1000 | round) / 10 else null end;
      def iops(t): map(select(.tool == t)) | sort_by(.round) | map(.out.total.iops | round);
      group_by(.build) | map({ key: .[0].build, value: (
        group_by(.qd) | map({ key: "qd\(.[0].qd)", value: (
          . as $runs
          | iops("perf") as $p | iops("bdevperf") as $b
          | [ $runs | group_by(.round)[]
              | (map(select(.tool == "perf")) | first) as $pr
              | (map(select(.tool == "bdevperf")) | first) as $br
              | select($pr != null and $br != null)
              | cost($br.out.total.iops; $pr.out.total.iops) ] as $paired
          | { perf_iops: $p, bdevperf_iops: $b,
              perf_median: ($p | median | if . then round else . end),
              bdevperf_median: ($b | median | if . then round else . end),
              cost_pct: cost($b | median; $p | median),
              paired_cost_pct: ($paired | median | if . then (. * 10 | round) / 10 else . end),
              paired_cost_pct_min: ($paired | min),
              paired_cost_pct_max: ($paired | max) }) }) | from_entries) })
      | from_entries'
}

# bench_bdev_table JSON: one row per build and queue depth.
bench_bdev_table() {
  jq -r '
    def c: if . == null then "-" else tostring end;
    def pad(n): c | if length < n then (" " * (n - length)) + . else . end;
    def row: "\(.[0] | if length < 16 then . + " " * (16 - length) else . end)\(.[1:] | map(pad(13)) | join(" "))";
    (["build/depth", "perf IOPS", "bdevperf IOPS", "cost", "cost/round", "round range"] | row),
    (["", "median", "median", "of medians %", "median %", "%"] | row),
    (to_entries | sort_by(.key != "current")[] | .key as $b | .value | to_entries
      | sort_by(.key | ltrimstr("qd") | tonumber)[]
      | ["\($b) \(.key)"] + (.value | [.perf_median, .bdevperf_median, .cost_pct, .paired_cost_pct,
          "\(.paired_cost_pct_min | c)..\(.paired_cost_pct_max | c)"]) | row)' <<<"$1"
}
