"""De-duplication of existing profiles: runs of the fuzzy matcher and the review queue.

The matcher itself (blocking + Fellegi-Sunter scoring) is pure code in
:mod:`app.dedup.matcher`; this domain feeds it a workspace's profiles, records the scored
pairs, merges the confident ones through identity's ``manual_merge`` (ledger rule
``dedup``) and lets people review the rest. See docs/DEDUP.md.
"""
