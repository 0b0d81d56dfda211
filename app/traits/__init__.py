"""Computed traits: per-profile aggregates of events (defined per workspace), built-in order
traits, RFM scores and tiers, and CLV (BG/NBD + Gamma-Gamma, see clv.py), refreshed in the
background. Other domains go through `app.traits.service`."""
