"""``python -m benchmarks``: run every benchmark with sizes that fit a 2-core machine."""

from benchmarks import bench_amqp, bench_dhcp, bench_pollers, bench_runtime, bench_tftp

if __name__ == "__main__":
    bench_runtime.main()
    # needs a broker; without one it says so and is skipped
    bench_amqp.main(skip_without_broker=True)
    # needs in.tftpd, curl, atftp and taskset; runs every server in its own process
    bench_tftp.main()
    # needs root, perfdhcp and kea-dhcp4; runs both servers in a network namespace
    bench_dhcp.main()
    # needs ipmitool, snmpbulkwalk and snmpsim; simulated BMCs and devices run in child processes
    bench_pollers.main()
