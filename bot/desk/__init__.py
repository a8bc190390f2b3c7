"""The desk: the web app of agents (live handover) and CX leads (review console)."""
