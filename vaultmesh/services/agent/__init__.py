"""The node agent: health checks and heartbeats from each machine of the fleet (seed 000/004)."""
