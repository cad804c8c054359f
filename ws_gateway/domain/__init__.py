"""Pure protocol of the gateway: frames, control messages, conflation, resume."""
