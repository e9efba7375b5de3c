"""What goes over the wire: request schemas, response shapes per client family, errors, OpenAPI."""
