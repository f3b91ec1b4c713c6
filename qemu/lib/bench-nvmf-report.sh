# shellcheck shell=bash
# qemu/bench-nvmf's report: the guest's "nvmfbench TARGET INITIATOR
# WORKLOAD ROUND BUSY TGT HZ JSON" lines turned into one JSON object and a
# text table. Sourced after common.sh.
#
# Per run: IOPS and average latency (fio: the read side's lat_ns; perf:
# .total), the I/Os done, and CPU time per I/O:
# - system: the guest's busy time over the run / I/Os;
# - initiator: fio's usr+sys (or perf's polling core: the run's length);
# - target: the target process's utime+stime for the user-space targets;
#   for the kernel target, which has no process, the busy time left after
#   fio and after the kernel initiator's own share, estimated per workload
#   as the median of (system - fio - target) over the user-space targets'
#   runs with the same initiator.

# bench_nvmf_json RESULTS SECONDS: per workload and target, the per-round figures,
# their medians and the paired ratios (a round's runs are adjacent).
bench_nvmf_json() {
  tr -d '\r' <"$1" |
    sed -n 's/^nvmfbench \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"target":"\1","init":"\2","workload":"\3","round":\4,"busy":\5,"tgt":"\6","hz":\7,"out":/p' |
    sed 's/$/}/' | jq -s --argjson secs "$2" '
      def median: map(select(. != null)) | sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r2: if . == null then null else (. * 100 | round) / 100 end;
      map(. + (if .init == "kernel" then
          (.out.jobs[0]) as $j
          | { iops: $j.read.iops, lat_us: ($j.read.lat_ns.mean / 1000),
              p50_us: ($j.read.clat_ns.percentile["50.000000"] // null | if . == null then null else . / 1000 end),
              p99_us: ($j.read.clat_ns.percentile["99.000000"] // null | if . == null then null else . / 1000 end),
              ios: ($j.read.total_ios), secs: ($j.job_runtime / 1000),
              init_s: (($j.usr_cpu + $j.sys_cpu) / 100 * $j.job_runtime / 1000) }
        else
          { iops: .out.total.iops, lat_us: .out.total.avg_lat_us,
            ios: (.out.total.ios // (.out.total.iops * $secs)), secs: $secs, init_s: $secs }
        end)
        | .busy_s = (.busy / .hz)
        | .tgt_s = (if .tgt == "-" then null else (.tgt | tonumber) / .hz end))
      | (map(select(.init == "kernel" and .tgt_s != null and .ios > 0)
          | {workload, v: ((.busy_s - .init_s - .tgt_s) / .ios)}) | group_by(.workload)
          | map({key: .[0].workload, value: (map(.v) | median | [., 0] | max)}) | from_entries) as $kinit
      | map(. + { tgt_us_per_io: (if .ios > 0 then
              (if .tgt_s != null then .tgt_s / .ios * 1e6
               elif .init == "kernel" then ([((.busy_s - .init_s) / .ios - ($kinit[.workload] // 0)) * 1e6, 0] | max)
               else null end) else null end),
            sys_us_per_io: (if .ios > 0 then .busy_s / .ios * 1e6 else null end) })
      | (reduce .[] as $r ([]; if any(.[]; . == $r.workload) then . else . + [$r.workload] end)) as $order
      | group_by(.workload) | map({ key: .[0].workload, value: (
          . as $runs
          | def runs(t; i): $runs | map(select(.target == t and .init == i)) | sort_by(.round);
            def pair(a; b): [ $runs | group_by(.round)[]
                | (map(select(.target == a[0] and .init == a[1])) | first) as $x
                | (map(select(.target == b[0] and .init == b[1])) | first) as $y
                | select($x != null and $y != null and ($y.iops // 0) > 0) | $x.iops / $y.iops ] | median | r2;
            def summary(t; i): runs(t; i) as $r | if ($r | length) == 0 then null else
              { iops: ($r | map(.iops | round)), iops_median: ($r | map(.iops) | median | round),
                avg_lat_us_median: ($r | map(.lat_us) | median | r2),
                clat_p50_us_median: ($r | map(.p50_us) | median | r2),
                clat_p99_us_median: ($r | map(.p99_us) | median | r2),
                target_cpu_us_per_io: ($r | map(.tgt_us_per_io) | median | r2),
                system_cpu_us_per_io: ($r | map(.sys_us_per_io) | median | r2) } end;
          { kernel_initiator: { spdk_io_tgt: summary("spdk-io"; "kernel"), nvmet: summary("kernel"; "kernel"),
                                spdk_nvmf_tgt: summary("spdk"; "kernel"),
                                spdk_io_tgt_variant: summary("spdk-io-var"; "kernel") },
            spdk_io_vs_nvmet: pair(["spdk-io", "kernel"]; ["kernel", "kernel"]),
            spdk_io_vs_spdk: pair(["spdk-io", "kernel"]; ["spdk", "kernel"]),
            spdk_io_initiator_on_spdk_io_tgt: summary("spdk-io"; "spdk-io"),
            spdk_perf_on_spdk_nvmf_tgt: summary("spdk"; "spdk"),
            spdk_io_pair_vs_spdk_pair: pair(["spdk-io", "spdk-io"]; ["spdk", "spdk"]),
            spdk_perf_on_spdk_io_tgt: summary("spdk-io"; "spdk"),
            spdk_io_perf_on_spdk_nvmf_tgt: summary("spdk"; "spdk-io"),
            targets_under_spdk_perf: pair(["spdk-io", "spdk"]; ["spdk", "spdk"]),
            targets_under_spdk_io_perf: pair(["spdk-io", "spdk-io"]; ["spdk", "spdk-io"]),
            initiators_on_spdk_nvmf_tgt: pair(["spdk", "spdk-io"]; ["spdk", "spdk"]),
            initiators_on_spdk_io_tgt: pair(["spdk-io", "spdk-io"]; ["spdk-io", "spdk"]),
            spdk_io_initiator_on_variant: summary("spdk-io-var"; "spdk-io"),
            variant_vs_spdk_io: pair(["spdk-io-var", "kernel"]; ["spdk-io", "kernel"]),
            variant_vs_spdk: pair(["spdk-io-var", "kernel"]; ["spdk", "kernel"]),
            variant_pair_vs_spdk_io_pair: pair(["spdk-io-var", "spdk-io"]; ["spdk-io", "spdk-io"]),
            variant_pair_vs_spdk_pair: pair(["spdk-io-var", "spdk-io"]; ["spdk", "spdk"]) }) })
      | from_entries as $m | [$order[] | {key: ., value: $m[.]}] | from_entries'
}

# bench_nvmf_table JSON: one row per workload and setup.
bench_nvmf_table() {
  jq -r '
    def c: if . == null then "-" else tostring end;
    def pad(n): c | if length < n then (" " * (n - length)) + . else . end;
    def left(n): c | if length < n then . + (" " * (n - length)) else . end;
    def row: "\(.[0] | left(18)) \(.[1] | left(32))\(.[2:] | map(pad(12)) | join(" "))";
    (["workload", "setup", "IOPS", "avg lat us", "tgt us/IO", "sys us/IO", "clat p50", "clat p99"] | row),
    (to_entries[] | select(.key != "syscalls_per_io") | .key as $w | .value as $v
      | ([["kernel nvme-tcp -> spdk-io tgt", $v.kernel_initiator.spdk_io_tgt],
          ["kernel nvme-tcp -> nvmet-tcp", $v.kernel_initiator.nvmet],
          ["kernel nvme-tcp -> SPDK nvmf_tgt", $v.kernel_initiator.spdk_nvmf_tgt],
          ["kernel nvme-tcp -> tgt variant", $v.kernel_initiator.spdk_io_tgt_variant],
          ["spdk-io perf -> spdk-io tgt", $v.spdk_io_initiator_on_spdk_io_tgt],
          ["spdk-io perf -> tgt variant", $v.spdk_io_initiator_on_variant],
          ["SPDK perf -> SPDK nvmf_tgt", $v.spdk_perf_on_spdk_nvmf_tgt],
          ["SPDK perf -> spdk-io tgt", $v.spdk_perf_on_spdk_io_tgt],
          ["spdk-io perf -> SPDK nvmf_tgt", $v.spdk_io_perf_on_spdk_nvmf_tgt]][]
         | select(.[1] != null)
         | [$w, .[0], .[1].iops_median, .[1].avg_lat_us_median, .[1].target_cpu_us_per_io, .[1].system_cpu_us_per_io,
            .[1].clat_p50_us_median, .[1].clat_p99_us_median] | row),
        ([$w, "paired IOPS ratios", "vs nvmet \($v.spdk_io_vs_nvmet | c)", "vs SPDK \($v.spdk_io_vs_spdk | c)",
          "pair/pair \($v.spdk_io_pair_vs_spdk_pair | c)"] | row),
        (select($v.spdk_perf_on_spdk_io_tgt != null)
          | [$w, "cross: tgt/tgt, init/init", "SPDK perf \($v.targets_under_spdk_perf | c)",
             "spdk-io perf \($v.targets_under_spdk_io_perf | c)", "on nvmf_tgt \($v.initiators_on_spdk_nvmf_tgt | c)",
             "on spdk-io \($v.initiators_on_spdk_io_tgt | c)"] | row),
        (select($v.kernel_initiator.spdk_io_tgt_variant != null)
          | [$w, "variant paired ratios", "vs tgt \($v.variant_vs_spdk_io | c)", "vs SPDK \($v.variant_vs_spdk | c)",
             "pair/pair \($v.variant_pair_vs_spdk_io_pair | c)", "vs SPDK pair \($v.variant_pair_vs_spdk_pair | c)"] | row))' <<<"$1"
}

# bench_nvmf_syscalls RESULTS: the "nvmfsys TARGET WORKLOAD ROUND IOS
# NAME:COUNT,..." lines as JSON: per workload and target, each system
# call's count per I/O, the median over rounds.
bench_nvmf_syscalls() {
  tr -d '\r' <"$1" |
    sed -n 's/^nvmfsys \([^ ]*\) \([^ ]*\) \([^ ]*\) \([0-9]*\) \(.*\)$/{"target":"\1","workload":"\2","round":\3,"ios":\4,"calls":"\5"}/p' |
    jq -s '
      def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      map(select(.ios > 0) | . as $r | .per = ([.calls | split(",")[] | split(":")
          | {key: .[0], value: ((.[1] | tonumber) / $r.ios)}] | from_entries)
          | .per.total = ([.per[]] | add))
      | group_by(.workload) | map({key: .[0].workload, value: (group_by(.target)
          | map({key: .[0].target, value: (map(.per) as $p | [$p[] | keys[]] | unique
              | map({key: ., value: ([$p[][.] // 0] | median * 1000 | round / 1000)}) | from_entries)})
          | from_entries)}) | from_entries'
}

# bench_nvmf_syscalls_table JSON: system calls per I/O, one row per
# workload and target.
bench_nvmf_syscalls_table() {
  jq -r '.syscalls_per_io // {} | to_entries[] | .key as $w | .value | to_entries[]
    | "\($w) \(.key): " + (.value | to_entries | sort_by(-.value) | map("\(.key) \(.value)") | join(", "))' <<<"$1"
}
