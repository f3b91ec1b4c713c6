# shellcheck shell=bash
# qemu/bench-tcp's report: the "tcpbench TOOL WORKLOAD ROUND TOOL_TICKS
# GUEST_TICKS CENTISECONDS JSON" lines the guest wrote, turned into one
# JSON object and a text table. Sourced after common.sh. spdk-io perf's
# and SPDK's JSON carry .total.iops and .total.avg_lat_us; fio's,
# jobs[0].read (iops, lat_ns.mean). CPU time per I/O divides the run's
# CPU ticks (1/100 s) by its I/Os (IOPS x SECONDS, the measured period),
# so start-up (connecting) is charged to the I/O too.

# bench_tcp_json RESULTS SECONDS: per workload and initiator, per-round
# figures and medians; per workload, the medians of the per-round ratios
# of spdk-io to fio and to SPDK.
bench_tcp_json() {
  tr -d '\r' <"$1" |
    sed -n 's/^tcpbench \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"tool":"\1","workload":"\2","round":\3,"tool_ticks":\4,"guest_ticks":\5,"cs":\6,"out":/p' |
    sed 's/$/}/' | jq -s --argjson secs "${2:-5}" '
      def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r2: if . == null then null else (. * 100 | round) / 100 end;
      def norm: (if .tool == "fio" then .out.jobs[0].read as $r | {iops: $r.iops, lat: ($r.lat_ns.mean / 1000)}
                 else {iops: .out.total.iops, lat: .out.total.avg_lat_us} end) as $m
        | ($m.iops * $secs) as $ios
        | {tool, workload, round, iops: $m.iops, lat: $m.lat,
           tool_cpu: (if $ios > 0 then .tool_ticks / 100 / $ios * 1e6 else null end),
           guest_cpu: (if $ios > 0 then .guest_ticks / 100 / $ios * 1e6 else null end)};
      def stats(t): map(select(.tool == t)) | if length == 0 then null else
        { iops: (map(.iops) | median | round), avg_lat_us: (map(.lat) | median | r2),
          tool_cpu_us_per_io: (map(.tool_cpu) | median | r2),
          guest_cpu_us_per_io: (map(.guest_cpu) | median | r2),
          rounds_iops: (sort_by(.round) | map(.iops | round)) } end;
      def paired(a; b; f): [group_by(.round)[]
          | (map(select(.tool == a)) | first) as $x | (map(select(.tool == b)) | first) as $y
          | select($x != null and $y != null and ($y | f) != null and ($y | f) > 0)
          | ($x | f) / ($y | f)] | median | r2;
      map(norm) as $runs
      | (reduce $runs[] as $r ([]; if any(.[]; . == $r.workload) then . else . + [$r.workload] end)) as $order
      | ($runs | group_by(.workload) | map({key: .[0].workload, value: {
          spdk_io: stats("spdk-io"), fio: stats("fio"), spdk: stats("spdk"),
          iops_ratio_vs_fio: paired("spdk-io"; "fio"; .iops),
          iops_ratio_vs_spdk: paired("spdk-io"; "spdk"; .iops),
          lat_ratio_vs_fio: paired("spdk-io"; "fio"; .lat),
          lat_ratio_vs_spdk: paired("spdk-io"; "spdk"; .lat),
          guest_cpu_ratio_vs_fio: paired("spdk-io"; "fio"; .guest_cpu),
          guest_cpu_ratio_vs_spdk: paired("spdk-io"; "spdk"; .guest_cpu) }}) | from_entries) as $m
      | [$order[] | {key: ., value: $m[.]}] | from_entries'
}

# bench_tcp_table JSON: per workload one row per initiator, then the ratios.
bench_tcp_table() {
  jq -r '
    def c: if . == null then "-" else tostring end;
    def pad(n): c | if length < n then (" " * (n - length)) + . else . end;
    def row: "\(.[0] | if length < 18 then . + " " * (18 - length) else . end)\(.[1] | if length < 9 then . + " " * (9 - length) else . end)\(.[2:] | map(pad(11)) | join(" "))";
    (["workload", "tool", "IOPS", "avg lat us", "tool CPU", "guest CPU"] | row),
    (["", "", "median", "median", "us per I/O", "us per I/O"] | row),
    (to_entries[] | .key as $w | .value as $v
      | (["spdk_io", "fio", "spdk"][] as $t | $v[$t] | select(. != null)
          | [$w, ($t | sub("_"; "-")), .iops, .avg_lat_us, .tool_cpu_us_per_io, .guest_cpu_us_per_io] | row),
        ("  spdk-io/fio:  IOPS \($v.iops_ratio_vs_fio | c)x, latency \($v.lat_ratio_vs_fio | c)x, guest CPU per I/O \($v.guest_cpu_ratio_vs_fio | c)x (paired medians)"),
        (if $v.spdk != null then "  spdk-io/SPDK: IOPS \($v.iops_ratio_vs_spdk | c)x, latency \($v.lat_ratio_vs_spdk | c)x, guest CPU per I/O \($v.guest_cpu_ratio_vs_spdk | c)x (paired medians)" else empty end))' <<<"$1"
}
