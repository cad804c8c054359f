"""Read-side queries: plain SQL over the projections, returning typed DTOs."""
