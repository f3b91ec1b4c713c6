# shellcheck shell=bash
# qemu/bench's report: the "bench TOOL DRIVE WORKLOAD JSON" lines the guest
# wrote, turned into one JSON object and a side-by-side table. Sourced
# after common.sh.
#
# spdk-io perf --output-format json: IOPS, MiB/s and average latency are
# read from .total (iops, mib_s, avg_lat_us). Its polling cores
# (.workload.cores, one by default) are 100 % busy, so its CPU time per I/O
# is cores/IOPS. fio: jobs[0] read+write IOPS and bandwidth, mean total
# latency (submission to completion, lat_ns), and usr_cpu + sys_cpu (per
# cent of one CPU) for its CPU time per I/O.

# bench_json RESULTS: the JSON object keyed by workload name, in the order
# the guest ran them; the file drive's workloads get the suffix "-file".
bench_json() {
  tr -d '\r' <"$1" | sed -n 's/^bench \([^ ]*\) \([^ ]*\) \([^ ]*\) /{"tool":"\1","drive":"\2","workload":"\3","out":/p' |
    sed 's/$/}/' | jq -s '
      def key: if .drive == "null" then .workload else .workload + "-" + .drive end;
      def fio: .out.jobs[0] as $j
        | ($j.read.iops + $j.write.iops) as $iops
        | { iops: $iops,
            mib_s: (($j.read.bw + $j.write.bw) / 1024),
            avg_lat_us: ((if $j.read.iops > 0 then $j.read.lat_ns.mean else $j.write.lat_ns.mean end) / 1000),
            cpu_us_per_io: (if $iops > 0 then ($j.usr_cpu + $j.sys_cpu) / 100 / $iops * 1e6 else null end) };
      def spdk: (.out.workload.cores // [0] | length) as $cores
        | .out.total
        | { iops: .iops, mib_s: .mib_s, avg_lat_us: .avg_lat_us,
            cpu_us_per_io: (if .iops > 0 then $cores * 1e6 / .iops else null end) };
      def r(a; b): if a != null and b != null and b > 0 then (a / b * 100 | round) / 100 else null end;
      def two: . * 100 | round / 100;
      reduce .[] as $r ({}; .[$r | key] += [$r])
      | map_values(
        ((map(select(.tool == "fio")) | first | if . then fio else {} end) as $f
          | (map(select(.tool == "spdk-io")) | first | if . then spdk else {} end) as $s
          | { drive: .[0].drive,
              spdk_io_iops: ($s.iops // null | if . then round else . end),
              fio_iops: ($f.iops // null | if . then round else . end),
              ratio: r($s.iops; $f.iops),
              spdk_io_mib_s: ($s.mib_s // null | if . then two else . end),
              fio_mib_s: ($f.mib_s // null | if . then two else . end),
              spdk_io_avg_lat_us: ($s.avg_lat_us // null | if . then two else . end),
              fio_avg_lat_us: ($f.avg_lat_us // null | if . then two else . end),
              spdk_io_cpu_us_per_io: ($s.cpu_us_per_io // null | if . then two else . end),
              fio_cpu_us_per_io: ($f.cpu_us_per_io // null | if . then two else . end),
              cpu_per_io_ratio: r($s.cpu_us_per_io; $f.cpu_us_per_io) }))'
}

# bench_table JSON: the side-by-side text table.
bench_table() {
  jq -r '
    def c: if . == null then "-" else tostring end;
    def pad(n): c | if length < n then (" " * (n - length)) + . else . end;
    def row: "\(.[0] | if length < 22 then . + " " * (22 - length) else . end)\(.[1:] | map(pad(12)) | join(" "))";
    (["workload", "spdk-io IOPS", "fio IOPS", "IOPS ratio", "spdk-io lat", "fio lat",
      "spdk-io CPU", "fio CPU", "CPU ratio"] | row),
    (["", "", "", "spdk/fio", "avg us", "avg us", "us per I/O", "us per I/O", "spdk/fio"] | row),
    (to_entries[] | [.key] + (.value | [.spdk_io_iops, .fio_iops, .ratio, .spdk_io_avg_lat_us,
      .fio_avg_lat_us, .spdk_io_cpu_us_per_io, .fio_cpu_us_per_io, .cpu_per_io_ratio]) | row)' <<<"$1"
}
