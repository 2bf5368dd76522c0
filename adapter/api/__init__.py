"""HTTP layer: routes, wire format, discovery, authn/authz, health."""
