"""The scale harness: our tool at 10^5-10^6+ keys on `rclone serve s3` (docs/SCALE.md).

    make scale                                       # or: .venv/bin/python -m bench.scale [--quick] [--mode both]
    .venv/bin/python -m bench.scale.model RESULT.json   # the AWS model of a large night, from a --mode steps run

A package of its own beside the side-by-side benchmark (`python -m bench`), because the two answer different
questions: that one compares tools on the same copies, this one follows one tool's nights as the key count grows.
From the rest of bench/ it uses only `bench.common`. The side-by-side benchmark borrows four of its modules so that
its no-op night is this harness's night: `server` (rclone started the same way), `seed` (the same keys and
contents), `peers` (the same listers) and `machine` (the same machine facts).

Modules: `cli` (options, one block per key count and mode, the JSON result), `server` (rclone serve s3 with a
folder written behind its back), `seed` (the source files), `nights` (the three nights and what each must give),
`steps` (the state machine's walk, one process per Lambda step) and `lambda_child` (that process), `measure` (one
measured process tree), `peers` (the bare listers), `machine` (machine facts), `report` (the Markdown) and `model`
(the AWS model).
"""
