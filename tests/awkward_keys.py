"""Object names that break naive code: percent signs that look encoded, URL syntax, non-ASCII of one to four
bytes, control characters, quotes, template braces. Every layer that carries a source key (layout, metadata,
copier, a CLI run over HTTP) is tried with the same names, so a name one layer mangles is a failure there."""

from __future__ import annotations

AWKWARD_KEYS = [
    "plain/key.csv",
    "données/été 2024.csv",
    "a%2Fb.csv",
    "100%.csv",
    "%",
    "what?.csv",
    "hash#tag.csv",
    "plus+sign and space.csv",
    "emoji/😀.json",
    "中文/文件.txt",
    "amp&eq=semi;.csv",
    "tab\tnewline\n.csv",
    "quote\"apos'.csv",
    "~tilde/back\\slash",
    "with space.csv",
    "a b/c d.csv",
    "naïve café/ünïcode ✓ 映画.csv",
    "ünïcødé/数据 ファイル.csv",
    "emoji 🎬.csv",
    "emoji-🎬.csv",
    "a+b=c.csv",
    "a+b.csv",
    "plus+sign.csv",
    "amp&eq=.csv",
    "100%25 done %.csv",
    "%2F.csv",
    "#hash#.csv",
    "question?mark.csv",
    "semi;colon&amp.csv",
    "all of +%#?&=;:@$,'!()*[]{}~ at once.csv",
    "braces/{date}.csv",
    "back\\slash.csv",
    "tab\tkey.csv",
]
"""Names relative to a dataset's prefix. The first six are a sample for checks that need only a few."""
