"""The vault: encrypted secrets over NATS, with ACL, audit and online key rotation (seed 003)."""
